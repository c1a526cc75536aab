"""The demo admin's path through the persona pages, in a real browser."""

import re

import pytest
from playwright.sync_api import expect

from loyalty.models import PointsEntry
from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory, PersonaFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(company):
    admin = MembershipFactory(company=company, role=Role.ADMIN, user__username="shop-admin").user
    dana = PersonaFactory(company=company, first_name="Dana", last_name="Whitfield", points_balance=120,
                          lifetime_points=120)
    for n in range(8):
        PersonaFactory(company=company, first_name=f"Other{n}", last_name="Shopper")
    return admin, dana


def test_admin_searches_opens_a_card_and_adjusts_points(page, live_server, shop):
    admin, dana = shop
    log_in(page, live_server, admin.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Personas").click()

    expect(page.get_by_test_id("result-count")).to_have_text("9 personas")
    # Survives only if the search and the adjustment happen without a full page load.
    page.evaluate("window.__noReload = true")

    page.fill("#id_q", "whitf")
    expect(page.get_by_test_id("result-count")).to_have_text("1 persona")
    rows = page.get_by_test_id("persona-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(page).to_have_url(re.compile(r"q=whitf"))
    assert page.evaluate("window.__noReload") is True

    rows.first.get_by_role("link", name="Dana Whitfield").click()
    expect(page.get_by_role("heading", name=re.compile("Dana Whitfield"))).to_be_visible()
    expect(page.get_by_test_id("points-balance")).to_have_text("120")
    page.evaluate("window.__noReload = true")

    page.fill("#id_delta", "35")
    page.fill("#id_reason", "Birthday bonus")
    page.get_by_role("button", name="Adjust").click()

    expect(page.get_by_test_id("points-balance")).to_have_text("155")
    first_row = page.get_by_test_id("ledger").locator("tbody tr").first
    expect(first_row).to_contain_text("Birthday bonus")
    expect(first_row).to_contain_text("+35")
    expect(first_row).to_contain_text(admin.username)
    assert page.evaluate("window.__noReload") is True

    # Taking back more than the balance is refused in place, and nothing is written.
    page.fill("#id_delta", "-1000")
    page.fill("#id_reason", "Return")
    page.get_by_role("button", name="Adjust").click()
    expect(page.get_by_role("alert")).to_contain_text("155")
    expect(page.get_by_test_id("points-balance")).to_have_text("155")
    assert page.evaluate("window.__noReload") is True

    dana.refresh_from_db()
    assert dana.points_balance == 155
    assert PointsEntry.objects.filter(persona=dana, kind=PointsEntry.Kind.ADJUST).count() == 1


def test_budtender_sees_no_settings_and_can_still_adjust(page, live_server, company, shop):
    _, dana = shop
    budtender = MembershipFactory(company=company, role=Role.BUDTENDER, user__username="bud").user
    log_in(page, live_server, budtender.username)
    expect(page.get_by_role("link", name="Retail stores")).to_have_count(0)
    page.goto(f"{live_server.url}/personas/{dana.pk}/")
    expect(page.get_by_role("button", name="Adjust")).to_be_visible()
