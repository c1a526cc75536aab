"""The staff pages on a desktop, a tablet and a phone, and the queue's counter mode for the
tablet mounted at the counter."""

import re

import pytest
from playwright.sync_api import expect

from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory, PersonaFactory
from tests.waitingroom.conftest import queue_store, regular  # noqa: F401 - fixtures
from waitingroom import services as queue_services

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP, TABLET, PHONE = 1280, 768, 390
TOUCH_MIN = 44


@pytest.fixture
def floor(company, queue_store, regular):  # noqa: F811
    """An admin, a queue with a long name and a member in it, and a page of personas."""
    MembershipFactory(company=company, role=Role.ADMIN, user__username="floor-admin")
    queue_services.queue_check_in(store=queue_store, phone=regular.phone)
    queue_services.queue_check_in(store=queue_store, phone="+17205550199", first_name="Alexandrina",
                                  last_name="Featherstonehaugh-Whitmore")
    for n in range(30):  # more than a page
        PersonaFactory(company=company, first_name=f"Shopper{n}", last_name="Longsurname-Example",
                       email=f"shopper.{n}.with.a.long.address@example.com")
    return queue_store, regular


def _page(browser, live_server, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    log_in(page, live_server, "floor-admin")
    return context, page


def _no_page_scroll(page):
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"the page scrolls sideways at {inner} px: {scroll} px wide"


def _height(locator):
    box = locator.bounding_box()
    assert box, "not on screen"
    return box["height"]


def _assert_touch(locators):
    for locator in locators:
        assert _height(locator) >= TOUCH_MIN, f"{locator} is under {TOUCH_MIN} px high"


def _urls(store, persona):
    return {"queue": f"/queue/{store.pk}/", "persona card": f"/personas/{persona.pk}/",
            "personas list": "/personas/"}


@pytest.mark.parametrize("width", [DESKTOP, TABLET, PHONE])
def test_pages_fit_the_screen_without_sideways_scrolling(browser, live_server, floor, width):
    store, persona = floor
    context, page = _page(browser, live_server, width)
    for name, url in _urls(store, persona).items():
        page.goto(live_server.url + url)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        _no_page_scroll(page)
        if name == "personas list":
            # The table scrolls in its own box if it must, its first column staying in view.
            table = page.get_by_test_id("persona-table")
            box = table.locator("xpath=..")
            assert box.evaluate("e => getComputedStyle(e).overflowX") == "auto"
            first = table.locator("tbody tr").first.locator("td").first
            assert first.evaluate("e => getComputedStyle(e).position") == "sticky"
    context.close()


def test_desktop_keeps_the_side_navigation(browser, live_server, floor):
    context, page = _page(browser, live_server, DESKTOP)
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    box = nav.bounding_box()
    assert box["width"] < 260 and box["height"] > 500  # a column down the left side
    context.close()


@pytest.mark.parametrize("width", [TABLET, PHONE])
def test_menu_button_opens_the_navigation_under_900px(browser, live_server, floor, width):
    store, _ = floor
    context, page = _page(browser, live_server, width)
    nav = page.get_by_role("navigation", name="Main")
    menu = page.get_by_role("button", name="Menu")
    expect(nav).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    _assert_touch([menu])

    menu.click()
    expect(menu).to_have_attribute("aria-expanded", "true")
    expect(nav).to_be_visible()
    assert menu.get_attribute("aria-controls") == nav.get_attribute("id")
    links = nav.get_by_role("link")
    for name in ["Personas", "Waiting room", "Audiences", "Activity"]:
        link = nav.get_by_role("link", name=name, exact=True)
        expect(link).to_be_in_viewport()
        _assert_touch([link])
    assert links.count() >= 8
    _no_page_scroll(page)

    # Escape closes it and gives the focus back to the button.
    page.keyboard.press("Escape")
    expect(nav).to_be_hidden()
    expect(menu).to_have_attribute("aria-expanded", "false")
    expect(menu).to_be_focused()

    # The last link is reachable too: open, scroll to it if need be, follow it.
    menu.click()
    nav.get_by_role("link", name="Waiting room").click()
    expect(page).to_have_url(re.compile(rf"/queue/{store.pk}/"))
    expect(nav).to_be_hidden()
    context.close()


@pytest.mark.parametrize("width", [TABLET, PHONE])
def test_touch_targets_are_at_least_44px(browser, live_server, floor, width):
    store, persona = floor
    context, page = _page(browser, live_server, width)

    page.goto(f"{live_server.url}/queue/{store.pk}/")
    row = page.get_by_test_id("queue-entry").filter(has_text="Featherstonehaugh")
    _assert_touch([row.get_by_test_id("queue-name"), row.get_by_test_id("signup"),
                   row.get_by_role("button", name="Start serving"), row.get_by_role("button", name="Remove")])

    page.goto(f"{live_server.url}/personas/{persona.pk}/")
    _assert_touch([page.get_by_label("Points", exact=True), page.get_by_label("Reason", exact=True),
                   page.get_by_role("button", name="Adjust")])

    page.goto(f"{live_server.url}/personas/")
    rows = page.get_by_test_id("persona-table").locator("tbody tr")
    _assert_touch([page.get_by_label("Search", exact=True), rows.first.get_by_role("link"),
                   page.get_by_role("link", name="Next →")])
    context.close()


def test_counter_mode_large_type_one_tap_opens_the_profile_and_arrivals_show_up(
        browser, live_server, floor, company):
    store, regular_persona = floor
    context, page = _page(browser, live_server, TABLET)
    page.goto(f"{live_server.url}/queue/{store.pk}/")
    normal_size = page.get_by_test_id("queue-name").first.evaluate(
        "e => parseFloat(getComputedStyle(e).fontSize)")

    page.get_by_role("link", name="Counter mode", exact=True).click()
    expect(page.get_by_role("link", name="Leave counter mode")).to_be_visible()
    # Full width: no side navigation and no menu button, the queue in large type.
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.get_by_role("button", name="Menu")).to_be_hidden()
    name = page.get_by_test_id("queue-name").first
    size = name.evaluate("e => parseFloat(getComputedStyle(e).fontSize)")
    assert size >= 18 and size > normal_size
    queue_box = page.get_by_test_id("queue").bounding_box()
    assert queue_box["width"] > TABLET - 60
    _no_page_scroll(page)

    # Remembered: the queue opened again, without the parameter, is still in counter mode.
    page.goto(f"{live_server.url}/queue/{store.pk}/")
    expect(page.get_by_role("link", name="Leave counter mode")).to_be_visible()
    page.evaluate("window.__noReload = true")

    # One tap anywhere on a row (here, its waiting time) opens the customer's profile.
    rita = page.get_by_test_id("queue-entry").filter(has_text="Rita Regular")
    rita.locator("td").nth(2).click()
    panel = page.get_by_test_id("profile-panel")
    expect(panel.get_by_test_id("profile-name")).to_have_text("Rita Regular")
    expect(panel).to_be_in_viewport()

    # A customer who checks in at the door shows up by itself.
    queue_services.queue_check_in(store=store, phone="+13035550777", first_name="Nina",
                                  last_name="Newcomer")
    expect(page.get_by_test_id("queue-entry").filter(has_text="Nina Newcomer")).to_be_visible(timeout=5000)
    expect(page.get_by_test_id("queue-count")).to_have_text("3")
    expect(panel.get_by_test_id("profile-name")).to_have_text("Rita Regular")
    assert page.evaluate("window.__noReload") is True

    # The way out brings the staff pages back.
    page.get_by_role("link", name="Leave counter mode").click()
    expect(page.get_by_role("link", name="Counter mode", exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Menu")).to_be_visible()
    context.close()
