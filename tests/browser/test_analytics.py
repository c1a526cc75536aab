"""A marketer reads Analytics in a real browser: the charts are drawn, the store filter and
the date range update the KPIs and charts without a page load (and the URL follows), a
chart turns into its table, and its CSV downloads."""

import csv
import datetime as dt
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from loyalty.services import LineItemData, TransactionData, source_get_or_create, transaction_record
from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory, RetailStoreFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(company, other_company):
    """Denver sold 100 + 100 in the last 30 days and 50 some 200 days ago; Boulder 30 ten
    days ago and 70 a hundred days ago. Another company sold 5,000 yesterday."""
    marketer = MembershipFactory(company=company, role=Role.MARKETER, user__username="numbers").user
    denver = RetailStoreFactory(company=company, name="Denver")
    boulder = RetailStoreFactory(company=company, name="Boulder")
    today = timezone.now().astimezone(ZoneInfo(company.timezone)).date()

    def sale(company, store, ref, days_ago, amount):
        noon = dt.datetime.combine(today - dt.timedelta(days=days_ago), dt.time(12),
                                   tzinfo=ZoneInfo(company.timezone))
        amount = Decimal(amount)
        item = LineItemData(product=f"{store.name} special", category="Flower", brand="House",
                            quantity=Decimal("1"), unit_price=amount, total=amount)
        transaction_record(company=company, source=source_get_or_create(company=company, kind="pos_api"),
                           data=TransactionData(external_id=ref, occurred_at=noon, store_id=store.pk,
                                                subtotal=amount, total=amount, line_items=[item]))

    sale(company, denver, "d1", 2, "100.00")
    sale(company, denver, "d2", 20, "100.00")
    sale(company, denver, "d3", 200, "50.00")
    sale(company, boulder, "b1", 10, "30.00")
    sale(company, boulder, "b2", 100, "70.00")
    sale(other_company, RetailStoreFactory(company=other_company, name="Elsewhere"), "x1", 1, "5000.00")
    return marketer, denver, boulder


def net_sales(page):
    return page.get_by_test_id("kpi-net_sales-value")


def test_marketer_filters_analytics_without_a_reload(page, live_server, shop, tmp_path):
    marketer, denver, boulder = shop
    log_in(page, live_server, marketer.username)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Analytics").click()
    expect(page.get_by_role("heading", name="Analytics", exact=True)).to_be_visible()
    # The last 30 days, drawn by Plotly.
    expect(net_sales(page)).to_have_text("$230.00")
    expect(page.get_by_test_id("chart-sales-over-time").locator(".main-svg").first).to_be_visible()
    expect(page.get_by_test_id("chart-stores").locator(".main-svg").first).to_be_visible()
    figures = page.locator("[data-figure]").count()
    assert figures >= 8 and page.locator("[data-figure] .main-svg").count() >= figures
    page.evaluate("window.__noReload = true")

    # Boulder only.
    page.locator(".store-picker summary").click()
    page.get_by_label("Boulder").check()
    expect(net_sales(page)).to_have_text("$30.00")
    expect(page.locator(".store-picker summary")).to_have_text("Boulder")
    expect(page).to_have_url(re.compile(rf"store={boulder.pk}"))
    expect(page.get_by_test_id("chart-stores").locator(".main-svg").first).to_be_visible()

    # ... over the last 12 months.
    page.get_by_label("Dates").select_option(label="Last 12 months")
    expect(net_sales(page)).to_have_text("$100.00")
    expect(page).to_have_url(re.compile(r"range=12m"))
    expect(page.get_by_test_id("chart-sales-over-time").locator(".main-svg").first).to_be_visible()
    assert "fulfillment=" not in page.url  # empty filters stay out of the URL

    # Both stores again, 12 months.
    page.get_by_role("button", name="All stores").click()
    expect(net_sales(page)).to_have_text("$350.00")
    assert page.evaluate("window.__noReload") is True

    # The stores chart as a table, and as a CSV file.
    stores = page.get_by_test_id("chart-stores")
    stores.get_by_role("button", name="Table").click()
    expect(stores.get_by_test_id("table-stores")).to_be_visible()
    expect(stores.get_by_test_id("table-stores")).to_contain_text("Denver")
    expect(stores.locator(".chart-view")).to_be_hidden()
    with page.expect_download() as download_info:
        stores.get_by_test_id("csv-stores").click()
    path = tmp_path / "stores.csv"
    download_info.value.save_as(path)
    rows = list(csv.reader(path.open()))
    assert rows[0] == ["Store", "Orders", "Net sales (USD)", "Share"]
    assert {tuple(r[:3]) for r in rows[1:]} == {("Denver", "3", "250.00"), ("Boulder", "2", "100.00")}
    assert page.evaluate("window.__noReload") is True

    # Custom dates start from the period on screen.
    page.get_by_label("Dates").select_option(label="Custom dates")
    expect(page.get_by_label("From")).to_be_visible()
    page.get_by_label("From").fill((dt.date.today() - dt.timedelta(days=15)).isoformat())
    page.get_by_label("From").dispatch_event("change")
    expect(net_sales(page)).to_have_text("$130.00")
    expect(page).to_have_url(re.compile(r"range=custom&start="))
    assert page.evaluate("window.__noReload") is True

    # The URL is the view: opening it again shows the same.
    page.goto(page.url)
    expect(net_sales(page)).to_have_text("$130.00")


def test_bad_filter_in_a_shared_link_is_explained(page, live_server, shop):
    marketer, _, _ = shop
    log_in(page, live_server, marketer.username)
    page.goto(f"{live_server.url}/analytics/?store=424242&range=custom&start=2026-05-01&end=2026-04-01")
    errors = page.get_by_test_id("filter-errors")
    expect(errors).to_contain_text("Store “424242” is not one of your stores.")
    expect(errors).to_contain_text("is before the start date")
    page.get_by_role("link", name="Show the last 30 days instead").click()
    expect(net_sales(page)).to_have_text("$230.00")


def test_quick_date_changes_cancel_the_older_requests_quietly(page, live_server, shop):
    # given the analytics page, watched for errors
    marketer, _, _ = shop
    problems, aborted = [], []
    page.on("console", lambda m: m.type in ("error", "warning") and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(f"script error {e}"))
    page.on("requestfailed", lambda r: "/analytics/" in r.url and aborted.append(r.url))
    log_in(page, live_server, marketer.username)
    page.goto(f"{live_server.url}/analytics/")
    expect(net_sales(page)).to_have_text("$230.00")
    page.evaluate("window.__noReload = true")
    # when the dates change four times in a row, faster than the answers come
    page.evaluate("""() => {
        const select = document.getElementById("id_range");
        for (const value of ["today", "7d", "90d", "12m"]) {
            select.value = value;
            select.dispatchEvent(new Event("change", {bubbles: true}));
        }
    }""")
    # then the last choice is shown, the older requests were dropped, and nothing complained
    expect(page).to_have_url(re.compile(r"range=12m"))
    expect(net_sales(page)).to_have_text("$350.00")
    expect(page.get_by_test_id("chart-sales-over-time").locator(".main-svg").first).to_be_visible()
    page.wait_for_timeout(300)
    assert aborted, "the superseded requests were not cancelled"
    assert problems == []
    assert page.evaluate("window.__noReload") is True
