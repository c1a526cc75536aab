"""Reads for the Analytics page and the home dashboard: every number is an SQL aggregate.

Two paths give the same numbers: "rollup" (the default) reads the daily rollup tables,
"raw" runs the rollup's own definitions (`analytics.facts`) over the sales tables for the
requested days. The aggregations below are the same text for both; only the relation they
read differs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from django.db import connections
from django.db import transaction as db

from stores.replica import read_alias, reads_from_replica

from . import facts
from .models import RollupState

ROLLUP, RAW = "rollup", "raw"
ZERO = Decimal("0")
CENT = Decimal("0.01")

FULFILLMENT_LABELS = {"in_store": "In store", "pickup": "Pickup", "delivery": "Delivery"}
CUSTOMER_CHOICES = {"members": True, "others": False}


# --- what is asked -------------------------------------------------------------------------

@dataclass(frozen=True)
class Period:
    """Local days, both ends included."""

    start: dt.date
    end: dt.date

    @property
    def days(self) -> int:
        return (self.end - self.start).days + 1

    def previous(self) -> Period:
        """The same number of days just before."""
        return Period(self.start - dt.timedelta(days=self.days), self.start - dt.timedelta(days=1))

    def dates(self) -> list[dt.date]:
        return [self.start + dt.timedelta(days=i) for i in range(self.days)]


@dataclass(frozen=True)
class Filters:
    period: Period
    store_ids: tuple[int, ...] = ()
    fulfillment: str = ""  # "", or a Fulfillment value
    customers: str = ""  # "", "members" or "others"
    # What the period is compared with: by default the same number of days just before,
    # whole. A period that ends today compares like for like: `previous_until` is the same
    # moment on the previous period's last day (yesterday at this time), and its sales
    # after it are left out.
    previous_period: Period | None = None
    previous_until: dt.datetime | None = None

    @property
    def previous(self) -> Period:
        return self.previous_period or self.period.previous()

    @property
    def narrowed(self) -> bool:
        """Anything besides the dates: the page then reads detail rows, not totals."""
        return bool(self.store_ids or self.fulfillment or self.customers)


def bucket_for(period: Period) -> str:
    """How finely "sales over time" is cut: hours for a day, days up to a month, weeks up
    to a quarter, months beyond."""
    if period.days == 1:
        return "hour"
    if period.days <= 31:
        return "day"
    if period.days <= 92:
        return "week"
    return "month"


def bucket_starts(period: Period, bucket: str) -> list:
    """Every bucket of the period, empty ones too (hours are 0-23)."""
    if bucket == "hour":
        return list(range(24))
    if bucket == "day":
        return period.dates()
    if bucket == "week":
        first = period.start - dt.timedelta(days=period.start.weekday())
        return [first + dt.timedelta(weeks=i) for i in range((period.end - first).days // 7 + 1)]
    first = period.start.replace(day=1)
    starts = []
    while first <= period.end:
        starts.append(first)
        first = (first + dt.timedelta(days=32)).replace(day=1)
    return starts


def months_and_days(period: Period,
                    months_before: dt.date | None = None) -> tuple[list[dt.date], list[dt.date]]:
    """The whole calendar months inside the period (first days) that start before
    `months_before` (those with month rows), and the period's other days."""
    months, days = [], []
    day = period.start
    while day <= period.end:
        next_month = (day.replace(day=1) + dt.timedelta(days=32)).replace(day=1)
        whole = day.day == 1 and next_month - dt.timedelta(days=1) <= period.end
        if whole and (months_before is None or day < months_before):
            months.append(day)
            day = next_month
        else:
            days.append(day)
            day += dt.timedelta(days=1)
    return months, days


# --- what comes back ------------------------------------------------------------------------

@dataclass
class Totals:
    orders: int = 0
    gross_sales: Decimal = ZERO
    discounts: Decimal = ZERO
    tax: Decimal = ZERO
    items: Decimal = ZERO
    returns: int = 0
    returns_value: Decimal = ZERO
    points_earned: int = 0
    points_redeemed: int = 0

    MEASURES = ("orders", "gross_sales", "discounts", "tax", "items", "returns", "returns_value",
                "points_earned", "points_redeemed")

    @property
    def order_sales(self) -> Decimal:
        """What the orders came to: after discounts, before tax and returns."""
        return self.gross_sales - self.discounts

    @property
    def net_sales(self) -> Decimal:
        return self.gross_sales - self.discounts - self.returns_value

    @property
    def average_order_value(self) -> Decimal | None:
        if not self.orders:
            return None
        return (self.order_sales / self.orders).quantize(CENT, ROUND_HALF_UP)

    @property
    def items_per_order(self) -> Decimal | None:
        if not self.orders:
            return None
        return (self.items / self.orders).quantize(CENT, ROUND_HALF_UP)

    @property
    def is_empty(self) -> bool:
        return not self.orders and not self.returns


