"""The daily rollup stays exact: the triggers mark the local days a change touches, by
whatever path it comes, and rollup_refresh recalculates those days (and only those)."""

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
import time_machine

from analytics import selectors
from analytics.models import ChangedHour, Customer, CustomerActivity, RollupState, SalesDay
from analytics.selectors import Filters, Period
from analytics.services import rollup_ensure_current, rollup_pending, rollup_refresh
from integrations.services.imports import transactions_attach_store
from loyalty.models import LineItem, Persona, Redemption, Transaction
from loyalty.services import persona_enroll
from tests.analytics.conftest import DENVER, line, local, record
from tests.analytics.reference import expected, observed

D = dt.date
YEAR = Period(D(2025, 12, 10), D(2026, 11, 5))


def assert_exact(shop, company, **filters):
    """After a refresh, the rollup says what the sales tables and the Python say."""
    rollup_refresh(company=company)
    assert not ChangedHour.objects.filter(company_id=company.pk).exists()
    for period in (YEAR, Period(D(2026, 1, 1), D(2026, 3, 31))):
        f = Filters(period=period, **filters)
        want = expected(company, f, selectors.bucket_for(period))
        assert observed(selectors.sales_report(company=company, filters=f)) == want
        assert observed(selectors.sales_report(company=company, filters=f, path="raw")) == want


def marked_days(company) -> set:
    """The shop's local days of the marked hours (Denver: whole-hour offsets)."""
    hours = ChangedHour.objects.filter(company_id=company.pk).values_list("hour", flat=True)
    return {hour.astimezone(DENVER).date() for hour in hours}


def test_rollup_first_refresh_builds_everything(shop, company):
    # given sales and no rollup yet
    assert not RollupState.objects.filter(company=company).exists()
    # when it is refreshed the first time
    outcome = rollup_refresh(company=company)
    # then every day with sales is in it, and the marks are gone
    assert outcome.rebuilt and outcome.days == 10  # the void's day too: it is a day with sales
    assert RollupState.objects.get(company=company).timezone == "America/Denver"
    assert not marked_days(company)
    assert_exact(shop, company)


def test_rollup_trigger_marks_the_local_day(shop, company):
    rollup_refresh(company=company)
    # when a sale is recorded at 23:30 local (already the next day in UTC)
    record(company, shop.source, "late", local(2026, 4, 2, 23, 30), [line("Flower", "B", "P", 1, "10.00")],
           store=shop.denver)
    # then its local day is marked, and the next refresh reads that day only
    assert marked_days(company) == {D(2026, 4, 2)}
    assert rollup_pending(company=company)
    outcome = rollup_refresh(company=company)
    assert (outcome.days, outcome.rebuilt) == (1, False)
    assert not rollup_pending(company=company)
    assert_exact(shop, company)


def test_rollup_follows_a_resent_sale_to_its_new_day(shop, company):
    rollup_refresh(company=company)
    # when a sale comes again, moved to another day, for another amount and customer
    record(company, shop.source, "cy-early", local(2026, 2, 2, 9), [
        line("Vapes", "Select", "Elite Cart 1g", 2, "40.00")], store=shop.denver, persona=shop.ana,
        fulfillment="pickup")
    # then both the old and the new day are recalculated
    assert {D(2026, 1, 6), D(2026, 2, 2)} <= marked_days(company)
    assert_exact(shop, company)
    assert_exact(shop, company, customers="members")


def test_rollup_void_and_return(shop, company):
    rollup_refresh(company=company)
    record(company, shop.source, "walk-in", local(2026, 1, 6, 12), [
        line("Pre-Rolls", "Lazercat", "Jack Herer 1g", 3, "10.00")], store=shop.boulder, status="voided")
    record(company, shop.source, "ben-return", local(2026, 3, 20, 10), [
        line("Flower", "Cookies", "Gary Payton", 1, "60.00", discount="6.00")], store=shop.denver,
        persona=shop.ben, status="refunded")
    assert_exact(shop, company)
    assert_exact(shop, company, store_ids=(shop.denver.pk,))


def test_rollup_enrolment_moved_back_flips_earlier_sales(shop, company):
    rollup_refresh(company=company)
    # when Cy turns out to have joined long ago (a source sends his enrolment date)
    Persona.objects.filter(pk=shop.cy.pk).update(is_member=True, enrolled_at=local(2025, 1, 1))
    # then his sales' days are marked: they were a member's
    assert D(2026, 1, 6) in marked_days(company)
    assert_exact(shop, company, customers="members")
    assert_exact(shop, company, customers="others")


def test_rollup_enrolling_today_changes_no_past_sale(shop, company):
    rollup_refresh(company=company)
    persona_enroll(company=company, persona_id=shop.cy.pk)
    assert marked_days(company) == set()  # the enrolment is after all of his sales


def test_rollup_deleted_sale_and_customer(shop, company):
    rollup_refresh(company=company)
    Transaction.objects.get(company=company, external_id="unmapped").delete()
    Persona.objects.get(pk=shop.ben.pk).delete()  # his sales stay, without a customer
    assert_exact(shop, company)
    assert not Customer.objects.filter(persona_id=shop.ben.pk).exists()


def test_rollup_reinstated_redemption_and_a_line_edited_alone(shop, company):
    rollup_refresh(company=company)
    Redemption.objects.filter(company=company, state="redeemed").update(state="reinstated")
    item = LineItem.objects.get(transaction__external_id="ana-feb")
    item.quantity, item.total = Decimal("3"), Decimal("15.00")
    item.save()
    assert {D(2026, 1, 5), D(2026, 2, 14)} <= marked_days(company)
    assert_exact(shop, company)


