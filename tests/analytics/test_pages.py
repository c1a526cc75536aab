"""The Analytics page, its CSV files and the home dashboard: who may see them, what bad
filters say, and that what is shown is the report."""

import csv
import io
import json
import re
from decimal import Decimal
from unittest import mock

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from analytics.models import ChangedHour
from integrations.models import Connection, SyncRun
from integrations.signals import sync_completed
from loyalty.models import Transaction
from loyalty.services import source_get_or_create
from loyalty.services.pos import PosTransaction, pos_transaction_send
from stores.models import Role
from tests.analytics.conftest import line, local, record
from tests.factories import MembershipFactory, PersonaFactory, RetailStoreFactory

NOW = local(2026, 3, 31, 18)  # the shop's clock during these tests
CUSTOM_QUARTER = "?range=custom&start=2026-01-01&end=2026-03-31"


@pytest.fixture(autouse=True)
def shop_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def page(client, query=""):
    return client.get(reverse("analytics") + query)


def kpi(html: str, key: str) -> str:
    match = re.search(rf'data-testid="kpi-{key}-value">([^<]*)<', html)
    return match.group(1) if match else ""


# --- who may see it -------------------------------------------------------------------------------

@pytest.mark.parametrize("role, status", [(Role.ADMIN, 200), (Role.MARKETER, 200), (Role.BUDTENDER, 403)])
def test_analytics_page_by_role(client, login, company, role, status):
    user = MembershipFactory(company=company, role=role).user
    assert page(login(client, user)).status_code == status
    assert login(client, user).get(reverse("analytics_csv", args=["stores"])).status_code == status


def test_analytics_page_needs_sign_in(client):
    response = page(client)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_analytics_nav_link_for_marketers_only(client, login, marketer_user, budtender_user):
    assert 'href="/analytics/"' in login(client, marketer_user).get(reverse("persona_list")).content.decode()
    budtenders = login(client, budtender_user).get(reverse("persona_list")).content.decode()
    assert 'href="/analytics/"' not in budtenders


# --- what it shows --------------------------------------------------------------------------------

def test_analytics_page_shows_the_report(client, login, shop, marketer_user):
    html = page(login(client, marketer_user), CUSTOM_QUARTER).content.decode()
    assert kpi(html, "net_sales") == "$171.00"
    assert kpi(html, "orders") == "7"
    assert kpi(html, "average_order_value") == "$27.00"
    assert kpi(html, "items_per_order") == "1.43"
    assert kpi(html, "customers") == "3"
    assert kpi(html, "new_customers") == "2" and kpi(html, "returning_customers") == "1"
    assert kpi(html, "member_share") == "47.4%"
    assert kpi(html, "points_redeemed") == "100"
    assert kpi(html, "discounts") == "$9.00"
    assert "Jan 1 – Mar 31, 2026" in html and "compared with Oct 3 – Dec 31, 2025" in html
    assert "How these are counted" in html
    # every chart is described for Plotly, with its table
    for key in ("sales-over-time", "stores", "categories", "products", "brands", "hours", "fulfillment",
                "loyalty", "customers"):
        assert f'data-testid="chart-{key}"' in html and f'data-testid="table-{key}"' in html
        assert f'id="figure-{key}-data"' in html
    data = re.search(r'id="figure-stores-data" type="application/json">(.*?)</script>', html).group(1)
    figure = json.loads(data)
    assert figure["data"][0]["type"] == "bar" and set(figure["data"][0]["y"]) == {
        "Denver", "Boulder", "Not mapped to a store yet"}
    assert "Elsewhere" not in html  # another company's store


def test_analytics_page_default_is_the_last_30_days(client, login, shop, marketer_user):
    html = page(login(client, marketer_user)).content.decode()
    assert "Mar 2 – Mar 31, 2026" in html
    assert kpi(html, "orders") == "2"  # Ben's two sales on Mar 8


