"""Accessibility in a real browser: axe-core finds nothing serious or critical on any page a
member of staff (or a customer at the kiosk) can open, the audience builder and the queue
work from the keyboard alone, and the counts that change by themselves are announced."""

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from django.core.management import call_command
from django.urls import reverse
from playwright.sync_api import expect

from audiences.models import Audience
from integrations.models import Connection, ImportedFile, SyncRun
from integrations.services.cova import cova_connection_create
from loyalty.models import Offer, Persona, Prompt, Tier, WebhookDelivery, WebhookEndpoint
from loyalty.services.webhooks import webhook_endpoint_create
from stores.models import ApiKey, Company, Role
from stores.services import api_key_create
from tests.browser.pages import log_in
from tests.factories import PASSWORD, MembershipFactory, PersonaFactory
from tests.waitingroom.conftest import queue_store, regular  # noqa: F401 - fixtures
from waitingroom.models import QueueEntry
from waitingroom.services import queue_check_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DEMO_PASSWORD = "demo-pass-2026"
BLOCKING = ("serious", "critical")


@pytest.fixture
def demo(reports_root, fake_dns):
    """The demo company with a bit of everything: sales, audiences, a report connection that
    ran, a Cova connection, an API key, a webhook with a delivery and a queue."""
    call_command("load_demo", personas=40, transactions=300)
    call_command("load_demo_audiences")
    call_command("load_demo_reports")
    call_command("load_demo_queue", per_store=3)
    company = Company.objects.get(slug="green-leaf")
    fake_dns["pos.example.com"] = ["93.184.215.14"]  # a public address, never contacted
    endpoint = webhook_endpoint_create(company=company, url="https://pos.example.com/hooks",
                                       events=["points.changed"])
    WebhookDelivery.objects.create(endpoint=endpoint, event="points.changed",
                                   payload={"persona_id": 1, "points": 10})
    api_key_create(company=company, name="Front counter", level=1)
    cova_connection_create(company=company, name="Cova Denver")
    return company


def staff_pages(company) -> list[tuple[str, str]]:
    """(label, path) of every page of the staff site that a GET opens, each with a real row."""
    report = Connection.objects.get(company=company, provider="folder")
    cova = Connection.objects.get(company=company, provider="cova")
    run = SyncRun.objects.filter(connection=report).latest("id")
    bad_file = (ImportedFile.objects.filter(connection=report, rows_rejected__gt=0).first()
                or ImportedFile.objects.filter(connection=report).first())
    entry = QueueEntry.objects.filter(store__company=company).order_by("id").first()
    endpoint = WebhookEndpoint.objects.get(company=company)
    persona = Persona.objects.filter(company=company, is_member=True).order_by("id").first()
    audience = Audience.objects.filter(company=company).first()

    def url(name, *args):
        return reverse(name, args=args)

    return [
        ("dashboard", url("home")),
        ("personas list", url("persona_list")),
        ("persona card", url("persona_detail", persona.pk)),
        ("loyalty program", url("loyalty_program")),
        ("tier edit", url("tier_edit", Tier.objects.filter(company=company).first().pk)),
        ("offers list", url("offer_list")),
        ("offer new", url("offer_create")),
        ("offer edit", url("offer_edit", Offer.objects.filter(company=company).first().pk)),
        ("prompts list", url("prompt_list")),
        ("prompt new", url("prompt_create")),
        ("prompt edit", url("prompt_edit", Prompt.objects.filter(company=company).first().pk)),
        ("webhooks list", url("webhook_list")),
        ("webhook new", url("webhook_create")),
        ("webhook detail", url("webhook_detail", endpoint.pk)),
        ("webhook edit", url("webhook_edit", endpoint.pk)),
        ("webhook delivery", url("webhook_delivery_detail", endpoint.deliveries.first().pk)),
        ("audiences list", url("audience_list")),
        ("audience builder new", url("audience_new")),
        ("audience builder saved", url("audience_builder", audience.pk)),
        ("analytics", url("analytics")),
        ("integrations catalog", url("integration_catalog")),
        ("integrations grid", url("integration_grid")),
        ("report connections", url("connection_list")),
        ("connection new", url("connection_create") + "?provider=folder"),
        ("connection detail", url("connection_detail", report.pk)),
        ("connection edit", url("connection_edit", report.pk)),
        ("connection headers", url("connection_header_mapping", report.pk)),
        ("store mappings", url("connection_store_mappings", report.pk)),
        ("sync run", url("sync_run_detail", run.pk)),
        ("file row errors", url("imported_file_errors", bad_file.pk)),
        ("cova connect", url("cova_connect")),
        ("cova connection", url("cova_connection", cova.pk)),
        ("cova credential new", url("cova_credential_create", cova.pk)),
        ("queue home", url("queue_home")),
        ("queue", url("queue_store", entry.store_id)),
        ("queue profile", url("queue_profile", entry.store_id, entry.pk)),
        ("stores list", url("store_list")),
        ("store new", url("store_create")),
        ("store edit", url("store_edit", entry.store_id)),
        ("api keys", url("api_key_list")),
        ("api key detail", url("api_key_detail", ApiKey.objects.filter(company=company).first().pk)),
        ("security", url("security_settings")),
        ("two-factor", url("two_factor")),
        ("activity", url("audit_activity")),
        ("api guide", url("api_guide")),
        ("branding", url("branding_settings")),
        ("loyalty page settings", url("loyalty_page_settings")),
        ("bulk enrol confirmation", url("persona_bulk") + f"?action=enrol&persona={persona.pk}"),
        ("queue counter mode", url("queue_store", entry.store_id) + "?mode=counter"),
    ]


