"""Every KPI and chart series of the Analytics report against a plain-Python calculation
over the same rows (tests/analytics/reference.py), on both paths: the daily rollup and the
sales tables read directly."""

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest

from analytics import selectors
from analytics.selectors import Filters, Period
from analytics.services import rollup_refresh
from tests.analytics.conftest import local
from tests.analytics.reference import expected, observed

D = dt.date

PERIODS = {
    # 90 days: weeks; spring forward inside; the period before holds December's sales.
    "quarter": Period(D(2026, 1, 1), D(2026, 3, 31)),
    # One day: hours. Ana's 23:30 on Jan 5 is Jan 6 in UTC and must stay out.
    "jan-6": Period(D(2026, 1, 6), D(2026, 1, 6)),
    # The day clocks go back: both 01:30 sales, hour 1.
    "fall-back": Period(D(2026, 11, 1), D(2026, 11, 1)),
    # Spring forward day (23 hours): both of Ben's sales.
    "spring-forward": Period(D(2026, 3, 8), D(2026, 3, 8)),
    # Eleven months: month buckets, whole months from month rows, partial ones from days.
    "year": Period(D(2025, 12, 10), D(2026, 11, 5)),
    # A week over a month's end (days).
    "week": Period(D(2026, 1, 1), D(2026, 1, 7)),
    # Nothing sold.
    "empty": Period(D(2024, 1, 1), D(2024, 1, 31)),
}

FILTERS = {
    "everything": {},
    "denver": {"stores": ["denver"]},
    "both-stores": {"stores": ["denver", "boulder"]},
    "pickup": {"fulfillment": "pickup"},
    "members": {"customers": "members"},
    "others": {"customers": "others"},
    "boulder-delivery-others": {"stores": ["boulder"], "fulfillment": "delivery", "customers": "others"},
}


def make_filters(shop, period, stores=(), fulfillment="", customers=""):
    ids = tuple(sorted(getattr(shop, name).pk for name in stores))
    return Filters(period=period, store_ids=ids, fulfillment=fulfillment, customers=customers)


@pytest.mark.parametrize("period_name", PERIODS)
@pytest.mark.parametrize("filter_name", FILTERS)
def test_report_matches_python_on_both_paths(shop, company, period_name, filter_name):
    # given the shop's sales, in the rollup
    rollup_refresh(company=company)
    filters = make_filters(shop, PERIODS[period_name], **FILTERS[filter_name])
    bucket = selectors.bucket_for(filters.period)
    want = expected(company, filters, bucket)
    # when the report is read from the rollup and straight from the sales
    from_rollup = observed(selectors.sales_report(company=company, filters=filters, path="rollup"))
    from_tables = observed(selectors.sales_report(company=company, filters=filters, path="raw"))
    # then both say what the Python says, to the cent
    assert from_rollup == want
    assert from_tables == want


@pytest.mark.parametrize("until", [(1, 5, 23, 0), (1, 6, 0, 30), (1, 6, 12, 0), (3, 8, 2, 30)],
                         ids=["jan-5-23h", "jan-6-00h30", "jan-6-noon", "spring-forward-02h30"])
@pytest.mark.parametrize("filter_name", FILTERS)
def test_report_compares_up_to_the_same_moment_on_both_paths(shop, company, until, filter_name):
    """A period compared with the days before it, its last day only up to a moment: the
    late sale of Jan 5 and the sales of Jan 6 and Mar 8 fall either side of it."""
    rollup_refresh(company=company)
    month, day, hour, minute = until
    moment = local(2026, month, day, hour, minute)
    previous = Period(moment.date() - dt.timedelta(days=6), moment.date())
    filters = dataclasses.replace(make_filters(shop, Period(previous.end + dt.timedelta(days=7),
                                                             previous.end + dt.timedelta(days=13)),
                                               **FILTERS[filter_name]),
                                  previous_period=previous, previous_until=moment)
    want = expected(company, filters, selectors.bucket_for(filters.period))
    for path in ("rollup", "raw"):
        got = observed(selectors.sales_report(company=company, filters=filters, path=path))
        assert (got["previous"], got["previous_member_sales"], got["previous_customers"]) == (
            want["previous"], want["previous_member_sales"], want["previous_customers"]), path