def test_analytics_page_presets(client, login, shop, marketer_user):
    client = login(client, marketer_user)
    assert "Tue Mar 31, 2026" in page(client, "?range=today").content.decode()
    assert "Mar 25 – Mar 31, 2026" in page(client, "?range=7d").content.decode()
    assert "Jan 1 – Mar 31, 2026" in page(client, "?range=90d").content.decode()
    html = page(client, "?range=12m").content.decode()
    assert "Apr 1, 2025 – Mar 31, 2026" in html and kpi(html, "orders") == "9"


@pytest.mark.parametrize("preset, today, before, label", [
    ("today", (2026, 3, 31), (2026, 3, 30), "compared with yesterday to 12:00"),
    ("week", (2026, 3, 31), (2026, 3, 24), "compared with last week to Tue 12:00"),
    ("month", (2026, 3, 28), (2026, 2, 28), "compared with last month to Feb 28, 12:00"),
])
def test_analytics_periods_that_end_today_compare_with_the_period_before_up_to_the_same_time(
        client, login, company, marketer_user, preset, today, before, label):
    # given sales on the day one period back, in its morning and afternoon, and this morning
    client = login(client, marketer_user)
    source = source_get_or_create(company=company, kind="pos_api")
    customer = PersonaFactory(company=company)
    record(company, source, "before-am", local(*before, 9), [line("Flower", "B", "P", 1, "10.00")],
           persona=customer)
    record(company, source, "before-pm", local(*before, 15), [line("Flower", "B", "P", 1, "100.00")],
           persona=PersonaFactory(company=company))
    record(company, source, "today-am", local(*today, 9), [line("Flower", "B", "P", 1, "20.00")],
           persona=customer)
    # when the page is opened at noon
    with time_machine.travel(local(*today, 12), tick=False):
        html = page(client, f"?range={preset}").content.decode()
    # then this morning's $20 is compared with that morning's $10 alone, and the page says so
    assert kpi(html, "net_sales") == "$20.00" and kpi(html, "orders") == "1"
    assert re.search(r'data-testid="kpi-net_sales-change">[^<]*100', html)
    assert 'title="The period before: $10.00"' in html
    assert 'title="The period before: 1"' in html  # one customer then: the morning's
    assert label in html


def test_analytics_page_filters_by_store_fulfillment_and_customers(client, login, shop, marketer_user):
    client = login(client, marketer_user)
    html = page(client, f"{CUSTOM_QUARTER}&store={shop.boulder.pk}").content.decode()
    assert kpi(html, "net_sales") == "$62.00"  # cy-early 27, walk-in 30, ana-feb 5
    html = page(client, f"{CUSTOM_QUARTER}&fulfillment=pickup&customers=members").content.decode()
    assert kpi(html, "net_sales") == "$94.00"  # ana-late 40, ben-late 54
    assert f'value="{shop.denver.pk}"' in html


def test_analytics_page_empty_period(client, login, shop, marketer_user):
    query = "?range=custom&start=2024-01-01&end=2024-01-31"
    html = page(login(client, marketer_user), query).content.decode()
    assert 'data-testid="empty-period"' in html
    assert 'data-testid="empty-sales-over-time"' in html and 'id="figure-sales-over-time-data"' not in html
    assert kpi(html, "net_sales") == "$0.00" and kpi(html, "average_order_value") == "—"


def test_analytics_htmx_request_gets_the_results_only(client, login, shop, marketer_user):
    response = login(client, marketer_user).get(reverse("analytics") + CUSTOM_QUARTER, HTTP_HX_REQUEST="true")
    html = response.content.decode()
    assert response.status_code == 200
    assert html.lstrip().startswith('<div id="analytics-results"') and "<html" not in html