def log_in_demo(page, live_server, username):
    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", DEMO_PASSWORD)
    page.click("button[type=submit]")
    expect(page.get_by_role("navigation", name="Main")).to_be_visible()


def blocking_violations(page, label: str, report: dict) -> list[str]:
    page.wait_for_load_state("networkidle")
    results = Axe().run(page)
    violations = results.response["violations"]
    counts: dict[str, int] = {}
    for violation in violations:
        counts[violation["impact"]] = counts.get(violation["impact"], 0) + len(violation["nodes"])
    report[label] = counts
    print(f"axe {label}: {counts or 'nothing'}")
    for violation in violations:
        targets = [node["target"] for node in violation["nodes"]]
        print(f"    {violation['impact']} {violation['id']}: {targets}")
    found = []
    for violation in violations:
        if violation["impact"] in BLOCKING:
            for node in violation["nodes"]:
                found.append(f"{label}: {violation['id']} ({violation['impact']}) {node['target']}"
                             f" - {node['failureSummary'].splitlines()[-1].strip()}")
    return found


def assert_described_by_error(page, selector: str) -> None:
    """The field names, in aria-describedby, an element on the page that holds its error."""
    ids = (page.locator(selector).get_attribute("aria-describedby") or "").split()
    errors = [i for i in ids if i.endswith(("_error", "-error"))]
    assert errors, f"{selector} is described by {ids}: no error"
    expect(page.locator(f"#{errors[0]}").locator(".field-error, .form-error").first).not_to_be_empty()


