"""The compiled SQL selects exactly the customers a plain Python reading of the same rule
tree selects (tests/audiences/evaluator.py), over random small datasets and random trees.

Each example draws a clock (a fixed `now` and the company's time zone, chosen so the
local date differs from the UTC date), a handful of customers with random contact
details, opt-ins, membership, birthdays, markets, tiers, custom traits (CovaPricingGroup
among them), points, favourite stores and sales (completed / voided / refunded, at a store
or none, in store / pickup / delivery, lines with categories, brands and products, times
spread over 200 days and pinned to local midnights and to `now - N days` exactly), a few
redemptions and two audiences with stored members; then many trees over every trait and
operator, with values taken from the dataset, nested three groups deep, with NOT. The
dataset is rolled back after each example.
"""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo
from decimal import Decimal

from django.db import transaction
from django.db.models import F
from hypothesis import HealthCheck, event, given, note, settings
from hypothesis import strategies as st

from audiences.compiler import empty_rules, rules_clean
from audiences.models import Audience, AudienceMember, PersonaFacts
from audiences.services import audience_member_ids, persona_facts_refresh
from audiences.traits import OPERATORS, PURCHASE_PROPERTIES, SEGMENTS, TRAITS
from loyalty.models import LineItem, Offer, Persona, Redemption, Source, Transaction
from tests.factories import CompanyFactory, RetailStoreFactory

from .evaluator import evaluate, snapshot, trait_value

EXAMPLES = 150
TREES_PER_EXAMPLE = 30

# (now, time zone): local "today" differs from the UTC date in each; month and year ends,
# a DST change within the last 200 days, a half-hour zone.
CLOCKS = [
    (dt.datetime(2026, 3, 15, 5, 30, tzinfo=dt.UTC), "America/Denver"),  # Sat 14 Mar 23:30 MDT
    (dt.datetime(2026, 1, 1, 6, 59, 59, tzinfo=dt.UTC), "America/Denver"),  # 31 Dec 23:59:59 MST
    (dt.datetime(2026, 6, 30, 13, 0, tzinfo=dt.UTC), "Pacific/Auckland"),  # 1 Jul 01:00 NZST
    (dt.datetime(2025, 11, 2, 3, 0, tzinfo=dt.UTC), "America/St_Johns"),  # 1 Nov 23:30 NDT
]
LOCAL_TIMES = [dt.time(0, 0), dt.time(0, 0), dt.time(0, 0), dt.time(0, 0, 0, 1), dt.time(23, 59, 59, 999999),
               dt.time(12, 0), dt.time(2, 30), dt.time(21, 15)]
EXACT_DAYS = [0, 1, 7, 30, 90, 180]
WINDOWS = [0, 1, 7, 30, 90, 180, 200, 365]

FIRST_NAMES = ["", "Dana", "dana", "DANA", "Élodie", "Zoë", "Al", "Alex", "Mia"]
EMAILS = ["", "dana@example.com", "Alex.Smith@Example.com", "mia@shop.example"]
MARKETS = ["", "CO", "co", "OR", "WA"]
TIERS = ["", "Gold", "gold", "Silver"]
PRICING_GROUPS = ["Standard", "Medical", "medical", "Veteran", "Senior", ""]
REFERRALS = ["Friend", "", 5, True]
CATEGORIES = ["Flower", "flower", "Edibles", "Vapes", "Pre-Rolls", ""]
BRANDS = ["Wana", "Kiva", "Select", "STIIIZY", ""]
PRODUCTS = ["Blue Dream 3.5g", "blue dream 3.5G", "Sour Gummies", "OG Kush Pod"]
TOTALS = ["0.00", "0.01", "0.03", "9.99", "25.00", "49.50", "50.00", "60.00", "120.00", "333.33", "500.00"]
SOURCE_NAMES = ["Cova", "Waiting room"]
CUSTOM_KEYS = ["custom:CovaPricingGroup", "custom:Referral", "custom:Nickname"]


# --- datasets -----------------------------------------------------------------------------------