@dataclass
class Customers:
    unique: int = 0
    new: int = 0

    @property
    def returning(self) -> int:
        return self.unique - self.new


@dataclass
class ItemSales:
    """A category, brand or product: net units and net sales."""

    name: str
    brand: str = ""
    quantity: Decimal = ZERO
    net_sales: Decimal = ZERO


@dataclass
class Bucket:
    """One bar of "sales over time": an hour (0-23) or the first day of a day, week or month."""

    start: object
    orders: int
    net_sales: Decimal
    totals: Totals | None = None  # the whole breakdown (not kept per hour)


@dataclass
class SalesReport:
    filters: Filters
    bucket: str
    current: Totals
    previous: Totals
    customers: Customers
    previous_customers: Customers
    member_sales: Decimal = ZERO
    previous_member_sales: Decimal = ZERO
    over_time: list[Bucket] = field(default_factory=list)
    by_store: dict = field(default_factory=dict)  # store id or None -> Totals
    by_fulfillment: dict = field(default_factory=dict)  # fulfillment -> Totals
    by_member: dict = field(default_factory=dict)  # True / False -> Totals
    hours: dict = field(default_factory=dict)  # (ISO weekday 1-7, hour) -> (orders, net sales)
    categories: list[ItemSales] = field(default_factory=list)  # every one, best first
    brands: list[ItemSales] = field(default_factory=list)
    products: list[ItemSales] = field(default_factory=list)

    @property
    def member_share(self) -> Decimal | None:
        return share_percent(self.member_sales, self.current.net_sales)

    @property
    def previous_member_share(self) -> Decimal | None:
        return share_percent(self.previous_member_sales, self.previous.net_sales)


def share_percent(part, whole) -> Decimal | None:
    """`part` as a percent of `whole`, to one decimal; None when there is no whole."""
    if not whole or whole <= 0:
        return None
    return (100 * Decimal(part) / Decimal(whole)).quantize(Decimal("0.1"), ROUND_HALF_UP)


# --- SQL --------------------------------------------------------------------------------------

def _filter_sql(filters: Filters, *, alias: str = "r") -> tuple[str, dict]:
    parts, params = ["true"], {}
    if filters.store_ids:
        parts.append(f"{alias}.store_id = ANY(%(stores)s::bigint[])")
        params["stores"] = list(filters.store_ids)
    if filters.fulfillment:
        parts.append(f"{alias}.fulfillment = %(fulfillment)s::text")
        params["fulfillment"] = filters.fulfillment
    if filters.customers:
        parts.append(f"{alias}.member = %(member)s::boolean")
        params["member"] = CUSTOMER_CHOICES[filters.customers]
    return " AND ".join(parts), params


def _sales_days(path: str, query: str) -> str:
    """`query` (with {rel}) over the SalesDay rows of days first_day..last_day."""
    if path == ROLLUP:
        return query.format(rel="(SELECT * FROM analytics_salesday WHERE company_id = %(company)s::bigint "
                                "AND day BETWEEN %(first_day)s::date AND %(last_day)s::date)")
    return facts.with_sales(query.format(rel="(" + facts.SALES_DAY + ")"), facts.DAYS_RANGE)


def _sales_hours(path: str, query: str) -> str:
    if path == ROLLUP:
        return query.format(rel="(SELECT * FROM analytics_saleshour WHERE company_id = %(company)s::bigint "
                                "AND day BETWEEN %(first_day)s::date AND %(last_day)s::date)")
    return facts.with_sales(query.format(rel="(" + facts.SALES_HOUR + ")"), facts.DAYS_RANGE)


def _product_sales(path: str, query: str) -> str:
    if path == ROLLUP:
        # Whole months from the month rows, the rest of the period from the day rows.
        return query.format(rel=(
            "(SELECT * FROM analytics_productsales WHERE company_id = %(company)s::bigint "
            "AND ((grain = 'month' AND period_start = ANY(%(months)s::date[])) "
            "OR (grain = 'day' AND period_start = ANY(%(other_days)s::date[]))))"))
    return facts.with_sales(query.format(rel="(" + facts.PRODUCT_DAY + ")"), facts.DAYS_RANGE)