def test_axe_finds_nothing_serious_on_any_page(page, live_server, demo):
    page.set_viewport_size({"width": 1360, "height": 900})
    report: dict = {}
    found: list[str] = []

    page.goto(f"{live_server.url}/login/")
    found += blocking_violations(page, "login", report)
    store = demo.stores.filter(opt_in_queue_enabled=True).first()
    page.goto(f"{live_server.url}{reverse('queue_check_in', args=[store.checkin_token])}")
    found += blocking_violations(page, "kiosk check-in", report)

    log_in_demo(page, live_server, "admin")
    for label, path in staff_pages(demo):
        response = page.goto(f"{live_server.url}{path}")
        assert response.status == 200, f"{label} {path}: {response.status}"
        found += blocking_violations(page, label, report)

    # Pages that look different for the other roles.
    for username in ("marketer", "budtender"):
        page.context.clear_cookies()
        log_in_demo(page, live_server, username)
        found += blocking_violations(page, f"dashboard ({username})", report)

    # Forms showing their errors: each error is tied to its field.
    page.context.clear_cookies()
    log_in_demo(page, live_server, "admin")
    for label, path, form, field, value in (
            ("offer new (errors)", reverse("offer_create"), "#offer-form", "#id_amount", "-5"),
            ("webhook new (errors)", reverse("webhook_create"), "#endpoint-form", "#id_url", "")):
        page.goto(f"{live_server.url}{path}")
        page.locator(form).evaluate("form => { form.noValidate = true; }")
        page.fill(field, value)
        page.locator(f"{form} button[type=submit]").click()
        expect(page.locator(field)).to_have_attribute("aria-invalid", "true")
        assert_described_by_error(page, field)
        found += blocking_violations(page, label, report)

    page.context.clear_cookies()
    page.goto(f"{live_server.url}{reverse('queue_check_in', args=[store.checkin_token])}")
    page.fill("#id_phone", "303 555")
    page.get_by_role("button", name="Check in").click()
    expect(page.locator("#id_phone")).to_have_attribute("aria-invalid", "true")
    assert_described_by_error(page, "#id_phone")
    found += blocking_violations(page, "kiosk check-in (errors)", report)

    page.goto(f"{live_server.url}/login/")
    page.fill("#id_username", "admin")
    page.fill("#id_password", "wrong")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_be_visible()
    found += blocking_violations(page, "login (errors)", report)

    assert not found, "\n".join(found)


# -- Keyboard and live regions ---------------------------------------------------------------