def test_rollup_sale_mapped_to_a_store_later(shop, company):
    from integrations.models import Connection

    rollup_refresh(company=company)
    connection = mock.Mock(spec=Connection, source_id=shop.source.pk)
    Transaction.objects.filter(external_id="unmapped").update(source_location="LOC-9")
    rollup_refresh(company=company)
    # when the location gets mapped (the set-wise UPDATE the import service runs)
    assert transactions_attach_store(connection, location_id="LOC-9", store_id=shop.denver.pk) == 1
    assert D(2026, 1, 7) in marked_days(company)
    assert_exact(shop, company, store_ids=(shop.denver.pk,))


def test_rollup_rebuilds_when_the_time_zone_changes(shop, company):
    rollup_refresh(company=company)
    # when the company moves to Pacific time, a Denver 23:30 is 22:30 and a 00:15 is the day before
    company.timezone = "America/Los_Angeles"
    company.save()
    assert rollup_pending(company=company)
    report = selectors.sales_report  # the page refreshes before it reads
    rollup_ensure_current(company=company)
    assert RollupState.objects.get(company=company).timezone == "America/Los_Angeles"
    jan_5 = report(company=company, filters=Filters(Period(D(2026, 1, 5), D(2026, 1, 5))))
    assert jan_5.current.orders == 2  # ana-late and cy-early (23:15 Pacific)
    assert_exact(shop, company)


def test_rollup_other_company_untouched(shop, company, other_company):
    rollup_refresh(company=company)
    rollup_refresh(company=other_company)

    def theirs():
        return (sorted(SalesDay.objects.filter(company=other_company).values_list("id", flat=True)),
                list(Customer.objects.filter(company=other_company).values_list("persona_id", "first_day")),
                list(CustomerActivity.objects.filter(company=other_company)
                     .values_list("persona_id", "store_id", "first_day")))

    before = theirs()
    assert before[1] == [(shop.stranger.pk, D(2026, 1, 6))]  # their customer is in the rollup
    # A sale of ours on the same day as theirs, by one of our customers.
    record(company, shop.source, "x", local(2026, 1, 6, 10), [line("Flower", "B", "P", 1, "1.00")],
           persona=shop.ben)
    assert not ChangedHour.objects.filter(company_id=other_company.pk).exists()
    rollup_refresh(company=company)
    assert theirs() == before
    assert not Customer.objects.filter(company=company, persona_id=shop.stranger.pk).exists()


@pytest.mark.django_db(transaction=True)
def test_rollup_marks_survive_a_refresh_that_fails(company, other_company):
    """The marks go in the same database transaction as the recalculation: a failure keeps them."""
    from tests.analytics.conftest import Shop

    shop = Shop(company, other_company)
    rollup_refresh(company=company)
    record(company, shop.source, "y", local(2026, 5, 5, 10), [line("Flower", "B", "P", 1, "1.00")])
    with mock.patch("analytics.services._days_recalculate", side_effect=RuntimeError("disk full")), \
            pytest.raises(RuntimeError):
        rollup_refresh(company=company)
    assert marked_days(company) == {D(2026, 5, 5)}
    rollup_refresh(company=company)
    assert not marked_days(company)


def test_rollup_month_rows_come_when_the_month_is_over(shop, company):
    from analytics.models import ProductSales

    february = Period(D(2026, 2, 1), D(2026, 2, 28))
    with time_machine.travel(local(2026, 2, 15, 12), tick=False):
        rollup_refresh(company=company, rebuild=True)
        assert RollupState.objects.get(company=company).month_rows_before == D(2026, 2, 1)
        record(company, shop.source, "feb-20", local(2026, 2, 20, 10),
               [line("Vapes", "V", "Pen", 1, "33.00")], store=shop.boulder)
        rollup_refresh(company=company)
        # February is under way: read from its day rows, no month rows yet
        assert not ProductSales.objects.filter(company=company, grain="month",
                                               period_start=D(2026, 2, 1)).exists()
        assert_exact(shop, company)
    with time_machine.travel(local(2026, 3, 5, 12), tick=False):
        # the first refresh in March writes February's month rows, with no sale to prompt it
        rollup_refresh(company=company)
        assert RollupState.objects.get(company=company).month_rows_before == D(2026, 3, 1)
        assert ProductSales.objects.filter(company=company, grain="month",
                                           period_start=D(2026, 2, 1)).exists()
        f = Filters(february)
        want = expected(company, f, selectors.bucket_for(february))
        assert observed(selectors.sales_report(company=company, filters=f)) == want
        assert_exact(shop, company)


def test_rollup_half_hour_time_zone(shop, company):
    """In India (UTC+5:30) the hour 18:00-19:00 UTC ends on the next local day: a sale at
    23:45 there is marked in it and lands on its own day, once."""
    from zoneinfo import ZoneInfo

    company.timezone = "Asia/Kolkata"
    company.save()
    rollup_refresh(company=company)
    when = dt.datetime(2026, 4, 10, 23, 45, tzinfo=ZoneInfo("Asia/Kolkata"))
    record(company, shop.source, "india", when, [line("Flower", "B", "P", 1, "12.00")], store=shop.denver)
    assert rollup_refresh(company=company).days == 2  # Apr 10 and Apr 11 local
    day = selectors.sales_report(company=company, filters=Filters(Period(D(2026, 4, 10), D(2026, 4, 10))))
    assert day.current.orders == 1 and day.hours == {(5, 23): (1, Decimal("12.00"))}
    assert_exact(shop, company)