def _customers(path: str, query: str, *, narrowed: bool) -> str:
    if path == ROLLUP:
        table = "analytics_customeractivity" if narrowed else "analytics_customer"
        return query.format(rel=f"(SELECT * FROM {table} WHERE company_id = %(company)s::bigint)")
    rel = "(" + (facts.ACTIVITY if narrowed else facts.CUSTOMER) + ")"
    return facts.with_orders(query.format(rel=rel), facts.ALL_PERSONAS)


# Current and previous period in one pass; the current one also by bucket, store,
# fulfillment type and loyalty status (GROUPING() tells which row is which).
SALES_SQL = """
SELECT x.is_current, x.bucket, x.store_id, x.fulfillment, x.member,
       GROUPING(x.bucket, x.store_id, x.fulfillment, x.member) AS grouping,
       sum(x.orders), sum(x.gross_sales), sum(x.discounts), sum(x.tax), sum(x.items), sum(x.returns),
       sum(x.returns_value), sum(x.points_earned), sum(x.points_redeemed)
FROM (SELECT r.*, r.day >= %(start)s::date AS is_current,
             date_trunc(%(bucket)s::text, r.day)::date AS bucket
      FROM {rel} r
      WHERE {where} AND (r.day >= %(start)s::date
                         OR r.day BETWEEN %(prev_start)s::date AND %(prev_whole_end)s::date)) x
GROUP BY GROUPING SETS ((x.is_current), (x.is_current, x.bucket), (x.is_current, x.store_id),
                        (x.is_current, x.fulfillment), (x.is_current, x.member))"""

GROUP_ALL, GROUP_BUCKET, GROUP_STORE, GROUP_FULFILLMENT, GROUP_MEMBER = 15, 7, 11, 13, 14

# The previous period's last day up to `previous_until`, straight from the sales tables
# (the rollup has whole days): all of it, and its members' part.
CUT_DAY_SQL = """
SELECT GROUPING(r.member) AS grouping, r.member,
       sum(r.orders), sum(r.gross_sales), sum(r.discounts), sum(r.tax), sum(r.items), sum(r.returns),
       sum(r.returns_value), sum(r.points_earned), sum(r.points_redeemed)
FROM ({sales_day}) r
WHERE {where}
GROUP BY GROUPING SETS ((), (r.member))"""

# The customers who ordered on the previous period's last day before `previous_until`.
CUT_DAY_CUSTOMERS_SQL = """
SELECT DISTINCT r.persona_id FROM {sales} r
WHERE r.is_order AND r.persona_id IS NOT NULL AND {where}"""

HOURS_SQL = """
SELECT extract(isodow FROM r.day)::int AS weekday, r.hour, sum(r.orders), sum(r.net_sales)
FROM {rel} r
WHERE r.is_total = %(totals)s::boolean AND {where}
GROUP BY 1, 2"""

PRODUCTS_SQL = """
SELECT GROUPING(r.category, r.brand, r.product) AS grouping, r.category, r.brand, r.product,
       sum(r.quantity), sum(r.net_sales)
FROM {rel} r
WHERE r.is_total = %(totals)s::boolean AND {where}
GROUP BY GROUPING SETS ((r.category), (r.brand), (r.product, r.brand))
ORDER BY 1, 6 DESC, 2, 3, 4"""

GROUP_CATEGORY, GROUP_BRAND, GROUP_PRODUCT = 3, 5, 4

# A customer counts in a period when one of their order days is in it, and is new there
# when their first order ever is in it too. Filtered, a customer has a row per store,
# fulfillment type and loyalty status: those are folded into one per customer first.
CUSTOMERS_SQL = """
SELECT count(*) FILTER (WHERE x.now),
       count(*) FILTER (WHERE x.now AND x.first_day >= %(start)s::date),
       count(*) FILTER (WHERE x.before),
       count(*) FILTER (WHERE x.before AND x.first_day >= %(prev_start)s::date)
FROM (SELECT {per_customer}
      FROM {rel} r
      WHERE r.order_days && daterange(%(prev_start)s::date, %(end)s::date, '[]') AND {where}
      {group}) x"""

ONE_ROW_EACH = """r.first_day, r.order_days && daterange(%(start)s::date, %(end)s::date, '[]') AS now,
       (r.order_days && daterange(%(prev_start)s::date, %(prev_whole_end)s::date + 1, '[)')
        OR r.persona_id = ANY(%(cut_personas)s::bigint[])) AS before"""

