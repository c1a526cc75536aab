"""Every page works under the Content-Security-Policy: no inline script or style is refused,
nothing errors, charts draw, and the small behaviours that used to be inline handlers (copy
buttons, the company switcher, confirmations) still work, from a static script.

Set SCREENSHOTS=/tmp/shots to keep a picture of a few pages."""

import os
from pathlib import Path

import pytest
from django.urls import reverse
from playwright.sync_api import expect

from audiences.models import Audience
from audiences.services import audience_save
from integrations.models import CovaCredential
from integrations.services.cova import cova_connection_create, cova_credential_save
from loyalty.services.webhooks import webhook_endpoint_create
from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory, OfferFactory, PromptFactory
from tests.integrations import cova_fake
from tests.waitingroom.conftest import queue_store, regular  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

cova_server = cova_fake.cova_server

# Collects what the browser refused, in each page, before any of the page's own scripts run.
WATCH_CSP = """window.__csp = [];
document.addEventListener("securitypolicyviolation", (e) => window.__csp.push(
  `${e.violatedDirective} refused ${e.blockedURI || "inline"} at ${e.sourceFile}:${e.lineNumber}`));
"""


class Watch:
    """What went wrong on the pages a test opens: refusals, console errors, script errors."""

    def __init__(self, page, live_server):
        self.page, self.base, self.problems = page, live_server.url, []
        page.add_init_script(WATCH_CSP)
        page.on("console", lambda m: m.type == "error" and self.problems.append(f"{page.url}: {m.text}"))
        page.on("pageerror", lambda e: self.problems.append(f"{page.url}: script error {e}"))

    def open(self, path, ready, shot=None):
        self.page.goto(self.base + path)
        expect(ready(self.page)).to_be_visible()
        self.check()
        if shot and os.environ.get("SCREENSHOTS"):
            Path(os.environ["SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(os.environ["SCREENSHOTS"]) / f"{shot}.png"), full_page=True)

    def check(self):
        self.problems += [f"{self.page.url}: {v}" for v in self.page.evaluate("window.__csp || []")]


def heading(page):
    return page.locator("main h1").first


@pytest.fixture
def shop(company, other_company, queue_store, regular, cova_server):  # noqa: F811
    """A superuser admin of two companies, with something on every settings page."""
    boss = MembershipFactory(company=company, role=Role.ADMIN, user__username="boss",
                             user__is_staff=True, user__is_superuser=True).user
    MembershipFactory(company=other_company, role=Role.ADMIN, user=boss)
    OfferFactory(company=company, name="Five off")
    PromptFactory(company=company, name="Grinder sale")
    audience = audience_save(company=company, name="Texters", rules={
        "type": "group", "match": "all", "negate": False, "children": [
            {"type": "condition", "trait": "sms_opt_in", "operator": "equals", "value": True,
             "negate": False}]})
    hook = webhook_endpoint_create(company=company, url="https://pos.example/hook", events=["points.changed"])
    cova = cova_connection_create(company=company, name="Cova")
    cova_server.seed_demo(customers=3, sales_per_location=1, locations=2)
    cova_credential_save(connection=cova, client_id=cova_server.client_id,
                         client_secret=cova_server.client_secret, username=cova_server.username,
                         password=cova_server.password, cova_company_id=str(cova_server.company_id),
                         accounts_url=cova_server.url, api_url=cova_server.url)
    return {"audience": audience, "hook": hook, "cova": cova}


def test_pages_work_under_the_content_security_policy(page, live_server, shop, company, queue_store,  # noqa: F811
                                                      regular):  # noqa: F811
    page.set_viewport_size({"width": 1360, "height": 900})
    watch = Watch(page, live_server)
    log_in(page, live_server, "boss")
    watch.check()

    # Every main page opens with nothing refused.
    pages = [
        ("home", reverse("home"), heading),
        ("personas", reverse("persona_list"), heading),
        ("persona", reverse("persona_detail", args=[regular.pk]), heading),
        ("audiences", reverse("audience_list"), heading),
        ("audience-builder", reverse("audience_builder", args=[shop["audience"].pk]),
         lambda p: p.get_by_test_id("audience-count")),
        ("waiting-room", reverse("queue_store", args=[queue_store.pk]), heading),
        ("stores", reverse("store_list"), heading),
        ("store", reverse("store_edit", args=[queue_store.pk]), lambda p: p.get_by_test_id("checkin-url")),
        ("api-keys", reverse("api_key_list"), heading),
        ("loyalty-program", reverse("loyalty_program"), heading),
        ("offers", reverse("offer_list"), heading),
        ("prompts", reverse("prompt_list"), heading),
        ("webhooks", reverse("webhook_list"), heading),
        ("webhook", reverse("webhook_detail", args=[shop["hook"].pk]), heading),
        ("integrations", reverse("integration_catalog"), heading),
        ("integration-grid", reverse("integration_grid"), heading),
        ("cova", reverse("cova_connection", args=[shop["cova"].pk]), heading),
        ("cova-credential", reverse("cova_credential_create", args=[shop["cova"].pk]), heading),
    ]
    for name, path, ready in pages:
        watch.open(path, ready, shot=name if name in {"integrations", "cova", "store"} else None)

    # Analytics draws its charts (Plotly, with its styles from a file).
    watch.open(reverse("analytics"), lambda p: p.locator(".js-plotly-plot .main-svg").first, shot="analytics")
    expect(page.locator(".js-plotly-plot")).not_to_have_count(0)
    assert page.locator("style").count() == 0  # neither Plotly nor htmx wrote one
    watch.check()

    # The API docs and the Django admin (its one inline script is allowed by hash, and runs).
    watch.open(reverse("api_docs"), lambda p: p.locator(".swagger-ui .info .title"), shot="api-docs")
    watch.open("/admin/", lambda p: p.locator("#site-name"))
    watch.open("/admin/django_celery_beat/periodictask/add/", lambda p: p.locator("#periodictask_form"))
    expect(page.locator(".field-crontab_translation")).to_be_hidden()

    # The tablet at the door: the public check-in page, and its answer.
    kiosk = page.context.browser.new_context().new_page()
    kiosk_watch = Watch(kiosk, live_server)
    kiosk_watch.open(reverse("queue_check_in", args=[queue_store.checkin_token]),
                     lambda p: p.locator("#id_phone"), shot="kiosk")
    kiosk.fill("#id_phone", "(720) 555-0188")
    kiosk.fill("#id_first_name", "Theo")
    kiosk.get_by_role("button", name="Check in").click()
    expect(kiosk.get_by_test_id("checked-in")).to_contain_text("You're checked in, Theo!")
    kiosk_watch.check()
    kiosk.context.close()

    assert watch.problems + kiosk_watch.problems == []


def test_copy_buttons_switcher_and_confirmations_work_without_inline_code(
        page, live_server, shop, company, other_company, queue_store, cova_server):  # noqa: F811
    page.set_viewport_size({"width": 1360, "height": 900})
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server.url)
    watch = Watch(page, live_server)
    log_in(page, live_server, "boss")

    # API keys: Copy puts the account UID on the clipboard ...
    watch.open(reverse("api_key_list"), heading)
    page.locator(".account-uid").get_by_role("button", name="Copy").click()
    expect(page.locator(".account-uid").get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == str(company.account_uid)
    # ... and a new key's Copy key, in the part of the page htmx just swapped in, copies the key.
    page.get_by_label("Name").fill("Front counter")
    page.get_by_role("button", name="Create key").click()
    reveal = page.get_by_test_id("new-key")
    reveal.get_by_role("button", name="Copy key").click()
    expect(reveal.get_by_role("button", name="Copied")).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == reveal.get_by_role("textbox").input_value()
    # Revoking asks first (hx-confirm): accepted, the key is revoked.
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_test_id("api-key-table").get_by_role("button", name="Revoke").click()
    expect(page.get_by_test_id("api-key-table")).to_contain_text("Revoked")

    # The check-in link selects itself in one click, ready to copy.
    watch.open(reverse("store_edit", args=[queue_store.pk]), lambda p: p.get_by_test_id("checkin-url"))
    link = page.get_by_test_id("checkin-url")
    link.click()
    assert link.evaluate("el => el.selectionStart === 0 && el.selectionEnd === el.value.length")

    # Choosing another company in the header switches to it, with no button to press.
    watch.open(reverse("home"), heading)
    page.get_by_label("Company").select_option(label=other_company.name)
    expect(page).to_have_title(f"Home · {other_company.name}")
    page.get_by_label("Company").select_option(label=company.name)
    expect(page).to_have_title(f"Home · {company.name}")

    # Deleting an audience asks first: Cancel keeps it, OK deletes it.
    watch.open(reverse("audience_list"), heading)
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.dismiss()))
    page.get_by_role("button", name="Delete Texters").click()
    page.wait_for_load_state("networkidle")
    assert questions == ["Delete the audience Texters? Its members stay customers."]
    assert Audience.objects.filter(pk=shop["audience"].pk).exists()
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete Texters").click()
    expect(page.get_by_role("button", name="Delete Texters")).to_have_count(0)
    assert not Audience.objects.filter(pk=shop["audience"].pk).exists()

    # Removing a Cova credential asks first too, and OK removes it.
    watch.open(reverse("cova_connection", args=[shop["cova"].pk]), heading)
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_role("button", name="Remove").click()
    expect(page.get_by_test_id("no-credentials")).to_be_visible()
    assert questions[-1].startswith(f"Remove the credential {cova_server.username}?")
    assert not CovaCredential.objects.filter(connection=shop["cova"]).exists()

    watch.check()
    assert watch.problems == []