def test_analytics_page_reads_a_sale_recorded_a_moment_ago(client, login, shop, marketer_user):
    client = login(client, marketer_user)
    page(client, CUSTOM_QUARTER)  # the rollup is built
    record(shop.company, shop.source, "new", local(2026, 3, 31, 17), [line("Flower", "B", "P", 1, "29.00")],
           store=shop.denver)
    html = page(client, CUSTOM_QUARTER).content.decode()
    assert kpi(html, "net_sales") == "$200.00" and kpi(html, "orders") == "8"


def test_analytics_page_queries_stay_the_same_with_more_stores_sales_and_customers(
        client, login, shop, marketer_user):
    client = login(client, marketer_user)
    page(client, CUSTOM_QUARTER)  # the rollup is built
    with CaptureQueriesContext(connection) as few:
        assert page(client, CUSTOM_QUARTER).status_code == 200
    for i in range(6):
        store = RetailStoreFactory(company=shop.company, name=f"Store {i}")
        buyer = PersonaFactory(company=shop.company)
        for day in (3, 14, 27):
            record(shop.company, shop.source, f"more-{i}-{day}", local(2026, 2, day, 12),
                   [line(f"Category {i}", f"Brand {i}", f"Product {i}-{day}", 1, "12.00")], store=store,
                   persona=buyer)
    page(client, CUSTOM_QUARTER)  # the refresh that follows new sales
    with CaptureQueriesContext(connection) as many:
        assert page(client, CUSTOM_QUARTER).status_code == 200
    assert len(many) == len(few), [q["sql"][:120] for q in many.captured_queries]


# --- bad filters: a message, never a 500 -------------------------------------------------------------

@pytest.mark.parametrize("query, message", [
    ("?store=999999", "Store “999999” is not one of your stores."),
    ("?store=abc", "Store “abc” is not one of your stores."),
    ("?range=custom&start=2026-13-01&end=2026-01-31", "The start date is not a date"),
    ("?range=custom&start=2026-01-01&end=yesterday", "The end date is not a date"),
    ("?range=custom&start=2026-03-01&end=2026-01-31", "The end date (Jan 31, 2026) is before the start date"),
    ("?range=custom&start=2026-03-01", "Custom dates need both a start and an end date."),
    ("?range=custom&start=2010-01-01&end=2026-01-01", "Pick at most three years at a time."),
    ("?range=forever", "“forever” is not a date range"),
    ("?fulfillment=drone", "“drone” is not a fulfillment type."),
    ("?customers=vips", "“vips” is not a group of customers."),
])
def test_analytics_bad_filters_say_why(client, login, shop, marketer_user, query, message):
    client = login(client, marketer_user)
    response = page(client, query)
    assert response.status_code == 400
    html = response.content.decode()
    assert 'data-testid="filter-errors"' in html and message in html
    # htmx swaps only 2xx responses: the same message comes back as a 200 partial
    htmx = client.get(reverse("analytics") + query, HTTP_HX_REQUEST="true")
    assert htmx.status_code == 200 and message in htmx.content.decode()
    csv_response = client.get(reverse("analytics_csv", args=["stores"]) + query)
    assert csv_response.status_code == 400 and message in csv_response.content.decode()


def test_analytics_another_companys_store_is_refused(client, login, shop, marketer_user):
    response = page(login(client, marketer_user), f"?store={shop.elsewhere.pk}")
    assert response.status_code == 400
    assert f"Store “{shop.elsewhere.pk}” is not one of your stores." in response.content.decode()


# --- CSV -------------------------------------------------------------------------------------------

def read_csv(response):
    assert response["Content-Type"].startswith("text/csv")
    return list(csv.reader(io.StringIO(response.content.decode())))


