"""Keeping the sales rollup current: recalculate, set-wise, the days whose sales changed.

The database marks every hour in which sales changed (`ChangedHour`, written by triggers
on sales, line items, points, redemptions and personas); `rollup_refresh` takes those
marks and recalculates exactly their local days, and the customers who bought on them, in
one database transaction. It runs after each sync, shortly after POS sales, and before the Analytics
page reads, so the page is never behind the sales.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import zlib
import zoneinfo
from dataclasses import dataclass

from django.core.cache import cache
from django.db import connection
from django.db import transaction as db
from django.utils import timezone

from stores.redis_guard import REDIS_ERRORS, redis_failed, redis_up, task_enqueue

from . import facts
from .models import RollupState

# POS sales arriving within this many seconds share one refresh.
REFRESH_DELAY_SECONDS = 10
ROLLUP_TABLES = ("analytics_salesday", "analytics_saleshour", "analytics_productsales", "analytics_customer",
                 "analytics_customeractivity")
_LOCK_CLASS = zlib.crc32(b"analytics-rollup") & 0x7FFFFFFF


@dataclass
class RefreshOutcome:
    days: int
    customers: int
    rebuilt: bool


def _insert(table: str, columns: tuple[str, ...], select: str) -> str:
    names = ", ".join(columns)
    return f"INSERT INTO {table} (company_id, {names}) SELECT %(company)s::bigint, {names} FROM ({select}) f"


def rollup_refresh(*, company, rebuild: bool = False) -> RefreshOutcome:
    """Recalculate the days of `company` whose sales changed since the last refresh (all of
    them the first time, after a change of time zone, or with `rebuild`). Safe to call at
    any time and from several processes: refreshes of one company take turns."""
    with db.atomic(), connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(%s::int, %s::int)", [_LOCK_CLASS, company.pk])
        _refresh_settings(cursor)
        state = RollupState.objects.filter(company=company).first()
        rebuild = rebuild or state is None or state.timezone != company.timezone
        this_month = timezone.now().astimezone(zoneinfo.ZoneInfo(company.timezone)).date().replace(day=1)
        params = {"company": company.pk, "tz": company.timezone}
        # The marks go first: a sale that changes while this runs marks its hour again,
        # for the next refresh.
        cursor.execute(_MARKS_TAKE, params)
        days = [row[0] for row in cursor.fetchall()]
        if rebuild:
            for table in ROLLUP_TABLES:
                cursor.execute(f"DELETE FROM {table} WHERE company_id = %(company)s::bigint", params)
            cursor.execute("SELECT DISTINCT (occurred_at AT TIME ZONE %(tz)s::text)::date "
                           "FROM loyalty_transaction WHERE company_id = %(company)s::bigint ORDER BY 1",
                           params)
            days = [row[0] for row in cursor.fetchall()]
            months = {day.replace(day=1) for day in days if day < this_month}
        else:
            # Month rows: for the changed days of months that are over, and for the months
            # that ended since the last refresh.
            months = {day.replace(day=1) for day in days if day < state.month_rows_before}
            months |= set(_months_between(state.month_rows_before, this_month))
        customers = _days_recalculate(cursor, params, days, fresh=rebuild) if days else 0
        if months:
            _months_recalculate(cursor, params, sorted(months), fresh=rebuild)
        if rebuild or len(days) > 31:
            # Many rows changed at once: the planner should know before autovacuum tells it.
            for table in ROLLUP_TABLES:
                cursor.execute(f"ANALYZE {table}")
        now = timezone.now()
        months_before = this_month if rebuild else max(this_month, state.month_rows_before)
        RollupState.objects.update_or_create(company=company, defaults={
            "timezone": company.timezone, "month_rows_before": months_before, "refreshed_at": now,
            **({"built_at": now} if rebuild else {})})
    return RefreshOutcome(days=len(days), customers=customers, rebuilt=rebuild)


# The local days of the marked hours: an hour can end on the next local day where the
# offset is not whole hours (India, Newfoundland).
_MARKS_TAKE = """
WITH marks AS (DELETE FROM analytics_changedhour WHERE company_id = %(company)s::bigint RETURNING hour)
SELECT DISTINCT (moment AT TIME ZONE %(tz)s::text)::date AS day
FROM marks, LATERAL (VALUES (hour), (hour + interval '1 hour' - interval '1 microsecond')) AS m(moment)
ORDER BY day"""


def _refresh_settings(cursor) -> None:
    cursor.execute("SET LOCAL jit = off")  # compiling costs more than these queries take
    # The rows a few days touch are best read through their indexes; the tables are warm.
    cursor.execute("SET LOCAL random_page_cost = 1.1")
    # Derived data: after a crash, the marks come back with the rows and are read again.
    cursor.execute("SET LOCAL synchronous_commit = off")


def _months_between(first: dt.date, end: dt.date) -> list[dt.date]:
    months = []
    while first < end:
        months.append(first)
        first = (first + dt.timedelta(days=32)).replace(day=1)
    return months


def _days_recalculate(cursor, params: dict, days: list, *, fresh: bool) -> int:
    """Replace the rollup rows of `days`, and those of every customer who bought on them,
    before or after the change. Returns how many customers."""
    params = {**params, "days": days}
    if not fresh:
        for table, column in (("analytics_salesday", "day"), ("analytics_saleshour", "day")):
            cursor.execute(f"DELETE FROM {table} WHERE company_id = %(company)s::bigint "
                           f"AND {column} = ANY(%(days)s::date[])", params)
        cursor.execute("DELETE FROM analytics_productsales WHERE company_id = %(company)s::bigint "
                       "AND grain = 'day' AND period_start = ANY(%(days)s::date[])", params)
    # The changed days' sales, once, with statistics: the planner then reads a few days
    # through indexes and a whole history with hash joins.
    cursor.execute("DROP TABLE IF EXISTS analytics_sales")
    cursor.execute("CREATE TEMP TABLE analytics_sales ON COMMIT DROP AS "
                   + facts.SALES.format(days=facts.DAYS_LIST), params)
    cursor.execute("ANALYZE analytics_sales")
    for table, columns, query in (
        ("analytics_salesday", facts.SALES_DAY_COLUMNS, facts.SALES_DAY),
        ("analytics_saleshour", facts.SALES_HOUR_COLUMNS, facts.SALES_HOUR),
        ("analytics_productsales", facts.PRODUCT_COLUMNS, facts.PRODUCT_DAY),
    ):
        cursor.execute(_insert(table, columns, query.format(sales="analytics_sales")), params)
    return _customers_recalculate(cursor, params) if not fresh else _customers_build(cursor, params)


def _months_recalculate(cursor, params: dict, months: list[dt.date], *, fresh: bool) -> None:
    """Product month rows of `months` (months that are over), from their day rows."""
    params = {**params, "months": months}
    if not fresh:
        cursor.execute("DELETE FROM analytics_productsales WHERE company_id = %(company)s::bigint "
                       "AND grain = 'month' AND period_start = ANY(%(months)s::date[])", params)
    cursor.execute(_insert("analytics_productsales", facts.PRODUCT_COLUMNS, facts.PRODUCT_MONTH), params)


def _customers_build(cursor, params: dict) -> int:
    """Every customer's rows, from all of their orders."""
    cursor.execute(facts.with_orders(_insert("analytics_customer", facts.CUSTOMER_COLUMNS, facts.CUSTOMER),
                                     facts.ALL_PERSONAS), params)
    customers = cursor.rowcount
    cursor.execute(facts.with_orders(_insert("analytics_customeractivity", facts.ACTIVITY_COLUMNS,
                                             facts.ACTIVITY), facts.ALL_PERSONAS), params)
    return customers


