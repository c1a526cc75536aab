"""Settings › Loyalty page in a real browser: an admin switches to the company's own Twilio
account, sends a test message (htmx, through the Twilio fake) and reads the result; axe-core
finds nothing serious or critical on the page."""

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from members.models import LoyaltyPageSettings
from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory

from . import sms_fixtures

twilio_server = sms_fixtures.twilio_server

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

OWN_SID = "AC" + "34" * 16
OWN_TOKEN = "browser-own-token-000000000009876"


def _blocking(page) -> list[str]:
    page.wait_for_load_state("networkidle")
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']} ({v['impact']}) {[n['target'] for n in v['nodes']]}"
            for v in violations if v["impact"] in ("serious", "critical")]


def test_an_admin_sets_our_twilio_and_sends_a_test_message(page, live_server, company, twilio_server):
    admin = MembershipFactory(company=company, role=Role.ADMIN, user__username="boss").user
    twilio_server.add_account(OWN_SID, OWN_TOKEN)
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    log_in(page, live_server, admin.username)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Loyalty page").click()
    expect(page.get_by_role("heading", name="Loyalty page", exact=True)).to_be_visible()
    assert _blocking(page) == []

    page.get_by_label("Loyalty page on").check()
    page.get_by_label("Market 1", exact=True).fill("MI")
    page.get_by_label("Minimum age in market 1").fill("18")
    page.get_by_label("Our Twilio account", exact=True).check()
    page.get_by_label("Twilio account SID").fill(OWN_SID)
    page.get_by_label("Sender", exact=True).fill("+17205550199")
    page.get_by_label("Twilio auth token").fill(OWN_TOKEN)
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text("Loyalty page settings saved.")).to_be_visible()
    expect(page.get_by_text("Saved, ending ••••9876. Leave blank to keep it.")).to_be_visible()
    assert page.get_by_label("Twilio auth token").input_value() == ""

    page.get_by_label("Send a test message to").fill("(303) 555-0142")
    page.get_by_role("button", name="Send a test message").click()
    expect(page.get_by_test_id("test-sent")).to_contain_text("Test message sent to +13035550142")
    [message] = twilio_server.messages
    assert (message["account_sid"], message["body"]) == (OWN_SID, f"Test message from {company.name}")
    assert _blocking(page) == []

    # Twilio down: the clear message, in place
    twilio_server.fail_next(status=503, code=20503, message="Service Unavailable")
    page.get_by_role("button", name="Send a test message").click()
    expect(page.get_by_test_id("test-failed")).to_contain_text(
        "We couldn't send the text message right now. Try again in a few minutes.")
    expect(page.get_by_test_id("test-failed")).to_contain_text("Service Unavailable (20503)")
    assert LoyaltyPageSettings.objects.get(company=company).minimum_ages == {"MI": 18}
    assert problems == []