def test_analytics_csv_holds_the_charts_data(client, login, shop, marketer_user):
    client = login(client, marketer_user)
    url = reverse("analytics_csv", args=["stores"]) + CUSTOM_QUARTER
    response = client.get(url)
    assert "attachment" in response["Content-Disposition"] and "stores-2026-01-01-to-2026-03-31" in response[
        "Content-Disposition"]
    rows = read_csv(response)
    assert rows[0] == ["Store", "Orders", "Net sales (USD)", "Share"]
    assert sum(Decimal(r[2]) for r in rows[1:]) == Decimal("171.00")
    over_time = read_csv(client.get(reverse("analytics_csv", args=["sales-over-time"]) + CUSTOM_QUARTER))
    assert over_time[0][0] == "Week" and len(over_time) == 1 + 14
    assert sum(int(r[1]) for r in over_time[1:]) == 7
    products = read_csv(client.get(reverse("analytics_csv", args=["products"]) + CUSTOM_QUARTER))
    assert ["Elite Cart 1g", "Select", "1.000", "40.00"] in products


def test_analytics_csv_unknown_chart_is_404(client, login, marketer_user):
    assert login(client, marketer_user).get("/analytics/export/secrets.csv").status_code == 404


# --- the home dashboard ------------------------------------------------------------------------------

def test_dashboard_for_a_marketer_has_the_last_30_days(client, login, shop, marketer_user):
    html = login(client, marketer_user).get(reverse("home")).content.decode()
    assert 'data-testid="dashboard-kpis"' in html and kpi(html, "orders") == "2"
    assert 'data-testid="sync-runs"' in html


def test_dashboard_for_a_budtender_has_no_sales(client, login, shop, budtender_user):
    response = login(client, budtender_user).get(reverse("home"))
    html = response.content.decode()
    assert response.status_code == 200
    assert "dashboard-kpis" not in html and "Net sales" not in html and "sync-runs" not in html
    assert 'href="/personas/"' in html and 'href="/queue/"' in html


def test_dashboard_shows_syncs_and_failing_integrations(client, login, company, admin_user):
    from loyalty.services import source_get_or_create

    source = source_get_or_create(company=company, kind="s3")
    connection = Connection.objects.create(company=company, name="Nightly reports", provider="s3",
                                           source=source)
    SyncRun.objects.create(company=company, connection=connection, trigger="schedule", state="failed",
                           started_at=NOW, finished_at=NOW, error="Access denied by the bucket")
    html = login(client, admin_user).get(reverse("home")).content.decode()
    assert 'data-testid="failing-integrations"' in html and "Nightly reports" in html
    assert "Access denied by the bucket" in html


def test_dashboard_without_a_company(client, login, db):
    from tests.factories import UserFactory

    assert login(client, UserFactory()).get(reverse("home")).status_code == 403


# --- keeping the rollup current ------------------------------------------------------------------------