# The changed days' orders, per customer, store, fulfillment type and loyalty status (from
# the sales of those days, already in analytics_sales).
_FRESH = """
CREATE TEMP TABLE analytics_fresh ON COMMIT DROP AS
SELECT persona_id, store_id, fulfillment, member, range_agg(daterange(day, day, '[]')) AS order_days
FROM analytics_sales WHERE is_order AND persona_id IS NOT NULL
GROUP BY persona_id, store_id, fulfillment, member"""

_CHANGED = "changed AS (SELECT range_agg(daterange(d, d, '[]')) AS days FROM unnest(%(days)s::date[]) AS d)"

# The customers the rollup says ordered on a changed day, and those who order on one now,
# taken out (to be put back patched).
_CUSTOMERS_TAKE = f"""
WITH {_CHANGED},
old AS (
    DELETE FROM analytics_customer c USING changed
    WHERE c.company_id = %(company)s::bigint
      AND (c.order_days && changed.days OR c.persona_id IN (SELECT persona_id FROM analytics_fresh))
    RETURNING c.persona_id, c.order_days
)
INSERT INTO analytics_old SELECT persona_id, order_days FROM old"""

# Their days are what they were, less the changed days, plus the changed days on which
# they order now; their first day is the first of those. A customer left with none is gone.
_CUSTOMERS_PUT = f"""
WITH {_CHANGED}
INSERT INTO analytics_customer (company_id, persona_id, first_day, order_days)
SELECT %(company)s::bigint, persona_id, lower(order_days), order_days
FROM (SELECT persona_id, range_agg(order_days) AS order_days
      FROM (SELECT o.persona_id, o.order_days - changed.days AS order_days FROM analytics_old o, changed
            UNION ALL
            SELECT persona_id, order_days FROM analytics_fresh) parts
      GROUP BY persona_id) merged
WHERE NOT isempty(order_days)"""

