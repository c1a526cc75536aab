"""The customer's loyalty page on a phone: sign in with the code from the outbox, join, see
the points; nothing serious for axe-core, nothing refused by the CSP, no sideways scrolling.

Set SCREENSHOTS=/tmp/shots-members to keep a picture of each page."""

import contextlib
import os
import re
from pathlib import Path

import pytest
from django.core.management import call_command
from playwright.sync_api import expect

from loyalty.models import ConsentRecord, Persona
from members.models import SentMessage
from stores.models import Company
from stores.services import company_branding_update
from tests.browser.test_accessibility import blocking_violations
from tests.browser.test_csp import WATCH_CSP
from tests.members.sign_in_helpers import send_limits_reset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE_WIDTH, PHONE_HEIGHT = 390, 844
NEW_PHONE = "(720) 555-0199"


@pytest.fixture
def demo_page():
    send_limits_reset()
    call_command("load_demo", personas=40, transactions=300)
    call_command("load_demo_members")
    company = Company.objects.get(slug="green-leaf")
    return company_branding_update(company=company, accent_color="#1d6b45")


def code_from_outbox(company, phone_e164: str) -> str:
    message = SentMessage.objects.filter(company=company, to=phone_e164, purpose="sign_in").latest("id")
    return re.search(r"\b(\d{6})\b", message.body).group(1)


class Phone:
    """A phone-sized browser on the customer pages, watching for CSP refusals and errors."""

    def __init__(self, browser, live_server):
        self.context = browser.new_context(viewport={"width": PHONE_WIDTH, "height": PHONE_HEIGHT},
                                           device_scale_factor=2, is_mobile=True, has_touch=True)
        self.page = self.context.new_page()
        self.base, self.problems, self.axe, self.report = live_server.url, [], [], {}
        self.page.add_init_script(WATCH_CSP)
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda e: self.problems.append(f"{self.page.url}: {e}"))
        self.bytes: dict[str, int] = {}
        self.page.on("response", self._count)

    def _console(self, message):
        # A refused form answers 400 on purpose (its errors are on the page).
        if message.type == "error" and "status of 400" not in message.text:
            self.problems.append(f"{self.page.url}: {message.text}")

    def _count(self, response):
        if response.request.resource_type in ("document", "stylesheet", "script"):
            with contextlib.suppress(Exception):  # a redirect has no body
                self.bytes[response.url] = len(response.body())

    def check(self, label: str):
        """axe-core, the CSP, the width, and a picture."""
        page = self.page
        self.axe += blocking_violations(page, label, self.report)
        self.problems += page.evaluate("window.__csp || []")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE_WIDTH, f"{label} scrolls sideways: {width}px"
        if os.environ.get("SCREENSHOTS"):
            folder = Path(os.environ["SCREENSHOTS"])
            folder.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(folder / f"{label}.png"), full_page=True)


def test_sign_in_join_and_see_points_on_a_phone(browser, live_server, demo_page):
    company = demo_page
    phone = Phone(browser, live_server)
    page = phone.page

    # a new customer opens the page and asks for a code
    page.goto(f"{live_server.url}/c/{company.slug}/")
    expect(page.get_by_role("heading", name="Your rewards, in your pocket")).to_be_visible()
    phone.check("1-sign-in")
    page.get_by_label("Mobile number").fill(NEW_PHONE)
    page.get_by_role("button", name="Text me a code").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    expect(page.get_by_test_id("code-phone")).to_have_text(NEW_PHONE)
    phone.check("2-code")

    # a wrong code says so, beside the field
    page.get_by_label("6-digit code").fill("000000" if code_from_outbox(company, "+17205550199") != "000000"
                                          else "111111")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("error-code")).to_contain_text("4 tries left")
    phone.check("3-code-wrong")

    # the right one, read from the outbox, leads to joining (the number is new here)
    page.get_by_label("6-digit code").fill(code_from_outbox(company, "+17205550199"))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Join {company.name} Rewards")).to_be_visible()
    phone.check("4-join")

    # too young for Colorado: refused, saying why
    page.get_by_label("First name").fill("Rosa")
    page.get_by_label("Last name").fill("Diaz")
    page.get_by_label("Birth date").fill("2010-05-01")
    page.get_by_label("Favourite store").select_option(label="Denver – Broadway")
    page.get_by_label(re.compile("^Text me offers")).check()
    page.get_by_role("button", name="Join and see my points").click()
    expect(page.get_by_test_id("error-birth_date")).to_have_text("You must be 21 or older to join in CO.")
    phone.check("5-join-under-age")

    page.get_by_label("Birth date").fill("1990-05-01")
    page.get_by_role("button", name="Join and see my points").click()
    expect(page.get_by_test_id("welcome")).to_contain_text(f"Welcome to {company.name} Rewards, Rosa!")
    expect(page.get_by_test_id("balance")).to_be_visible()
    phone.check("6-points-new-member")
    persona = Persona.objects.get(company=company, phone="+17205550199")
    assert persona.is_member and persona.sourced_from.name == "Loyalty page"
    assert list(ConsentRecord.objects.filter(persona=persona).values_list("channel", flat=True)) == ["sms"]

    # sign out, then a demo member with a history signs in straight to their points
    page.get_by_test_id("sign-out").click()
    expect(page.get_by_role("heading", name="Your rewards, in your pocket")).to_be_visible()
    member = (Persona.objects.filter(company=company, is_member=True, points_balance__gt=0)
              .exclude(phone="").order_by("-lifetime_points").first())
    page.get_by_label("Mobile number").fill(member.phone)
    page.get_by_role("button", name="Text me a code").click()
    page.get_by_label("6-digit code").fill(code_from_outbox(company, member.phone))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("balance")).to_have_text(f"{member.points_balance:,}")
    expect(page.get_by_test_id("history")).to_be_visible()
    phone.check("7-points-member")

    # the smallest common phone: still no sideways scrolling
    page.set_viewport_size({"width": 360, "height": 740})
    page.reload()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    logo_box = page.locator(".m-logo").bounding_box()
    assert (logo_box["width"], logo_box["height"]) == (40, 40)

    assert phone.axe == [], "\n".join(phone.axe)
    assert phone.problems == [], "\n".join(phone.problems)
    # each page, with its stylesheets, well under 100 KB before images
    styles = sum(size for url, size in phone.bytes.items() if ".css" in url)
    assert max(phone.bytes.values()) + styles < 100_000, phone.bytes
    print(f"page bytes: largest document {max(phone.bytes.values())}, stylesheets {styles}")
    phone.context.close()