def test_sync_completed_queues_a_refresh(company, store, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    cache.delete(f"analytics:refresh-queued:{company.pk}")
    connection = mock.Mock(company_id=company.pk)
    with mock.patch("analytics.tasks.analytics_refresh.apply_async") as queued, \
            django_capture_on_commit_callbacks(execute=True):
        sync_completed.send(sender=Connection, connection=connection, run=None)
        # A POS sale right after the sync joins the refresh already queued.
        pos_transaction_send(company=company, data=PosTransaction(
            transaction_id="T-after-sync", store_id=store.pk, subtotal=Decimal("10.00"),
            items=[line("Flower", "B", "P", 1, "10.00")]))
    queued.assert_called_once_with((company.pk,), retry=False, countdown=10)


def test_a_broker_failure_never_fails_a_sale(company, store, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    cache.delete(f"analytics:refresh-queued:{company.pk}")
    with mock.patch("analytics.tasks.analytics_refresh.apply_async", side_effect=OSError("broker down")), \
            django_capture_on_commit_callbacks(execute=True):
        txn, created = pos_transaction_send(company=company, data=PosTransaction(
            transaction_id="T-broker", store_id=store.pk, subtotal=Decimal("10.00"),
            items=[line("Flower", "B", "P", 1, "10.00")]))
    assert created and Transaction.objects.filter(pk=txn.pk).exists()
    assert ChangedHour.objects.filter(company_id=company.pk).exists()  # the page still catches up


def test_a_sale_that_rolls_back_queues_no_refresh(company, store, django_capture_on_commit_callbacks):
    from django.db import transaction as db

    with mock.patch("analytics.tasks.analytics_refresh.apply_async") as queued, \
            django_capture_on_commit_callbacks(execute=True), pytest.raises(RuntimeError), db.atomic():
        pos_transaction_send(company=company, data=PosTransaction(
            transaction_id="T-rollback", store_id=store.pk, subtotal=Decimal("10.00"),
            items=[line("Flower", "B", "P", 1, "10.00")]))
        raise RuntimeError("the caller fails after the sale")
    queued.assert_not_called()
    assert not Transaction.objects.filter(external_id="T-rollback").exists()


def test_pos_sale_queues_one_refresh_for_a_burst(company, store, django_capture_on_commit_callbacks):
    from django.core.cache import cache

    cache.delete(f"analytics:refresh-queued:{company.pk}")
    with mock.patch("analytics.tasks.analytics_refresh.apply_async") as queued, \
            django_capture_on_commit_callbacks(execute=True):
        for n in range(3):
            pos_transaction_send(company=company, data=PosTransaction(
                transaction_id=f"T{n}", store_id=store.pk, subtotal=Decimal("10.00"),
                items=[line("Flower", "B", "P", 1, "10.00")]))
    queued.assert_called_once_with((company.pk,), retry=False, countdown=10)
    assert ChangedHour.objects.filter(company_id=company.pk, hour=local(2026, 3, 31, 18)).exists()


def test_refresh_task_clears_the_queue_and_refreshes(company):
    from django.core.cache import cache

    from analytics.tasks import analytics_refresh

    cache.set(f"analytics:refresh-queued:{company.pk}", 1)
    assert analytics_refresh(company.pk) == 0  # no sales yet: nothing to read
    assert cache.get(f"analytics:refresh-queued:{company.pk}") is None
    assert analytics_refresh(999999999) is None  # a company deleted since


def test_analytics_back_button_restore_gets_the_whole_page(client, login, shop, marketer_user):
    # htmx asks for the whole page when its history cache misses
    response = login(client, marketer_user).get(reverse("analytics") + CUSTOM_QUARTER, HTTP_HX_REQUEST="true",
                                                 HTTP_HX_HISTORY_RESTORE_REQUEST="true")
    assert "<html" in response.content.decode() and 'id="analytics-filters"' in response.content.decode()


def test_analytics_rebuild_command(shop, company, capsys):
    from django.core.management import call_command
    from django.core.management.base import CommandError

    call_command("analytics_rebuild", company=company.slug)
    assert f"{company.slug}: 10 days with sales, 4 customers" in capsys.readouterr().out
    with pytest.raises(CommandError, match="No company"):
        call_command("analytics_rebuild", company="nobody")


def test_analytics_csv_text_cannot_become_a_formula(client, login, shop, marketer_user):
    record(shop.company, shop.source, "sneaky", local(2026, 3, 30, 12),
           [line("Flower", "=cmd", "=HYPERLINK(\"http://x\")", 1, "5.00")], store=shop.denver)
    url = reverse("analytics_csv", args=["products"]) + CUSTOM_QUARTER
    rows = read_csv(login(client, marketer_user).get(url))
    assert ["'=HYPERLINK(\"http://x\")", "'=cmd", "1.000", "5.00"] in rows


def test_dashboard_tells_a_marketer_about_unmapped_locations(client, login, shop, marketer_user):
    from loyalty.models import Transaction

    Transaction.objects.filter(external_id="unmapped").update(source_location="LOC-7")
    html = login(client, marketer_user).get(reverse("home")).content.decode()
    assert 'data-testid="unmapped-locations"' in html and "1 POS location is not mapped" in html