ROWS_FOLDED = """min(r.first_day) AS first_day,
       bool_or(r.order_days && daterange(%(start)s::date, %(end)s::date, '[]')) AS now,
       bool_or(r.order_days && daterange(%(prev_start)s::date, %(prev_whole_end)s::date + 1, '[)')
               OR r.persona_id = ANY(%(cut_personas)s::bigint[])) AS before"""


def _run(sql: str, params: dict) -> list[tuple]:
    with connections[read_alias()].cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _totals(values) -> Totals:
    return Totals(**dict(zip(Totals.MEASURES, values, strict=True)))


def _params(company, filters: Filters) -> tuple[dict, str]:
    period, previous = filters.period, filters.previous
    where, params = _filter_sql(filters)
    until = filters.previous_until
    # Whole days of the previous period; with `until` its last day is read on its own.
    whole_end = previous.end - dt.timedelta(days=1) if until else previous.end
    return {**params, "company": company.pk, "tz": company.timezone, "start": period.start,
            "end": period.end, "prev_start": previous.start, "prev_end": previous.end,
            "prev_whole_end": whole_end, "until": until, "cut_personas": []}, where


def _cut_day_sales(query: str) -> str:
    """`query` over the sales of the previous period's last day before `until`."""
    sales = facts.SALES.format(days="SELECT %(prev_end)s::date AS day").replace(
        "WHERE t.status IN", "WHERE t.occurred_at < %(until)s AND t.status IN")
    return f"WITH sales AS ({sales})\n" + query.format(sales="sales")


def _cut_day(params: dict, where: str, out: _Sales) -> None:
    """Adds the previous period's last day, up to `until`, to its totals."""
    sql = _cut_day_sales(CUT_DAY_SQL.replace("{where}", where).replace("{sales_day}", facts.SALES_DAY))
    for grouping, member, *values in _run(sql, params):
        totals = _totals(0 if value is None else value for value in values)  # no sales: NULL sums
        if grouping == 1:
            out.previous = _added(out.previous, totals)
        elif member:
            out.previous_member_sales += totals.net_sales


def _cut_day_customers(params: dict, where: str) -> list[int]:
    sql = _cut_day_sales(CUT_DAY_CUSTOMERS_SQL.replace("{where}", where))
    return [persona_id for (persona_id,) in _run(sql, params)]


def _added(a: Totals, b: Totals) -> Totals:
    return Totals(**{name: getattr(a, name) + getattr(b, name) for name in Totals.MEASURES})


@dataclass
class _Sales:
    current: Totals = field(default_factory=Totals)
    previous: Totals = field(default_factory=Totals)
    member_sales: Decimal = ZERO
    previous_member_sales: Decimal = ZERO
    by_bucket: dict = field(default_factory=dict)
    by_store: dict = field(default_factory=dict)
    by_fulfillment: dict = field(default_factory=dict)
    by_member: dict = field(default_factory=dict)


def _sales(path: str, params: dict, where: str, bucket: str) -> _Sales:
    sql = _sales_days(path, SALES_SQL.replace("{where}", where))
    rows = _run(sql, {**params, "first_day": params["prev_start"], "last_day": params["end"],
                      "bucket": "day" if bucket == "hour" else bucket})
    out = _Sales()
    for is_current, bucket_start, store_id, fulfillment, member, grouping, *values in rows:
        totals = _totals(values)
        if grouping == GROUP_ALL:
            if is_current:
                out.current = totals
            else:
                out.previous = totals
        elif grouping == GROUP_MEMBER and member:
            if is_current:
                out.member_sales = totals.net_sales
            else:
                out.previous_member_sales = totals.net_sales
        if not is_current:
            continue
        if grouping == GROUP_BUCKET:
            out.by_bucket[bucket_start] = totals
        elif grouping == GROUP_STORE:
            out.by_store[store_id] = totals
        elif grouping == GROUP_FULFILLMENT:
            out.by_fulfillment[fulfillment] = totals
        elif grouping == GROUP_MEMBER:
            out.by_member[member] = totals
    if params["until"] is not None:
        _cut_day(params, where, out)
    return out


