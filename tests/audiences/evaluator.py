"""A plain Python reading of an audience rule tree, written from the documented semantics
(the issue, traits.py's catalog, the facts rules in services.py), not from the compiler's
SQL: the differential tests hold the compiled query to it.

`snapshot(company, now)` loads the company's customers, sales, lines, redemptions and
stored audience members once; `evaluate(tree, snap)` is then the sorted ids a tree selects.

Semantics, in short:
- every condition is strictly true or false; NOT negates it; all = AND, any = OR, an empty
  group is true;
- text is compared case-insensitively; an empty text is "not set"; `not_equals` matches
  "not set" too, every other comparison with "not set" is false;
- dates: within_days is `>= now - N days`; before D = earlier than D 00:00 local;
  after D = at or after D+1 00:00 local; between [A, B] = from A 00:00 to B+1 00:00 local;
- the company's local `today` for age, birthday month and days since the last purchase;
- purchase facts count completed sales that have a customer.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from audiences.models import AudienceMember
from loyalty.models import LineItem, Persona, Redemption, Transaction

CUSTOM = "custom:"


@dataclass
class Line:
    category: str
    brand: str
    product: str


@dataclass
class Sale:
    status: str
    store_id: int | None
    fulfillment: str
    total: Decimal
    occurred_at: dt.datetime
    lines: list[Line] = field(default_factory=list)


@dataclass
class Customer:
    persona: Persona
    sales: list[Sale] = field(default_factory=list)  # every status

    @property
    def completed(self) -> list[Sale]:
        return [s for s in self.sales if s.status == "completed"]


@dataclass
class Snapshot:
    now: dt.datetime
    zone: zoneinfo.ZoneInfo
    today: dt.date
    customers: list[Customer]
    redeemed: set[int]  # personas with a redemption in state redeemed
    members: dict[int, set[int]]  # audience id -> persona ids stored as members


def snapshot(company, now: dt.datetime) -> Snapshot:
    zone = zoneinfo.ZoneInfo(company.timezone)
    personas = list(Persona.objects.filter(company=company).select_related("sourced_from").order_by("pk"))
    customers = {p.pk: Customer(p) for p in personas}
    sales = {}
    for t in Transaction.objects.filter(company=company, persona__isnull=False):
        sale = Sale(t.status, t.store_id, t.fulfillment, t.total, t.occurred_at)
        sales[t.pk] = sale
        if t.persona_id in customers:
            customers[t.persona_id].sales.append(sale)
    for line in LineItem.objects.filter(transaction_id__in=list(sales)):
        sales[line.transaction_id].lines.append(Line(line.category, line.brand, line.product))
    redeemed = set(Redemption.objects.filter(company=company, state="redeemed")
                   .values_list("persona_id", flat=True))
    members: dict[int, set[int]] = {}
    for audience_id, persona_id in AudienceMember.objects.filter(audience__company=company).values_list(
            "audience_id", "persona_id"):
        members.setdefault(audience_id, set()).add(persona_id)
    return Snapshot(now=now, zone=zone, today=now.astimezone(zone).date(), customers=list(customers.values()),
                    redeemed=redeemed, members=members)


def evaluate(tree: dict, snap: Snapshot) -> list[int]:
    return sorted(c.persona.pk for c in snap.customers if node_matches(tree, c, snap))


# --- the tree -----------------------------------------------------------------------------------

def node_matches(node: dict, customer: Customer, snap: Snapshot) -> bool:
    if node["type"] == "group":
        results = [node_matches(child, customer, snap) for child in node.get("children", [])]
        result = all(results) if node.get("match", "all") == "all" else any(results)
        if not results:
            result = True
    else:
        result = bool(condition_matches(node, customer, snap))
    return (not result) if node.get("negate", False) else result


# --- values as they read -----------------------------------------------------------------------

def _text_or_none(value) -> str | None:
    return value if value else None


def _custom(traits: dict, name: str) -> str | None:
    if name not in traits or traits[name] is None:
        return None
    value = traits[name]
    if isinstance(value, str):
        return value or None
    return json.dumps(value)  # how jsonb renders a number / true / false as text


def _age(birth: dt.date | None, today: dt.date) -> int | None:
    if birth is None:
        return None
    return today.year - birth.year - ((today.month, today.day) < (birth.month, birth.day))


@dataclass
class Facts:
    orders: int
    spend: Decimal
    first: dt.datetime | None
    last: dt.datetime | None
    segment: str


def facts(customer: Customer, snap: Snapshot) -> Facts:
    done = customer.completed
    orders = len(done)
    spend = sum((s.total for s in done), Decimal("0"))
    first = min((s.occurred_at for s in done), default=None)
    last = max((s.occurred_at for s in done), default=None)
    if last is None:
        recency = 0
    elif last >= snap.now - dt.timedelta(days=30):
        recency = 3
    elif last >= snap.now - dt.timedelta(days=90):
        recency = 2
    else:
        recency = 1
    frequency = 3 if orders >= 10 else 2 if orders >= 3 else 1
    if recency == 0:
        segment = ""
    elif recency == 3 and frequency == 3 and spend >= 500:
        segment = "champion"
    elif frequency == 3:
        segment = "loyal"
    elif recency == 3 and orders == 1:
        segment = "new"
    elif recency == 3:
        segment = "promising"
    elif recency == 1 and frequency >= 2:
        segment = "at_risk"
    elif recency == 1:
        segment = "lost"
    else:
        segment = "needs_attention"
    return Facts(orders, spend, first, last, segment)


def trait_value(key: str, customer: Customer, snap: Snapshot):
    p = customer.persona
    if key.startswith(CUSTOM):
        return _custom(p.custom_traits or {}, key[len(CUSTOM):])
    simple = {
        "has_email": lambda: p.email != "",
        "has_phone": lambda: p.phone != "",
        "sms_opt_in": lambda: p.sms_opt_in,
        "email_opt_in": lambda: p.email_opt_in,
        "is_member": lambda: p.is_member,
        "enrolled_at": lambda: p.enrolled_at,
        "birthday_month": lambda: p.birth_date.month if p.birth_date else None,
        "age": lambda: _age(p.birth_date, snap.today),
        "market": lambda: _text_or_none(p.market),
        "sourced_from": lambda: p.sourced_from.name if p.sourced_from else None,
        "first_name": lambda: _text_or_none(p.first_name),
        "email": lambda: _text_or_none(p.email),
        "created_at": lambda: p.created_at,
        "favourite_store": lambda: p.favourite_store_id,
        "points_balance": lambda: p.points_balance,
        "lifetime_points": lambda: p.lifetime_points,
        "tier": lambda: _text_or_none(p.tier),
        "used_loyalty_discount": lambda: p.pk in snap.redeemed,
    }
    if key in simple:
        return simple[key]()
    f = facts(customer, snap)
    if key in ("lifetime_spend", "cltv"):
        return f.spend
    if key == "order_count":
        return f.orders
    if key == "average_order_value":
        return (f.spend / f.orders).quantize(Decimal("0.01"), ROUND_HALF_UP) if f.orders else None
    if key == "first_purchase_at":
        return f.first
    if key == "last_purchase_at":
        return f.last
    if key == "days_since_last_purchase":
        return (snap.today - f.last.astimezone(snap.zone).date()).days if f.last else None
    if key == "segment":
        return f.segment or None
    raise KeyError(key)


# --- comparisons ------------------------------------------------------------------------------

TEXT_TRAITS = {"first_name", "email"}
CHOICE_TRAITS = {"market", "sourced_from", "tier", "segment"}
NUMBER_TRAITS = {"age", "lifetime_spend", "order_count", "average_order_value", "points_balance",
                 "lifetime_points", "days_since_last_purchase", "cltv"}
DATE_TRAITS = {"enrolled_at", "created_at", "first_purchase_at", "last_purchase_at"}
BOOL_TRAITS = {"has_email", "has_phone", "sms_opt_in", "email_opt_in", "is_member", "used_loyalty_discount"}


def _local_midnight(day: dt.date, snap: Snapshot) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, tzinfo=snap.zone)


def compare_text(actual: str | None, op: str, value) -> bool:
    if op == "is_set":
        return actual is not None
    if op == "is_not_set":
        return actual is None
    if op == "not_equals":
        return actual is None or actual.lower() != value.strip().lower()
    if actual is None:
        return False
    low = actual.lower()
    if op == "equals":
        return low == value.strip().lower()
    if op == "contains":
        return value.strip().lower() in low
    if op == "starts_with":
        return low.startswith(value.strip().lower())
    if op == "in":
        return low in {v.strip().lower() for v in value}
    raise ValueError(op)


def compare_number(actual, op: str, value) -> bool:
    if op == "is_set":
        return actual is not None
    if op == "is_not_set":
        return actual is None
    if op == "not_equals":
        return actual is None or Decimal(actual) != Decimal(str(value).strip())
    if actual is None:
        return False
    actual = Decimal(actual)
    if op == "between":
        return Decimal(str(value[0]).strip()) <= actual <= Decimal(str(value[1]).strip())
    given = Decimal(str(value).strip())
    return {"equals": actual == given, "gt": actual > given, "lt": actual < given}[op]


def compare_date(actual: dt.datetime | None, op: str, value, snap: Snapshot) -> bool:
    if op == "is_set":
        return actual is not None
    if op == "is_not_set":
        return actual is None
    if actual is None:
        return False
    if op == "within_days":
        return actual >= snap.now - dt.timedelta(days=int(value))
    if op == "this_month":
        first = snap.today.replace(day=1)
        following = dt.date(first.year + first.month // 12, first.month % 12 + 1, 1)
        return _local_midnight(first, snap) <= actual < _local_midnight(following, snap)
    if op == "before":
        return actual < _local_midnight(dt.date.fromisoformat(value), snap)
    if op == "after":
        return actual >= _local_midnight(dt.date.fromisoformat(value) + dt.timedelta(days=1), snap)
    if op == "between":
        low = _local_midnight(dt.date.fromisoformat(value[0]), snap)
        high = _local_midnight(dt.date.fromisoformat(value[1]) + dt.timedelta(days=1), snap)
        return low <= actual < high
    raise ValueError(op)


def compare_store(actual: int | None, op: str, value) -> bool:
    if op == "is_set":
        return actual is not None
    if op == "is_not_set":
        return actual is None
    chosen = {int(v) for v in value}
    return (actual in chosen) if op == "in" else (actual not in chosen)


def compare_month(actual: int | None, op: str, value, snap: Snapshot) -> bool:
    if actual is None:
        return False
    if op == "this_month":
        return actual == snap.today.month
    if op == "in":
        return actual in {int(v) for v in value}
    return actual == int(value)


def condition_matches(node: dict, customer: Customer, snap: Snapshot) -> bool:
    key, op, value = node["trait"], node["operator"], node.get("value")
    if key == "audience":
        inside = customer.persona.pk in snap.members.get(int(value), set())
        return inside if op == "member_of" else not inside
    if key == "stores_purchased_at":
        stores = {s.store_id for s in customer.completed}
        if op == "is_set":
            return any(s is not None for s in stores)
        if op == "is_not_set":
            return not any(s is not None for s in stores)
        hit = bool(stores & {int(v) for v in value})
        return hit if op == "in" else not hit
    if key in ("bought_category", "bought_brand", "bought_product"):
        attr = key.removeprefix("bought_")
        sales = customer.completed
        if op == "within_days":
            sales = [s for s in sales if s.occurred_at >= snap.now - dt.timedelta(days=int(value["days"]))]
        name = value["name"].strip().lower()
        return any(getattr(line, attr).lower() == name for s in sales for line in s.lines)
    if key == "purchase":
        return purchase_matches(value, customer, snap)
    actual = trait_value(key, customer, snap)
    if key in BOOL_TRAITS:
        return bool(actual) == value
    if key in TEXT_TRAITS or key in CHOICE_TRAITS or key.startswith(CUSTOM):
        return compare_text(actual, op, value)
    if key in NUMBER_TRAITS:
        return compare_number(actual, op, value)
    if key in DATE_TRAITS:
        return compare_date(actual, op, value, snap)
    if key == "birthday_month":
        return compare_month(actual, op, value, snap)
    if key == "favourite_store":
        return compare_store(actual, op, value)
    raise KeyError(key)


def purchase_matches(value: dict, customer: Customer, snap: Snapshot) -> bool:
    sales = customer.completed
    days = value.get("within_days")
    if days not in (None, ""):
        sales = [s for s in sales if s.occurred_at >= snap.now - dt.timedelta(days=int(days))]
    for item in value.get("filters", []):
        prop, op, wanted = item["property"], item["operator"], item.get("value")
        if prop == "fulfillment":
            sales = [s for s in sales if compare_text(s.fulfillment, op, wanted)]
        elif prop == "store":
            sales = [s for s in sales if compare_store(s.store_id, op, wanted)]
        elif prop == "amount":
            sales = [s for s in sales if compare_number(s.total, op, wanted)]
        else:
            sales = [s for s in sales
                     if any(compare_text(getattr(line, prop), op, wanted) for line in s.lines)]
    return len(sales) >= int(value.get("at_least", 1))