def tab_to(page, matches: str, limit: int = 60) -> None:
    """Press Tab until the focused element matches the JavaScript test `matches` (given `el`)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"() => {{ const el = document.activeElement; return !!el && ({matches}); }}"):
            return
    raise AssertionError(f"Tab never reached {matches}")


BRAND = "rgb(31, 111, 74)"  # --brand: 6:1 on white


def assert_focus_ring(locator) -> None:
    """The focused control shows a solid outline of the brand colour, at least 2px wide."""
    ring = locator.evaluate("el => { const s = getComputedStyle(el); return {style: s.outlineStyle, "
                            "width: parseFloat(s.outlineWidth), color: s.outlineColor}; }")
    assert ring["style"] == "solid" and ring["width"] >= 2 and ring["color"] == BRAND, ring


def watch_region(page, selector: str) -> None:
    """Mark the live region and count the changes made to it from now on."""
    page.locator(selector).evaluate("""region => {
        region.__watched = true; region.__changes = 0;
        new MutationObserver(() => { region.__changes += 1; })
            .observe(region, {childList: true, characterData: true, subtree: true});
    }""")


def region_state(page, selector: str) -> dict:
    return page.locator(selector).evaluate(
        "region => ({same: region.__watched === true, changes: region.__changes, text: region.textContent})")


@pytest.fixture
def audience_shop(company):
    marketer = MembershipFactory(company=company, role=Role.MARKETER, user__username="kb-marketer").user
    for name in ("Ava", "Ben", "Cal", "Dot"):
        PersonaFactory(company=company, first_name=name, last_name="Member")
    for name in ("Eve", "Fay"):
        PersonaFactory(company=company, first_name=name, last_name="Guest", is_member=False, enrolled_at=None)
    return marketer


def test_audience_builder_by_keyboard_and_its_count_is_announced(page, live_server, audience_shop):
    log_in(page, live_server, audience_shop.username)
    page.goto(f"{live_server.url}{reverse('audience_new')}")
    count = page.get_by_test_id("audience-count")
    expect(count).to_have_text("6")

    # One polite live region holds the count; the card with the preview table is not live.
    status = page.get_by_test_id("count-status")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(status).to_have_attribute("aria-atomic", "true")
    expect(status).to_have_text(re.compile(r"^6 customers match"))
    assert page.get_by_test_id("count-card").get_attribute("aria-live") is None
    watch_region(page, "#audience-count-status")

    # From the Name box, Tab reaches "+ Add condition"; Enter adds a condition and puts the
    # focus on its trait.
    page.get_by_label("Name", exact=True).focus()
    tab_to(page, "el.textContent.trim() === '+ Add condition'")
    page.keyboard.press("Enter")
    trait = page.get_by_label("Condition 1 trait")
    expect(trait).to_be_focused()
    assert_focus_ring(trait)
    expect(status).to_have_text("Not counted yet Condition 1: pick a trait")

    # Typing picks the trait; the count follows, is announced, and the focus stays on the trait.
    page.keyboard.type("Loyalty member")
    expect(page.get_by_label("Condition 1 value")).to_have_value("true")
    expect(count).to_have_text("4")
    expect(status).to_have_text(re.compile(r"^4 customers match"))
    expect(trait).to_be_focused()
    state = region_state(page, "#audience-count-status")
    assert state["same"], "the live region was replaced: screen readers may not read it"
    assert page.get_by_test_id("count-card").get_attribute("aria-live") is None

    # Tab on to the condition's remove button and press it: the count goes back to everyone.
    tab_to(page, "el.getAttribute('aria-label') === 'Remove condition 1'")
    page.keyboard.press("Enter")
    expect(page.get_by_label("Condition 1 trait")).to_have_count(0)
    expect(status).to_have_text(re.compile(r"^6 customers match"))


def test_queue_by_keyboard_and_only_its_count_is_live(page, live_server, company,
                                                      queue_store, regular):  # noqa: F811
    membership = MembershipFactory(company=company, role=Role.BUDTENDER, user__username="kb-bud")
    membership.stores.set([queue_store])
    queue_check_in(store=queue_store, phone=regular.phone)
    queue_check_in(store=queue_store, phone="+17205550188", first_name="Theo", last_name="Walker")

    page.set_viewport_size({"width": 1360, "height": 900})
    log_in(page, live_server, "kb-bud")
    page.goto(f"{live_server.url}{reverse('queue_store', args=[queue_store.pk])}")
    expect(page.get_by_test_id("queue-count")).to_have_text("2")

    # The first Tab offers the skip link; it leads past the navigation to the content.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to content")).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.locator("main")).to_be_focused()

    # Only the summary is live, in a region the 2-second redraw leaves alone.
    status = page.get_by_test_id("queue-status")
    expect(status).to_have_attribute("aria-live", "polite")
    expect(status).to_have_attribute("aria-atomic", "true")
    expect(status).to_have_text("2 in line")
    assert page.get_by_test_id("queue").get_attribute("aria-live") is None
    watch_region(page, "#queue-status")

    # Tab to the regular's name: the focus stays on it through the redraws.
    tab_to(page, "el.dataset.testid === 'queue-name' && el.textContent.trim() === 'Rita Regular'")
    page.wait_for_timeout(4500)  # two polls at least
    name = page.get_by_test_id("queue-entry").filter(has_text="Rita Regular").get_by_test_id("queue-name")
    expect(name).to_be_focused()
    assert_focus_ring(name)
    state = region_state(page, "#queue-status")
    assert state == {"same": True, "changes": 0, "text": "2 in line"}, state

    # Enter opens the profile beside the queue and takes the focus to it.
    page.keyboard.press("Enter")
    panel = page.get_by_test_id("profile-panel")
    expect(panel.get_by_test_id("profile-name")).to_have_text("Rita Regular")
    expect(panel.get_by_test_id("profile-name")).to_be_focused()
    page.wait_for_timeout(2500)
    expect(panel.get_by_test_id("profile-name")).to_be_focused()  # a poll does not take it away

    # Someone checks in at the door: the count is announced once.
    queue_check_in(store=queue_store, phone="+13035550999", first_name="Una", last_name="New")
    expect(page.get_by_test_id("queue-count")).to_have_text("3", timeout=5000)
    expect(status).to_have_text("3 in line")
    page.wait_for_timeout(2500)
    state = region_state(page, "#queue-status")
    assert state["same"] and state["text"] == "3 in line", state
    assert state["changes"] == 1, state
    expect(status).to_have_attribute("aria-live", "polite")


def test_axe_finds_nothing_serious_after_htmx_changes_and_on_a_phone(page, live_server, demo):
    """The states htmx draws (a half-made audience, an open profile, filtered personas) and
    the pages a budtender opens on a phone."""
    report: dict = {}
    found: list[str] = []
    page.set_viewport_size({"width": 1360, "height": 900})
    log_in_demo(page, live_server, "admin")

    page.goto(f"{live_server.url}{reverse('audience_new')}")
    page.get_by_role("button", name="+ Add condition").click()
    expect(page.get_by_test_id("audience-error")).to_have_text("Condition 1: pick a trait")
    found += blocking_violations(page, "audience builder (half-made condition)", report)
    page.get_by_label("Condition 1 trait").select_option(label="Lifetime spend")
    expect(page.get_by_label("Condition 1 value")).to_be_visible()
    page.wait_for_function("() => !document.querySelector('#rules-editor.htmx-request')")
    page.get_by_role("button", name="+ Add group").first.click()
    expect(page.get_by_role("group", name="Group 1")).to_be_visible()
    found += blocking_violations(page, "audience builder (condition and group)", report)

    entry = QueueEntry.objects.filter(store__company=demo).order_by("id").first()
    page.goto(f"{live_server.url}{reverse('queue_store', args=[entry.store_id])}")
    page.get_by_test_id("queue-name").first.click()
    expect(page.get_by_test_id("profile-panel").get_by_test_id("profile-name")).to_be_visible()
    found += blocking_violations(page, "queue (profile open)", report)

    page.goto(f"{live_server.url}{reverse('persona_list')}")
    page.get_by_label("Search").fill("a")
    page.wait_for_function("() => !document.querySelector('#persona-results.htmx-request')")
    found += blocking_violations(page, "personas list (searched)", report)

    page.set_viewport_size({"width": 390, "height": 844})
    for label, path in (("dashboard", reverse("home")),
                        ("queue", reverse("queue_store", args=[entry.store_id])),
                        ("queue profile", reverse("queue_profile", args=[entry.store_id, entry.pk])),
                        ("personas list", reverse("persona_list")),
                        ("audience builder", reverse("audience_new"))):
        page.goto(f"{live_server.url}{path}")
        found += blocking_violations(page, f"{label} (phone)", report)
    page.context.clear_cookies()
    store = demo.stores.filter(opt_in_queue_enabled=True).first()
    page.goto(f"{live_server.url}{reverse('queue_check_in', args=[store.checkin_token])}")
    found += blocking_violations(page, "kiosk check-in (phone)", report)

    assert not found, "\n".join(found)


def test_axe_finds_nothing_serious_on_the_two_factor_steps(page, live_server, company):
    """The pages only a POST or a second factor leads to: the recovery codes, the code step
    (with a wrong code), two-factor on."""
    from tests.browser.test_two_factor_browser import app_code

    MembershipFactory(company=company, role=Role.ADMIN, user__username="tf-admin")
    report: dict = {}
    found: list[str] = []
    log_in(page, live_server, "tf-admin")
    page.goto(f"{live_server.url}{reverse('two_factor')}")
    secret = page.get_by_test_id("totp-secret").inner_text()
    page.get_by_label("Code").fill("000000" if app_code(secret) != "000000" else "111111")
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_test_id("code-error")).to_be_visible()
    expect(page.get_by_label("Code")).to_have_attribute("aria-invalid", "true")
    assert_described_by_error(page, "#enrol-code")
    found += blocking_violations(page, "two-factor set-up (wrong code)", report)
    page.wait_for_timeout(2100)  # a wrong code makes the next one wait
    page.get_by_label("Code").fill(app_code(secret))
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_test_id("recovery-code")).to_have_count(10)
    found += blocking_violations(page, "two-factor recovery codes", report)
    page.get_by_role("link", name="I have saved them").click()
    expect(page.get_by_test_id("codes-left")).to_be_visible()
    found += blocking_violations(page, "two-factor on", report)

    page.get_by_role("button", name="Log out").click()
    page.fill("#id_username", "tf-admin")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Two-factor code")).to_be_visible()
    found += blocking_violations(page, "sign-in code step", report)
    page.get_by_label("Code").fill(f"{(int(app_code(secret)) + 1) % 1_000_000:06d}")
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_test_id("code-error")).to_be_visible()
    expect(page.get_by_label("Code")).to_have_attribute("aria-invalid", "true")
    assert_described_by_error(page, "#id_code")
    found += blocking_violations(page, "sign-in code step (wrong code)", report)

    assert not found, "\n".join(found)