def _hours(filters: Filters, path: str, params: dict, where: str) -> dict:
    sql = _sales_hours(path, HOURS_SQL.replace("{where}", where))
    rows = _run(sql, {**params, "first_day": params["start"], "last_day": params["end"],
                      "totals": not filters.narrowed})
    return {(weekday, hour): (orders, net) for weekday, hour, orders, net in rows}


def _items(filters: Filters, path: str, params: dict, where: str) -> dict:
    months_before = (RollupState.objects.filter(company_id=params["company"])
                     .values_list("month_rows_before", flat=True).first() if path == ROLLUP else None)
    months, other_days = months_and_days(filters.period, months_before or dt.date.min)
    sql = _product_sales(path, PRODUCTS_SQL.replace("{where}", where))
    rows = _run(sql, {**params, "first_day": params["start"], "last_day": params["end"], "months": months,
                      "other_days": other_days, "totals": not filters.narrowed})
    out = {"categories": [], "brands": [], "products": []}
    for grouping, category, brand, product, quantity, net in rows:
        if grouping == GROUP_CATEGORY:
            out["categories"].append(ItemSales(category, quantity=quantity, net_sales=net))
        elif grouping == GROUP_BRAND:
            out["brands"].append(ItemSales(brand, quantity=quantity, net_sales=net))
        elif grouping == GROUP_PRODUCT:
            out["products"].append(ItemSales(product, brand=brand, quantity=quantity, net_sales=net))
    return out


def _customer_counts(filters: Filters, path: str, params: dict, where: str) -> tuple[Customers, Customers]:
    narrowed = filters.narrowed
    query = (CUSTOMERS_SQL.replace("{per_customer}", ROWS_FOLDED if narrowed else ONE_ROW_EACH)
             .replace("{group}", "GROUP BY r.persona_id" if narrowed else "")
             .replace("{where}", where))
    sql = _customers(path, query, narrowed=narrowed)
    if params["until"] is not None:
        params = {**params, "cut_personas": _cut_day_customers(params, where)}
    unique, new, prev_unique, prev_new = _run(sql, params)[0]
    return Customers(unique, new), Customers(prev_unique, prev_new)


def _read_settings() -> None:
    """For the report's transaction: no JIT (compiling costs more than these queries
    take), and room to group a year of customers in memory."""
    with connections[read_alias()].cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")


def sales_report(*, company, filters: Filters, path: str = ROLLUP) -> SalesReport:
    """Everything the Analytics page shows, in four queries. The rollup path expects the
    rollup to be current (`services.rollup_ensure_current`). Read from the replica when
    there is one: a sale may reach the page a moment late."""
    bucket = bucket_for(filters.period)
    params, where = _params(company, filters)
    with reads_from_replica() as alias, db.atomic(using=alias):
        _read_settings()
        sales = _sales(path, params, where, bucket)
        hours = _hours(filters, path, params, where)
        items = _items(filters, path, params, where)
        customers, previous_customers = _customer_counts(filters, path, params, where)
    if bucket == "hour":  # a single day: its hours come from the hour rows
        by_hour = {hour: values for (_weekday, hour), values in hours.items()}
        over_time = [Bucket(hour, *by_hour.get(hour, (0, ZERO))) for hour in range(24)]
    else:
        over_time = []
        for start in bucket_starts(filters.period, bucket):
            totals = sales.by_bucket.get(start, Totals())
            over_time.append(Bucket(start, totals.orders, totals.net_sales, totals))
    return SalesReport(
        filters=filters, bucket=bucket, current=sales.current, previous=sales.previous,
        customers=customers, previous_customers=previous_customers, member_sales=sales.member_sales,
        previous_member_sales=sales.previous_member_sales, over_time=over_time, by_store=sales.by_store,
        by_fulfillment=sales.by_fulfillment, by_member=sales.by_member, hours=hours, **items,
    )


def headline(*, company, filters: Filters, path: str = ROLLUP) -> SalesReport:
    """The KPIs alone (the home dashboard): the report without its charts, in two queries."""
    params, where = _params(company, filters)
    with reads_from_replica() as alias, db.atomic(using=alias):
        _read_settings()
        sales = _sales(path, params, where, "day")
        customers, previous_customers = _customer_counts(filters, path, params, where)
    return SalesReport(filters=filters, bucket="day", current=sales.current, previous=sales.previous,
                       customers=customers, previous_customers=previous_customers,
                       member_sales=sales.member_sales, previous_member_sales=sales.previous_member_sales)


def store_names(*, company) -> dict[int, str]:
    return dict(company.stores.order_by("name").values_list("pk", "name"))
