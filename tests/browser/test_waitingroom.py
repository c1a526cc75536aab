"""The waiting room in two browsers at once: a customer checks in on the tablet at the
door, and the budtender's open queue shows them without a reload."""

import pytest
from playwright.sync_api import expect

from loyalty.models import LoyaltyProgram, Persona
from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory
from tests.waitingroom.conftest import other_store, queue_store, regular  # noqa: F401 - fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_check_in_shows_up_live_signup_turns_enrolled_and_profile_shows_history(
        browser, live_server, company, queue_store, admin_user, regular):  # noqa: F811
    LoyaltyProgram.objects.update_or_create(company=company, defaults={"signup_bonus": 25})
    membership = MembershipFactory(company=company, role=Role.BUDTENDER, user__username="bud")
    membership.stores.set([queue_store])

    staff = browser.new_context(viewport={"width": 1360, "height": 900})
    budtender = staff.new_page()
    log_in(budtender, live_server, "bud")
    budtender.get_by_role("navigation", name="Main").get_by_role("link", name="Waiting room").click()
    expect(budtender.get_by_role("heading", name="Denver – Broadway queue")).to_be_visible()
    expect(budtender.get_by_test_id("queue-empty")).to_be_visible()
    budtender.evaluate("window.__noReload = true")

    door = browser.new_context(viewport={"width": 820, "height": 1180})  # the tablet
    kiosk = door.new_page()
    kiosk.goto(f"{live_server.url}/queue/check-in/{queue_store.checkin_token}/")
    kiosk.fill("#id_phone", "303 555")
    kiosk.get_by_role("button", name="Check in").click()
    expect(kiosk.get_by_test_id("error-phone")).to_contain_text("not a valid phone number")

    kiosk.fill("#id_phone", "(720) 555-0188")
    kiosk.fill("#id_first_name", "Theo")
    kiosk.fill("#id_last_name", "Walker")
    kiosk.get_by_label("Text me deals and updates").check()
    kiosk.get_by_role("button", name="Check in").click()
    expect(kiosk.get_by_test_id("checked-in")).to_contain_text("You're checked in, Theo!")

    # The open queue shows the new arrival by itself, within 5 seconds.
    row = budtender.get_by_test_id("queue-entry").filter(has_text="Theo Walker")
    expect(row).to_be_visible(timeout=5000)
    expect(row.get_by_test_id("signup")).to_have_text("Signup")

    # A regular checks in from their own phone: a member, shown as Enrolled.
    phone = browser.new_context().new_page()
    phone.goto(f"{live_server.url}/queue/check-in/{queue_store.checkin_token}/")
    phone.fill("#id_phone", "303-555-0123")
    phone.get_by_role("button", name="Check in").click()
    expect(phone.get_by_test_id("checked-in")).to_contain_text("number 2 in line")
    rita = budtender.get_by_test_id("queue-entry").filter(has_text="Rita Regular")
    expect(rita.get_by_test_id("enrolled")).to_be_visible(timeout=5000)
    expect(budtender.get_by_test_id("queue-count")).to_have_text("2")

    row.get_by_test_id("signup").click()
    expect(row.get_by_test_id("enrolled")).to_have_text("Enrolled")
    expect(budtender.get_by_role("status")).to_contain_text("Theo Walker is now a loyalty member.")
    theo = Persona.objects.get(company=company, phone="+17205550188")
    assert theo.is_member and theo.points_balance == 25 and theo.sms_opt_in

    # The profile opens beside the queue with the regular's history and wallet.
    rita.get_by_test_id("queue-name").click()
    panel = budtender.get_by_test_id("profile-panel")
    expect(panel.get_by_test_id("profile-name")).to_have_text("Rita Regular")
    expect(panel.get_by_test_id("profile-wallet")).to_contain_text("Free pre-roll")
    expect(panel.get_by_test_id("profile-preferences")).to_contain_text("Flower")
    expect(panel.get_by_test_id("profile-orders")).to_contain_text("2 × Blue Dream 3.5g")
    expect(panel.get_by_test_id("profile-orders")).to_contain_text("Delivery")

    # Serving and finishing move them along; the panel stays open through the polling.
    rita.get_by_role("button", name="Start serving").click()
    expect(rita).to_contain_text("Being served")
    budtender.wait_for_timeout(2500)  # at least one poll in between
    expect(panel.get_by_test_id("profile-name")).to_have_text("Rita Regular")
    rita.get_by_role("button", name="Done").click()
    expect(budtender.get_by_test_id("queue-entry")).to_have_count(1)
    expect(budtender.get_by_test_id("queue-count")).to_have_text("1")

    assert budtender.evaluate("window.__noReload") is True
    staff.close()
    door.close()


def test_enrolled_is_a_status_badge_like_the_persona_cards_not_a_red_button(
        page, live_server, company, queue_store, admin_user, regular):  # noqa: F811
    from waitingroom.services import queue_check_in

    queue_check_in(store=queue_store, phone=regular.phone)
    queue_check_in(store=queue_store, phone="+17205550100", first_name="Walk", last_name="In")
    log_in(page, live_server, admin_user.username)
    page.goto(f"{live_server.url}/queue/{queue_store.pk}/")
    enrolled = page.get_by_test_id("queue-entry").filter(has_text="Rita Regular").get_by_test_id("enrolled")
    expect(enrolled).to_have_text("Enrolled")
    # a status, not something to press, and not the colour of an error
    assert enrolled.evaluate("e => e.tagName") == "SPAN"
    expect(page.get_by_role("button", name="Enrolled")).to_have_count(0)
    expect(page.get_by_test_id("signup")).to_have_text("Signup")
    queue_badge = enrolled.evaluate("e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")
    page.goto(f"{live_server.url}/personas/{regular.pk}/")
    card_badge = page.locator(".badge-member").first
    expect(card_badge).to_be_visible()
    assert queue_badge == card_badge.evaluate(
        "e => [getComputedStyle(e).backgroundColor, getComputedStyle(e).color]")


def test_the_profile_opened_as_a_page_shows_every_section_to_the_last_order(
        page, live_server, company, queue_store, admin_user, regular):  # noqa: F811
    import datetime as dt

    from tests.waitingroom.conftest import sale
    from waitingroom.services import queue_check_in

    now = dt.datetime.now(dt.UTC)
    for n in range(8):  # ten orders in all, the most the profile lists
        sale(regular, queue_store, f"R-more-{n}", now - dt.timedelta(days=40 + n),
             [("Sour Gummies", "Wana", "Edibles", "1", "18.00"),
              ("Pre-roll", "Lazercat", "Pre-Rolls", "2", "8.00")])
    entry = queue_check_in(store=queue_store, phone=regular.phone)
    page.set_viewport_size({"width": 1280, "height": 640})
    log_in(page, live_server, admin_user.username)
    page.goto(f"{live_server.url}/queue/{queue_store.pk}/entries/{entry.pk}/profile/")
    panel = page.get_by_test_id("profile-panel")
    expect(panel.get_by_test_id("profile-name")).to_have_text("Rita Regular")
    expect(panel.get_by_role("heading", name="Recent orders")).to_be_visible()
    # nothing is cut off inside the panel: it is as tall as what it holds
    assert panel.evaluate("e => e.scrollHeight - e.clientHeight") <= 1
    last = panel.locator("details.order").last
    last.scroll_into_view_if_needed()
    expect(last).to_be_in_viewport()
    assert panel.locator("details.order").count() == 10
