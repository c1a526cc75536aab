"""The Analytics numbers worked out again in plain Python, row by row, from the sales as
the ORM reads them: what the SQL (rollup and raw paths alike) is held to. It follows the
definitions on the page ("How these are counted") and shares no code with `analytics`."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from decimal import Decimal
from zoneinfo import ZoneInfo

from loyalty.models import LineItem, PointsEntry, Redemption, Transaction

ZERO = Decimal("0")


@dataclass
class Line:
    category: str
    brand: str
    product: str
    quantity: Decimal
    net: Decimal


@dataclass
class Sale:
    day: dt.date
    hour: int
    occurred_at: dt.datetime
    store_id: int | None
    fulfillment: str
    member: bool
    persona_id: int | None
    is_order: bool  # completed; False: a return
    subtotal: Decimal
    discount: Decimal
    tax: Decimal
    items: Decimal
    points_earned: int
    points_redeemed: int
    lines: list[Line] = field(default_factory=list)

    @property
    def value(self) -> Decimal:
        return self.subtotal - self.discount

    @property
    def signed(self) -> Decimal:
        return self.value if self.is_order else -self.value


def load(company) -> list[Sale]:
    """Every completed sale and return of the company, on its local day and hour."""
    tz = ZoneInfo(company.timezone)
    lines = defaultdict(list)
    for row in LineItem.objects.filter(transaction__company=company).values():
        net = row["total"] - (row["tax"] if row["tax_included"] else ZERO)
        lines[row["transaction_id"]].append(
            Line(row["category"], row["brand"], row["product"], row["quantity"], net))
    earned = defaultdict(int)
    entries = PointsEntry.objects.filter(transaction__company=company, kind__in=["earn", "reverse"])
    for row in entries.values():
        earned[row["transaction_id"]] += row["delta"]
    redeemed = defaultdict(int)
    for row in Redemption.objects.filter(transaction__company=company, state="redeemed").values():
        redeemed[row["transaction_id"]] += row["points"]
    sales = []
    for t in Transaction.objects.filter(company=company).select_related("persona"):
        if t.status == "voided":
            continue
        local = t.occurred_at.astimezone(tz)
        persona = t.persona
        member = bool(persona and persona.is_member and persona.enrolled_at <= t.occurred_at)
        sales.append(Sale(
            day=local.date(), hour=local.hour, occurred_at=t.occurred_at, store_id=t.store_id,
            fulfillment=t.fulfillment, member=member,
            persona_id=t.persona_id, is_order=t.status == "completed", subtotal=t.subtotal,
            discount=t.discount_total, tax=t.tax_total,
            items=sum((line.quantity for line in lines[t.pk]), ZERO), points_earned=earned[t.pk],
            points_redeemed=redeemed[t.pk], lines=lines[t.pk]))
    return sales


def _matches(sale: Sale, filters) -> bool:
    if filters.store_ids and sale.store_id not in filters.store_ids:
        return False
    if filters.fulfillment and sale.fulfillment != filters.fulfillment:
        return False
    if filters.customers == "members" and not sale.member:
        return False
    return not (filters.customers == "others" and sale.member)


def _totals(sales: list[Sale]) -> dict:
    orders = [s for s in sales if s.is_order]
    returns = [s for s in sales if not s.is_order]
    gross = sum((s.subtotal for s in orders), ZERO)
    discounts = sum((s.discount for s in orders), ZERO)
    returns_value = sum((s.value for s in returns), ZERO)
    return {
        "orders": len(orders), "gross_sales": gross, "discounts": discounts,
        "tax": sum((s.tax for s in orders), ZERO), "items": sum((s.items for s in orders), ZERO),
        "returns": len(returns), "returns_value": returns_value,
        "net_sales": gross - discounts - returns_value,
        "points_earned": sum(s.points_earned for s in orders),
        "points_redeemed": sum(s.points_redeemed for s in orders),
    }


def _bucket(day: dt.date, bucket: str):
    if bucket == "week":
        return day - dt.timedelta(days=day.weekday())
    if bucket == "month":
        return day.replace(day=1)
    return day


def expected(company, filters, bucket: str) -> dict:
    """Every number of the report for `filters`, as a dict the tests compare."""
    everything = load(company)
    start, end = filters.period.start, filters.period.end
    prev_start, prev_end = filters.previous.start, filters.previous.end
    until = filters.previous_until  # the previous period's last day counts up to then
    scoped = [s for s in everything if _matches(s, filters)]
    current = [s for s in scoped if start <= s.day <= end]
    previous = [s for s in scoped if prev_start <= s.day <= prev_end
                and (until is None or s.day < prev_end or s.occurred_at < until)]

    first_order = {}
    for s in everything:
        if s.is_order and s.persona_id is not None:
            first_order[s.persona_id] = min(first_order.get(s.persona_id, s.day), s.day)

    def customers(sales, since):
        people = {s.persona_id for s in sales if s.is_order and s.persona_id is not None}
        return {"unique": len(people), "new": sum(1 for p in people if first_order[p] >= since)}

    def grouped(key):
        groups = defaultdict(list)
        for s in current:
            groups[key(s)].append(s)
        return {k: _totals(v) for k, v in groups.items()}

    over_time = defaultdict(lambda: [0, ZERO])
    for s in current:
        slot = s.hour if bucket == "hour" else _bucket(s.day, bucket)
        over_time[slot][0] += int(s.is_order)
        over_time[slot][1] += s.signed
    hours = defaultdict(lambda: [0, ZERO])
    for s in current:
        cell = hours[(s.day.isoweekday(), s.hour)]
        cell[0] += int(s.is_order)
        cell[1] += s.signed

    def items(key):
        out = defaultdict(lambda: [ZERO, ZERO])
        for s in current:
            sign = 1 if s.is_order else -1
            for line in s.lines:
                entry = out[key(line)]
                entry[0] += sign * line.quantity
                entry[1] += sign * line.net
        return {k: tuple(v) for k, v in out.items()}

    return {
        "current": _totals(current),
        "previous": _totals(previous),
        "member_sales": _totals([s for s in current if s.member])["net_sales"],
        "previous_member_sales": _totals([s for s in previous if s.member])["net_sales"],
        "customers": customers(current, start),
        "previous_customers": customers(previous, prev_start),
        "over_time": {k: tuple(v) for k, v in over_time.items() if v[0] or v[1]},
        "by_store": {k: (v["orders"], v["net_sales"]) for k, v in grouped(lambda s: s.store_id).items()},
        "by_fulfillment": {k: (v["orders"], v["net_sales"])
                           for k, v in grouped(lambda s: s.fulfillment).items()},
        "by_member": {k: (v["orders"], v["net_sales"]) for k, v in grouped(lambda s: s.member).items()},
        "hours": {k: tuple(v) for k, v in hours.items()},
        "categories": items(lambda line: line.category),
        "brands": items(lambda line: line.brand),
        "products": items(lambda line: (line.product, line.brand)),
    }


def _totals_of(totals) -> dict:
    return {
        "orders": totals.orders, "gross_sales": totals.gross_sales, "discounts": totals.discounts,
        "tax": totals.tax, "items": totals.items, "returns": totals.returns,
        "returns_value": totals.returns_value, "net_sales": totals.net_sales,
        "points_earned": totals.points_earned, "points_redeemed": totals.points_redeemed,
    }


def observed(report) -> dict:
    """The same dict, read off a SalesReport."""
    return {
        "current": _totals_of(report.current),
        "previous": _totals_of(report.previous),
        "member_sales": report.member_sales,
        "previous_member_sales": report.previous_member_sales,
        "customers": {"unique": report.customers.unique, "new": report.customers.new},
        "previous_customers": {"unique": report.previous_customers.unique,
                               "new": report.previous_customers.new},
        "over_time": {b.start: (b.orders, b.net_sales) for b in report.over_time if b.orders or b.net_sales},
        "by_store": {k: (v.orders, v.net_sales) for k, v in report.by_store.items()},
        "by_fulfillment": {k: (v.orders, v.net_sales) for k, v in report.by_fulfillment.items()},
        "by_member": {k: (v.orders, v.net_sales) for k, v in report.by_member.items()},
        "hours": dict(report.hours),
        "categories": {i.name: (i.quantity, i.net_sales) for i in report.categories},
        "brands": {i.name: (i.quantity, i.net_sales) for i in report.brands},
        "products": {(i.name, i.brand): (i.quantity, i.net_sales) for i in report.products},
    }