def test_report_everything_by_hand(shop, company):
    """The quarter's headline numbers, worked out on paper from the fixture."""
    rollup_refresh(company=company)
    report = selectors.sales_report(company=company, filters=Filters(PERIODS["quarter"]))
    current = report.current
    # Orders: ana-late, cy-early, walk-in, unmapped, ana-feb, ben-night, ben-late (the void is out,
    # the return is not an order).
    assert current.orders == 7
    # Gross 40 + 30 + 30 + 8 + 5 + 25 + 60; discounts 3 + 6; the return 20 - 2.
    assert current.gross_sales == Decimal("198.00")
    assert current.discounts == Decimal("9.00")
    assert current.returns == 1 and current.returns_value == Decimal("18.00")
    assert current.net_sales == Decimal("171.00")
    assert current.tax == sum(Decimal(t) for t in ("6.00", "4.05", "4.50", "1.20", "8.10"))
    assert current.average_order_value == Decimal("27.00")  # (198 - 9) / 7
    assert current.items == Decimal("10.000") and current.items_per_order == Decimal("1.43")
    # Customers: Ana had ordered in December (returning); Cy and Ben order first in the quarter.
    assert (report.customers.unique, report.customers.new, report.customers.returning) == (3, 2, 1)
    # Members: ana-late 40, ana-feb 5, ben-late 54 (after he joined), less Ana's return 18.
    assert report.member_sales == Decimal("81.00")
    assert report.member_share == Decimal("47.4")
    # Redeemed: 100 on ana-late (Ben's redemption was reinstated).
    assert current.points_redeemed == 100
    assert current.points_earned > 0
    # The period before: ana-dec and dee-dec.
    assert report.previous.orders == 2 and report.previous.net_sales == Decimal("51.00") + Decimal("50.00")


def test_report_late_night_sale_is_on_its_local_day(shop, company):
    rollup_refresh(company=company)
    jan_5 = selectors.sales_report(company=company, filters=Filters(Period(D(2026, 1, 5), D(2026, 1, 5))))
    jan_6 = selectors.sales_report(company=company, filters=Filters(PERIODS["jan-6"]))
    assert jan_5.current.orders == 1 and jan_5.hours == {(1, 23): (1, Decimal("40.00"))}
    assert jan_6.current.orders == 2  # cy-early at 00:15 and the walk-in; not ana-late
    assert [b.start for b in jan_6.over_time if b.orders] == [0, 12]


def test_report_fall_back_day_has_both_half_past_ones(shop, company):
    rollup_refresh(company=company)
    report = selectors.sales_report(company=company, filters=Filters(PERIODS["fall-back"]))
    assert report.hours == {(7, 1): (2, Decimal("50.00"))}


def test_report_never_counts_another_company(shop, company, other_company):
    rollup_refresh(company=company)
    rollup_refresh(company=other_company)
    filters = Filters(PERIODS["jan-6"])
    ours = selectors.sales_report(company=company, filters=filters)
    theirs = selectors.sales_report(company=other_company, filters=filters)
    assert ours.current.gross_sales == Decimal("60.00")
    assert theirs.current.gross_sales == Decimal("1000.00")
    assert shop.elsewhere.pk not in ours.by_store


def test_report_empty_period_is_all_zeros(shop, company):
    rollup_refresh(company=company)
    report = selectors.sales_report(company=company, filters=Filters(PERIODS["empty"]))
    assert report.current.is_empty and report.current.net_sales == 0
    assert report.current.average_order_value is None and report.member_share is None
    assert report.products == [] and report.hours == {} and report.customers.unique == 0
    assert all(b.orders == 0 for b in report.over_time) and len(report.over_time) == 31  # every day, empty


def test_headline_is_the_reports_kpis(shop, company):
    rollup_refresh(company=company)
    filters = Filters(PERIODS["quarter"])
    report = selectors.sales_report(company=company, filters=filters)
    head = selectors.headline(company=company, filters=filters)
    assert (head.current, head.previous, head.customers, head.member_sales) == (
        report.current, report.previous, report.customers, report.member_sales)


def test_months_and_days_split_a_period():
    months, days = selectors.months_and_days(Period(D(2025, 12, 30), D(2026, 3, 2)))
    assert months == [D(2026, 1, 1), D(2026, 2, 1)]
    assert days == [D(2025, 12, 30), D(2025, 12, 31), D(2026, 3, 1), D(2026, 3, 2)]
    assert selectors.months_and_days(Period(D(2026, 1, 1), D(2026, 1, 31))) == ([D(2026, 1, 1)], [])


def test_buckets_follow_the_length_of_the_period():
    assert selectors.bucket_for(Period(D(2026, 1, 1), D(2026, 1, 1))) == "hour"
    assert selectors.bucket_for(Period(D(2026, 1, 1), D(2026, 1, 31))) == "day"
    assert selectors.bucket_for(Period(D(2026, 1, 1), D(2026, 3, 31))) == "week"
    assert selectors.bucket_for(Period(D(2025, 1, 1), D(2025, 12, 31))) == "month"
    weeks = selectors.bucket_starts(Period(D(2026, 1, 1), D(2026, 1, 14)), "week")
    assert weeks == [D(2025, 12, 29), D(2026, 1, 5), D(2026, 1, 12)]
