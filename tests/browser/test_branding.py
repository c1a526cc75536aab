"""A company's logo and accent colour in a real browser: set on Settings › Branding, drawn
in the top bar and on the waiting-room tablet through the company's stylesheet (the CSP
allows no style attributes), with text that stays readable on the accent."""

import pytest
from playwright.sync_api import expect

from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory, RetailStoreFactory
from tests.stores.test_branding import png

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

BACKGROUND_AND_TEXT = "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]"


def test_an_admin_brands_the_top_bar_and_the_tablet(page, browser, live_server, company, tmp_path):
    admin = MembershipFactory(company=company, role=Role.ADMIN, user__username="boss").user
    store = RetailStoreFactory(company=company, name="Denver", opt_in_queue_enabled=True)
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    log_in(page, live_server, admin.username)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Branding").click()
    expect(page.get_by_role("heading", name="Branding")).to_be_visible()
    logo = tmp_path / "logo.png"
    logo.write_bytes(png(width=8, height=4))
    page.get_by_label("Logo").set_input_files(str(logo))
    page.get_by_label("Accent colour").fill("#ffd60a")  # a light yellow: dark text on it
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Branding saved.")
    page.wait_for_load_state("load")

    topbar = page.locator("header.topbar")
    expect(page.get_by_test_id("brand-logo")).to_be_visible()
    assert page.get_by_test_id("brand-logo").evaluate("img => img.naturalWidth") == 8
    assert topbar.evaluate(BACKGROUND_AND_TEXT) == ["rgb(255, 214, 10)", "rgb(16, 24, 40)"]
    assert page.locator("header .who").evaluate("e => getComputedStyle(e).color") == "rgb(16, 24, 40)"

    # A dark accent turns the text white.
    page.get_by_label("Accent colour").fill("#1f3a8a")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("Branding saved.")
    page.wait_for_load_state("load")  # the new branding stylesheet, not only the page's text
    assert topbar.evaluate(BACKGROUND_AND_TEXT) == ["rgb(31, 58, 138)", "rgb(255, 255, 255)"]

    # The tablet at the door, signed in as nobody.
    kiosk = browser.new_context().new_page()
    kiosk.on("console", lambda m: m.type == "error" and problems.append(m.text))
    kiosk.goto(f"{live_server.url}/queue/check-in/{store.checkin_token}/")
    expect(kiosk.get_by_test_id("kiosk-logo")).to_be_visible()
    assert kiosk.get_by_test_id("kiosk-logo").evaluate("img => img.naturalWidth") == 8
    button = kiosk.get_by_role("button", name="Check in")
    assert button.evaluate(BACKGROUND_AND_TEXT) == ["rgb(31, 58, 138)", "rgb(255, 255, 255)"]
    assert problems == []  # nothing refused by the CSP, nothing missing