_AFFECTED = """
INSERT INTO analytics_affected (persona_id, first_day)
SELECT p.persona_id, c.first_day
FROM (SELECT persona_id FROM analytics_old UNION SELECT persona_id FROM analytics_fresh) p
LEFT JOIN analytics_customer c ON c.persona_id = p.persona_id"""

# Each affected customer's rows per store, fulfillment type and loyalty status, patched the
# same way, with the customer's (maybe new) first day.
_ACTIVITY_PATCH = f"""
WITH {_CHANGED},
old AS (
    DELETE FROM analytics_customeractivity a
    WHERE a.company_id = %(company)s::bigint AND a.persona_id IN (SELECT persona_id FROM analytics_affected)
    RETURNING a.persona_id, a.store_id, a.fulfillment, a.member, a.order_days
),
merged AS (
    SELECT persona_id, store_id, fulfillment, member, range_agg(order_days) AS order_days
    FROM (SELECT o.persona_id, o.store_id, o.fulfillment, o.member, o.order_days - changed.days AS order_days
          FROM old o, changed
          UNION ALL
          SELECT persona_id, store_id, fulfillment, member, order_days FROM analytics_fresh) parts
    GROUP BY persona_id, store_id, fulfillment, member
)
INSERT INTO analytics_customeractivity (company_id, persona_id, store_id, fulfillment, member, first_day,
                                        order_days)
SELECT %(company)s::bigint, m.persona_id, m.store_id, m.fulfillment, m.member, a.first_day, m.order_days
FROM merged m JOIN analytics_affected a ON a.persona_id = m.persona_id
WHERE NOT isempty(m.order_days)"""


def _customers_recalculate(cursor, params: dict) -> int:
    """Only the changed days' orders are read: each affected customer's days are patched.
    Returns how many customers were affected."""
    cursor.execute("DROP TABLE IF EXISTS analytics_fresh, analytics_old, analytics_affected")
    cursor.execute(_FRESH)
    cursor.execute("CREATE TEMP TABLE analytics_old (persona_id bigint, order_days datemultirange) "
                   "ON COMMIT DROP")
    cursor.execute("CREATE TEMP TABLE analytics_affected (persona_id bigint PRIMARY KEY, first_day date) "
                   "ON COMMIT DROP")
    cursor.execute(_CUSTOMERS_TAKE, params)
    cursor.execute(_CUSTOMERS_PUT, params)
    cursor.execute(_AFFECTED)
    cursor.execute("ANALYZE analytics_affected")
    cursor.execute(_ACTIVITY_PATCH, params)
    cursor.execute("SELECT count(*) FROM analytics_affected")
    return cursor.fetchone()[0]


def rollup_pending(*, company) -> bool:
    """Whether the page must refresh before it reads (two cheap index probes)."""
    state = RollupState.objects.filter(company=company).values_list("timezone", flat=True).first()
    if state != company.timezone:
        return True
    with connection.cursor() as cursor:
        cursor.execute("SELECT EXISTS (SELECT 1 FROM analytics_changedhour WHERE company_id = %s::bigint)",
                       [company.pk])
        return cursor.fetchone()[0]


def rollup_ensure_current(*, company) -> None:
    if rollup_pending(company=company):
        rollup_refresh(company=company)


def _queued_key(company_id: int) -> str:
    return f"analytics:refresh-queued:{company_id}"


def analytics_refresh_soon(*, company_id: int) -> None:
    """After a sale is recorded: refresh the company's rollup in a few seconds, once for a
    burst of sales. Runs only if the sale commits; a broker hiccup never fails the sale."""
    db.on_commit(lambda: _refresh_queue(company_id), robust=True)


def _refresh_queue(company_id: int) -> None:
    """With Redis away nothing is queued and nothing is lost: the sale's changed hours
    stay marked in the database, for the next sale's refresh or the page's own
    (rollup_ensure_current)."""
    from .tasks import analytics_refresh

    if not redis_up():
        return
    key = _queued_key(company_id)
    try:
        queue = cache.add(key, 1, timeout=REFRESH_DELAY_SECONDS + 120)
    except REDIS_ERRORS as exc:
        redis_failed("analytics refresh", exc)
        return
    if queue and not task_enqueue(analytics_refresh, (company_id,), what="analytics refresh",
                                  countdown=REFRESH_DELAY_SECONDS):
        with contextlib.suppress(*REDIS_ERRORS):
            cache.delete(key)  # the next sale queues it


def refresh_queue_clear(*, company_id: int) -> None:
    # Cleared before the refresh reads the marks: a sale that commits after this queues
    # the next refresh.
    cache.delete(_queued_key(company_id))