@st.composite
def moments(draw, now: dt.datetime, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    kind = draw(st.sampled_from(["local", "local", "exact", "random"]))
    if kind == "local":  # on or around a local midnight
        day = now.astimezone(zone).date() - dt.timedelta(days=draw(st.integers(0, 200)))
        return dt.datetime.combine(day, draw(st.sampled_from(LOCAL_TIMES)), zone)
    if kind == "exact":  # on a within_days boundary, or a microsecond either side
        return (now - dt.timedelta(days=draw(st.sampled_from(EXACT_DAYS)))
                + dt.timedelta(microseconds=draw(st.sampled_from([-1, 0, 1]))))
    return now - dt.timedelta(seconds=draw(st.integers(0, 200 * 86400)))


def birth_dates(now: dt.datetime, zone: zoneinfo.ZoneInfo):
    local, utc = now.astimezone(zone).date(), now.astimezone(dt.UTC).date()
    special = [dt.date(2000, 2, 29), dt.date(1990, local.month, local.day), dt.date(1990, utc.month, utc.day),
               dt.date(2008, local.month, local.day), (local + dt.timedelta(days=1)).replace(year=1985)]
    return st.one_of(st.none(), st.sampled_from(special), st.sampled_from(special),
                     st.dates(min_value=dt.date(1940, 1, 1), max_value=dt.date(2008, 12, 31)))


def lines():
    return st.fixed_dictionaries({"category": st.sampled_from(CATEGORIES), "brand": st.sampled_from(BRANDS),
                                  "product": st.sampled_from(PRODUCTS)})


def sales(now, zone):
    return st.fixed_dictionaries({
        "status": st.sampled_from(["completed", "completed", "completed", "voided", "refunded"]),
        "store": st.one_of(st.none(), st.integers(0, 2)),
        "fulfillment": st.sampled_from(["in_store", "in_store", "pickup", "delivery"]),
        "total": st.one_of(st.sampled_from(TOTALS),
                           st.decimals(min_value=0, max_value=600, places=2).map(str)),
        "occurred_at": moments(now, zone),
        "lines": st.lists(lines(), max_size=3),
    })


@st.composite
def regulars(draw, now, zone):
    """Ten completed sales of 50 (around the champion line of 500) in the last 29 days,
    the last one on the 30-day recency line or just inside it."""
    total = draw(st.sampled_from(["50.00", "49.99", "50.01"]))
    last = now - dt.timedelta(days=30) + dt.timedelta(microseconds=draw(st.sampled_from([0, 1])))
    return [{"status": "completed", "store": draw(st.one_of(st.none(), st.integers(0, 2))),
             "fulfillment": draw(st.sampled_from(["in_store", "delivery"])), "total": total,
             "occurred_at": last if n == 0 else now - dt.timedelta(days=draw(st.integers(0, 29))),
             "lines": draw(st.lists(lines(), max_size=2))} for n in range(10)]


@st.composite
def personas(draw, now, zone):
    member = draw(st.booleans())
    enrolled = draw(moments(now, zone)) if member else draw(st.one_of(st.none(), moments(now, zone)))
    count = draw(st.sampled_from([0, 0, 1, 2, 2, 3, 4, 10, 11, "regular"]))
    custom = draw(st.fixed_dictionaries({}, optional={"CovaPricingGroup": st.sampled_from(PRICING_GROUPS),
                                                      "Referral": st.sampled_from(REFERRALS)}))
    balance = draw(st.sampled_from([0, 50, 100, 250, 1000]) | st.integers(0, 2000))
    return {
        "first_name": draw(st.sampled_from(FIRST_NAMES)), "email": draw(st.sampled_from(EMAILS)),
        "phone": draw(st.sampled_from(["", "+13035550150"])), "birth_date": draw(birth_dates(now, zone)),
        "market": draw(st.sampled_from(MARKETS)), "is_member": member, "enrolled_at": enrolled,
        "sms_opt_in": draw(st.booleans()), "email_opt_in": draw(st.booleans()),
        "favourite_store": draw(st.one_of(st.none(), st.integers(0, 2))),
        "source": draw(st.one_of(st.none(), st.integers(0, 1))), "custom_traits": custom,
        "points_balance": balance, "lifetime_points": balance + draw(st.sampled_from([0, 100, 600])),
        "tier": draw(st.sampled_from(TIERS)), "created_at": draw(moments(now, zone)),
        "sales": (draw(regulars(now, zone)) if count == "regular"
                  else [draw(sales(now, zone)) for _ in range(count)]),
        "redemptions": draw(st.lists(st.sampled_from(["redeemed", "reinstated", "expired", "locked"]),
                                     max_size=2)),
    }


@st.composite
def datasets(draw, now, zone):
    people = draw(st.lists(personas(now, zone), min_size=2, max_size=8))
    return {
        "personas": people,
        "anonymous_sales": draw(st.lists(sales(now, zone), max_size=2)),
        "audiences": [sorted(draw(st.sets(st.integers(0, len(people) - 1), max_size=len(people))))
                      if people else [] for _ in range(2)],
    }


def build(spec: dict, tz: str, now: dt.datetime):
    """The dataset in the database: the company, its store ids and audience ids."""
    company = CompanyFactory(timezone=tz)
    stores = [RetailStoreFactory(company=company, name=f"S{i}") for i in range(3)]
    sources = [Source.objects.create(company=company, kind=Source.Kind.COVA, name=name)
               for name in SOURCE_NAMES]
    offer = Offer.objects.create(company=company, name="5 off", kind="flat", amount=5, points_cost=10)
    people = Persona.objects.bulk_create([Persona(
        company=company, first_name=p["first_name"], last_name="Lee", phone=p["phone"], email=p["email"],
        birth_date=p["birth_date"], market=p["market"], is_member=p["is_member"],
        enrolled_at=p["enrolled_at"], sms_opt_in=p["sms_opt_in"], email_opt_in=p["email_opt_in"],
        favourite_store=stores[p["favourite_store"]] if p["favourite_store"] is not None else None,
        sourced_from=sources[p["source"]] if p["source"] is not None else None,
        custom_traits=p["custom_traits"],
        points_balance=p["points_balance"], lifetime_points=p["lifetime_points"], tier=p["tier"],
        created_at=p["created_at"]) for p in spec["personas"]])
    sale_specs = [(person, s) for person, p in zip(people, spec["personas"], strict=True) for s in p["sales"]]
    sale_specs += [(None, s) for s in spec["anonymous_sales"]]
    txns = Transaction.objects.bulk_create([Transaction(
        company=company, store=stores[s["store"]] if s["store"] is not None else None, persona=person,
        source=sources[0], external_id=f"T{i}", occurred_at=s["occurred_at"], fulfillment=s["fulfillment"],
        channel="in_store" if s["fulfillment"] == "in_store" else "online", subtotal=Decimal(s["total"]),
        total=Decimal(s["total"]), status=s["status"]) for i, (person, s) in enumerate(sale_specs)])
    LineItem.objects.bulk_create([
        LineItem(transaction=txn, line_no=n + 1, product=line["product"], brand=line["brand"],
                 category=line["category"], quantity=1, unit_price=1, total=1)
        for txn, (_, s) in zip(txns, sale_specs, strict=True) for n, line in enumerate(s["lines"])])
    Redemption.objects.bulk_create([
        Redemption(company=company, persona=person, offer=offer, cart_id=f"C{person.pk}-{n}", state=state,
                   points=10, discount_amount=5,
                   locked_until=now + dt.timedelta(minutes=5) if state == "locked" else None)
        for person, p in zip(people, spec["personas"], strict=True)
        for n, state in enumerate(p["redemptions"])])
    audiences = [Audience.objects.create(company=company, name=f"A{i}", rules=empty_rules())
                 for i in range(2)]
    AudienceMember.objects.bulk_create([
        AudienceMember(audience=audience, persona=people[i], added_at=now)
        for audience, chosen in zip(audiences, spec["audiences"], strict=True) for i in chosen])
    # Another company's customer, a buyer of everything, must never show up.
    other = CompanyFactory(timezone=tz)
    stranger = Persona.objects.create(company=other, first_name="Dana", email="dana@example.com", market="CO")
    txn = Transaction.objects.create(company=other, store=RetailStoreFactory(company=other), persona=stranger,
                                     source=Source.objects.create(company=other, kind="cova", name="Cova"),
                                     external_id="X", occurred_at=now - dt.timedelta(days=1),
                                     fulfillment="delivery", subtotal=100, total=100)
    LineItem.objects.create(transaction=txn, line_no=1, product="Sour Gummies", brand="Wana",
                            category="Flower", quantity=1, unit_price=1, total=1)
    return company, [s.pk for s in stores], [a.pk for a in audiences]


# --- trees ----------------------------------------------------------------------------------------

def texts(values):
    """Values taken from the data, in other cases, cut down (for contains / starts with),
    with spaces around; never blank."""
    base = sorted({v for v in values if isinstance(v, str) and v.strip()}) or ["x"]

    @st.composite
    def one(draw):
        value = draw(st.sampled_from(base))
        how = draw(st.sampled_from(["same", "upper", "lower", "swap", "cut", "cut", "spaces", "other"]))
        if how == "upper":
            value = value.upper()
        elif how == "lower":
            value = value.lower()
        elif how == "swap":
            value = value.swapcase()
        elif how == "cut":
            start = draw(st.integers(0, len(value) - 1))
            value = value[start:draw(st.integers(start + 1, len(value)))]
        elif how == "spaces":
            value = f"  {value} "
        elif how == "other":
            value = draw(st.sampled_from(["zz", "Topicals", "e", "D"]))
        return value if value.strip() else "x"

    return one()


def numbers(values):
    """Values in the data (exactly, a little over, one under), and a few others."""
    base = sorted({Decimal(v) for v in values if v is not None} | {Decimal(0), Decimal(1)})
    near = st.tuples(st.sampled_from(base), st.sampled_from(["0", "0.005", "-1", "1"]))
    return st.one_of(near.map(lambda t: str(t[0] + Decimal(t[1]))), near.map(lambda t: int(t[0])),
                     st.integers(-5, 700), st.sampled_from(["12.5", "0.01", "33.33"]))


def pairs(strategy, key=lambda v: v):
    return st.tuples(strategy, strategy).map(lambda t: sorted(t, key=key))


class Vocabulary:
    """What values mean something in this dataset."""

    def __init__(self, snap, spec, stores, audiences):
        self.snap = snap
        self.stores = [*stores, 999_999_999]
        self.audiences = [*audiences, 999_999_999]
        customers = snap.customers
        people = [c.persona for c in customers]
        self.text = {
            "first_name": texts([p.first_name for p in people] + FIRST_NAMES),
            "email": texts([p.email for p in people] + EMAILS),
            "market": texts([p.market for p in people] + MARKETS),
            "tier": texts([p.tier for p in people] + TIERS),
            "sourced_from": texts(SOURCE_NAMES),
            # the segments customers are in, more often than the others
            "segment": st.one_of(texts(SEGMENTS), texts([trait_value("segment", c, snap) for c in customers
                                                         ])),
            "custom:CovaPricingGroup": texts(PRICING_GROUPS),
            "custom:Referral": texts(["Friend", "5", "true"]),
            "custom:Nickname": texts(["Doc"]),
        }
        sold = [line for p in spec["personas"] for s in p["sales"] for line in s["lines"]]
        self.lines = {attr: texts([line[attr] for line in sold] + [{"category": "Flower", "brand": "Wana",
                                                                     "product": "Sour Gummies"}[attr]])
                      for attr in ("category", "brand", "product")}
        self.fulfillment = texts(["in_store", "pickup", "delivery"])
        self.numbers = {key: numbers([trait_value(key, c, snap) for c in customers])
                        for key, trait in TRAITS.items() if trait.type == "number"}
        self.amounts = numbers([s["total"] for p in spec["personas"] for s in p["sales"]])
        days = {snap.today + dt.timedelta(days=k) for k in (-200, -90, -30, -1, 0, 1)}
        edges = set()  # around times on a local midnight: where before / after / between turn
        for c in customers:
            stamps = [c.persona.created_at, c.persona.enrolled_at] + [s.occurred_at for s in c.sales]
            for stamp in filter(None, stamps):
                local = stamp.astimezone(snap.zone)
                days |= {local.date() + dt.timedelta(days=k) for k in (-1, 0)}
                if local.time() == dt.time(0):
                    edges |= {local.date() + dt.timedelta(days=k) for k in (-1, 0)}
        dates = st.sampled_from(sorted(days))
        if edges:
            dates = st.one_of(dates, st.sampled_from(sorted(edges)))
        self.dates = dates.map(dt.date.isoformat)
        self.windows = st.one_of(st.sampled_from(WINDOWS), st.integers(0, 400))


def value_for(kind: str, op: str, key: str, vocab: Vocabulary):
    if op in ("is_set", "is_not_set", "this_month"):
        return st.none()
    if kind == "bool":
        return st.booleans()
    if kind in ("text", "choice"):
        text = vocab.text[key]
        return st.lists(text, min_size=1, max_size=3) if op == "in" else text
    if kind == "number":
        number = vocab.numbers[key]
        return pairs(number, key=Decimal) if op == "between" else number
    if kind == "date":
        if op == "within_days":
            return vocab.windows
        return pairs(vocab.dates) if op == "between" else vocab.dates
    if kind == "month":
        month = st.one_of(st.integers(1, 12), st.integers(1, 12).map(str))
        return st.lists(month, min_size=1, max_size=3) if op == "in" else month
    if kind == "store":
        return st.lists(st.sampled_from(vocab.stores), min_size=1, max_size=3, unique=True)
    if kind == "audience":
        return st.sampled_from(vocab.audiences)
    raise ValueError(kind)


@st.composite
def history_values(draw, key, op, vocab):
    value = {"name": draw(vocab.lines[key.removeprefix("bought_")])}
    if op == "within_days":
        value["days"] = draw(st.one_of(st.sampled_from(EXACT_DAYS[1:]), st.integers(1, 400)))
    return value


@st.composite
def purchase_values(draw, vocab):
    filters = []
    for prop in draw(st.lists(st.sampled_from(list(PURCHASE_PROPERTIES)), max_size=3)):
        _, kind, _ = PURCHASE_PROPERTIES[prop]
        op = draw(st.sampled_from([o for o in OPERATORS[kind] if o not in ("is_set", "is_not_set")]))
        if prop == "fulfillment":
            text = vocab.fulfillment
            value = draw(st.lists(text, min_size=1, max_size=3) if op == "in" else text)
        elif prop in ("category", "brand", "product"):
            text = vocab.lines[prop]
            value = draw(st.lists(text, min_size=1, max_size=3) if op == "in" else text)
        elif prop == "amount":
            value = draw(pairs(vocab.amounts, key=Decimal) if op == "between" else vocab.amounts)
        else:
            value = draw(value_for("store", op, prop, vocab))
        filters.append({"property": prop, "operator": op, "value": value})
    return {"filters": filters,
            "within_days": draw(st.one_of(st.none(), st.sampled_from(EXACT_DAYS[1:]), st.integers(1, 300))),
            "at_least": draw(st.sampled_from([1, 1, 2, 3, 10]))}


@st.composite
def conditions(draw, vocab):
    key = draw(st.sampled_from([*TRAITS, *CUSTOM_KEYS]))
    kind = "text" if key.startswith("custom:") else TRAITS[key].type
    op = draw(st.sampled_from(OPERATORS[kind]))
    if kind == "history":
        value = draw(history_values(key, op, vocab))
    elif kind == "event":
        value = draw(purchase_values(vocab))
    else:
        value = draw(value_for(kind, op, key, vocab))
    return {"type": "condition", "trait": key, "operator": op, "value": value, "negate": draw(st.booleans())}


def groups(vocab, depth=0):
    child = conditions(vocab) if depth >= 3 else st.one_of(conditions(vocab), conditions(vocab),
                                                           st.deferred(lambda: groups(vocab, depth + 1)))
    return st.fixed_dictionaries({"type": st.just("group"), "match": st.sampled_from(["all", "any"]),
                                  "negate": st.booleans(), "children": st.lists(child, max_size=4)})


def trees(vocab):
    """Half are one or two conditions (each trait on its own, where a wrong answer shows),
    half nested groups."""
    flat = st.fixed_dictionaries({"type": st.just("group"), "match": st.sampled_from(["all", "any"]),
                                  "negate": st.just(False),
                                  "children": st.lists(conditions(vocab), min_size=1, max_size=2)})
    return st.one_of(flat, groups(vocab))


# --- the test -------------------------------------------------------------------------------------

def _tree_key(tree: dict) -> str:
    return json.dumps(tree, sort_keys=True)


@settings(max_examples=EXAMPLES, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
@given(clock=st.sampled_from(CLOCKS), data=st.data())
def test_compiled_sql_selects_what_the_evaluator_selects(db, clock, data):
    now, tz = clock
    spec = data.draw(datasets(now, zoneinfo.ZoneInfo(tz)), label="dataset")
    with transaction.atomic():
        company, stores, audiences = build(spec, tz, now)
        persona_facts_refresh(company=company, now=now)
        # Customers added since the last refresh have no facts row yet: they read as having
        # bought nothing. Every other customer without a purchase or a discount stands in.
        PersonaFacts.objects.filter(company=company, order_count=0, used_loyalty_discount=False).annotate(
            odd=F("persona_id") % 2).filter(odd=data.draw(st.sampled_from([0, 1]), label="dropped")).delete()
        snap = snapshot(company, now)
        vocab = Vocabulary(snap, spec, stores, audiences)
        drawn = data.draw(st.lists(trees(vocab), min_size=TREES_PER_EXAMPLE // 2, max_size=TREES_PER_EXAMPLE,
                                   unique_by=_tree_key), label="trees")
        for i, tree in enumerate(drawn):
            rules_clean(tree)  # every generated tree is a valid one
            expected = evaluate(tree, snap)
            got = audience_member_ids(company=company, rules=tree, now=now)
            everyone = len(expected) == len(snap.customers)
            event("selects " + ("nobody" if not expected else "everyone" if everyone else "some"))
            if got != expected:
                index = {c.persona.pk: n for n, c in enumerate(snap.customers)}
                only_sql = sorted(set(got) - set(expected))
                only_python = sorted(set(expected) - set(got))
                note(f"stores={stores} audiences={audiences}; SQL only: {[index[i] for i in only_sql]}, "
                     f"Python only: {[index[i] for i in only_python]} (indexes into dataset personas)")
            assert got == expected, f"tree {i} {json.dumps(tree)}: SQL {got} != Python {expected}"
        transaction.set_rollback(True)
