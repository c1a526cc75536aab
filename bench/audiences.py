"""Audience counts at a million customers: the compiled rule tree against hand-written SQL.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/audiences.py [--personas N]

Seeds, set-wise in SQL (generate_series), a throw-away company with N customers (default
1,000,000; contact details, opt-ins, tiers, a CovaPricingGroup custom trait on a quarter),
5·N sales over two years, in time order (10% without a customer, 2% voided, in store / pickup / delivery
70/20/10, five stores), one or two line items per sale (category, brand, product) and a
few redeemed loyalty discounts. Then it times the purchase-facts refresh, a count of a
three-level rule tree through the compiler (`audience_count`) against a hand-written
query for the same rule in the same run (best of 3 each; the two counts must agree), and
a full materialisation (`audience_refresh`) of an audience with that tree. The company is
removed at the end.

Last lines:  facts_s=…
             personas=N count_ms=… handwritten_ms=… ratio=… materialise_s=…
(ratio = count_ms / handwritten_ms). Targets: count < 1 s, ratio <= 1.5, materialise < 10 s.
--explain prints EXPLAIN ANALYZE of both queries; --keep leaves the seeded company in place
and --company ID measures it again without seeding (it is removed unless --keep is given).
"""

import argparse
import datetime as dt
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection, transaction  # noqa: E402
from django.utils import timezone  # noqa: E402

from audiences.compiler import rules_compile  # noqa: E402
from audiences.models import Audience  # noqa: E402
from audiences.services import (  # noqa: E402
    _roomy,
    audience_count,
    audience_refresh,
    audience_save,
    persona_facts_refresh,
)
from bench.common import bench_company  # noqa: E402
from loyalty.models import Persona  # noqa: E402
from stores.models import Company  # noqa: E402

PERSONAS_SQL = """
INSERT INTO loyalty_persona (company_id, first_name, last_name, phone, email, birth_date, market,
    is_member, enrolled_at, sms_opt_in, email_opt_in, favourite_store_id, sourced_from_id,
    custom_traits, points_balance, lifetime_points, tier, last_purchase_at, created_at, updated_at)
SELECT %(company)s,
       (ARRAY['Olivia','Liam','Emma','Noah','Ava','Mia','Lucas','Zoe','Ethan','Maya'])[1 + i %% 10],
       (ARRAY['Smith','Garcia','Nguyen','Patel','Brown','Lee','Lopez','Kim','Young','Hall'])
           [1 + (i / 10) %% 10],
       '+1303' || lpad(i::text, 7, '0'),
       CASE WHEN i %% 7 <> 0 THEN 'person' || i || '@example.com' ELSE '' END,
       date '1950-01-01' + ((i::bigint * 7919) %% 20000)::int,
       (ARRAY['CO','OR','WA'])[1 + i %% 3],
       i %% 3 <> 0, CASE WHEN i %% 3 <> 0 THEN now() - (i %% 700) * interval '1 day' END,
       i %% 5 < 3, i %% 2 = 0, (%(stores)s::bigint[])[1 + i %% 5], %(source)s,
       CASE WHEN i %% 4 = 0 THEN jsonb_build_object('CovaPricingGroup',
                                (ARRAY['Standard','Medical','Veteran','Senior'])[1 + (i / 4) %% 4])
            ELSE '{}'::jsonb END,
       (i * 37) %% 5000, (i * 37) %% 5000 + 100, (ARRAY['','Silver','Gold'])[1 + i %% 3], NULL,
       now() - (i %% 730) * interval '1 day', now()
FROM generate_series(1, %(n)s) AS i
"""

# Customers buy with a skew (low ids more often), like real shops' regulars; sales arrive in
# time order (as POS sends and nightly imports bring them), a day's jitter aside.
SALES_SQL = """
INSERT INTO loyalty_transaction (company_id, store_id, persona_id, source_id, external_id, source_file,
    source_location, occurred_at, channel, fulfillment, employee, subtotal, discount_total, tax_total,
    total, status, created_at, updated_at)
SELECT %(company)s, (%(stores)s::bigint[])[1 + (i * 31) %% 5],
       CASE WHEN r.anonymous < 0.1 THEN NULL ELSE %(first)s + floor(%(n)s * power(r.who, 1.3))::bigint END,
       %(source)s, 'B' || i, '', '',
       now() - (%(t)s - i) * (interval '730 days' / %(t)s) - r.age * interval '1 day',
       CASE WHEN r.how < 0.7 THEN 'in_store' ELSE 'online' END,
       CASE WHEN r.how < 0.7 THEN 'in_store' WHEN r.how < 0.9 THEN 'pickup' ELSE 'delivery' END,
       '', r.amount, 0, 0, r.amount,
       CASE WHEN i %% 50 = 0 THEN 'voided' ELSE 'completed' END, now(), now()
FROM generate_series(1, %(t)s) AS i,
     LATERAL (SELECT random() AS anonymous, random() AS who, random() AS age, random() AS how,
                     round((5 + random() * 195)::numeric, 2) AS amount, i AS dummy) r
"""

LINES_SQL = """
INSERT INTO loyalty_lineitem (transaction_id, line_no, sku, product, brand, category, quantity, unit_price,
    discount, tax, tax_included, total)
SELECT t.id, n, 'SKU-' || k, (%(products)s::text[])[k], (%(brands)s::text[])[k], (%(categories)s::text[])[k],
       1, t.subtotal, 0, 0, false, t.subtotal
FROM loyalty_transaction t,
     LATERAL (SELECT n, 1 + ((t.id * 7 + n * 5) %% %(kinds)s)::int AS k
              FROM generate_series(1, CASE WHEN t.id %% 3 = 0 THEN 2 ELSE 1 END) AS n) x
WHERE t.company_id = %(company)s
"""

REDEMPTIONS_SQL = """
INSERT INTO loyalty_redemption (company_id, persona_id, offer_id, cart_id, state, points, discount_amount,
    created_at, updated_at)
SELECT %(company)s, p.id, %(offer)s, 'R' || p.id, 'redeemed', 100, 10, now(), now()
FROM loyalty_persona p WHERE p.company_id = %(company)s AND p.id %% 50 = 0
"""

CATALOG = [("Flower", "Green Dot Labs", "Blue Dream 3.5g"), ("Flower", "Malek's", "Wedding Cake 3.5g"),
           ("Flower", "Cookies", "Gary Payton 3.5g"), ("Pre-Rolls", "Lazercat", "Jack Herer 1g"),
           ("Vapes", "Select", "Elite Cartridge 1g"), ("Vapes", "Stiiizy", "OG Kush Pod 0.5g"),
           ("Edibles", "Wana", "Sour Gummies 100mg"), ("Edibles", "Kiva", "Camino Gummies 100mg"),
           ("Concentrates", "Soiku Bano", "Live Rosin 1g"), ("Topicals", "Papa & Barkley", "Releaf Balm"),
           ("Accessories", "Puffco", "Plus Vaporizer"), ("Accessories", "RAW", "Rolling Papers")]


def group(*children, match="all", negate=False):
    return {"type": "group", "match": match, "negate": negate, "children": list(children)}


def cond(trait, operator, value=None, negate=False):
    return {"type": "condition", "trait": trait, "operator": operator, "value": value, "negate": negate}


# Texting customers outside the Medical pricing group who bought Edibles in the last 30
# days, or have spent over 500 and are regulars (champion / loyal / at risk).
TREE = group(
    cond("sms_opt_in", "equals", True),
    cond("custom:CovaPricingGroup", "equals", "Medical", negate=True),
    group(
        cond("bought_category", "within_days", {"name": "Edibles", "days": 30}),
        group(cond("lifetime_spend", "gt", "500"), cond("segment", "in", ["champion", "loyal", "at_risk"])),
        match="any"),
)

# The fastest shape found by hand: the purchaser set and the regulars among the purchase
# facts, each LEFT JOINed (an "IN (subquery)" under OR keeps the scan of customers in one
# process; joining every customer's facts costs more than picking the regulars first).
HANDWRITTEN = """
SELECT count(*) FROM loyalty_persona p
LEFT JOIN (SELECT f.persona_id FROM audiences_personafacts f
           WHERE f.company_id = %(company)s AND f.lifetime_spend > 500
             AND f.segment IN ('champion', 'loyal', 'at_risk')) regulars
       ON regulars.persona_id = p.id
LEFT JOIN (SELECT DISTINCT t.persona_id FROM loyalty_transaction t
           JOIN loyalty_lineitem l ON l.transaction_id = t.id
           WHERE t.company_id = %(company)s AND t.status = 'completed' AND t.occurred_at >= %(cutoff)s
             AND t.persona_id IS NOT NULL AND lower(l.category) = 'edibles') edibles
       ON edibles.persona_id = p.id
WHERE p.company_id = %(company)s AND p.sms_opt_in
  AND lower(coalesce(p.custom_traits ->> 'CovaPricingGroup', '')) <> 'medical'
  AND (edibles.persona_id IS NOT NULL OR regulars.persona_id IS NOT NULL)
"""


def timed(fn):
    started = time.perf_counter()
    result = fn()
    return time.perf_counter() - started, result


def best_of(fn, repeat=3):
    runs = [timed(fn) for _ in range(repeat)]
    return min(r[0] for r in runs) * 1000, runs[0][1]


def execute(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.rowcount


def seed(company, stores, source, offer, n: int) -> None:
    started = time.perf_counter()
    execute(PERSONAS_SQL, {"company": company.pk, "stores": stores, "source": source, "n": n})
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), max(id), count(*) FROM loyalty_persona WHERE company_id = %s",
                       [company.pk])
        first, last, count = cursor.fetchone()
    assert last - first + 1 == count == n, "personas were not given consecutive ids"
    print(f"seeded {n:,} personas in {time.perf_counter() - started:.1f}s", flush=True)
    started = time.perf_counter()
    execute("SELECT setseed(0.42)")
    sales = execute(SALES_SQL, {"company": company.pk, "stores": stores, "source": source, "first": first,
                                "n": n - 1, "t": 5 * n})
    print(f"seeded {sales:,} sales in {time.perf_counter() - started:.1f}s", flush=True)
    started = time.perf_counter()
    lines = execute(LINES_SQL, {"company": company.pk, "kinds": len(CATALOG),
                                "categories": [c for c, _, _ in CATALOG],
                                "brands": [b for _, b, _ in CATALOG], "products": [p for _, _, p in CATALOG]})
    execute(REDEMPTIONS_SQL, {"company": company.pk, "offer": offer})
    print(f"seeded {lines:,} line items in {time.perf_counter() - started:.1f}s", flush=True)
    started = time.perf_counter()
    # What autovacuum does to a table after a bulk load, done now rather than whenever it
    # gets round to it: statistics, and the visibility map and hint bits that spare every
    # later read a trip to the commit log.
    for table in ("loyalty_persona", "loyalty_transaction", "loyalty_lineitem", "loyalty_redemption"):
        execute(f"VACUUM (ANALYZE) {table}")
    print(f"vacuumed and analyzed in {time.perf_counter() - started:.1f}s", flush=True)


def cleanup(company) -> None:
    started = time.perf_counter()
    c = [company.pk]
    with connection.cursor() as cursor:
        for statement in (
            "DELETE FROM audiences_audiencemember WHERE audience_id IN "
            "(SELECT id FROM audiences_audience WHERE company_id = %s)",
            "DELETE FROM audiences_audience WHERE company_id = %s",
            "DELETE FROM audiences_personafacts WHERE company_id = %s",
            "DELETE FROM loyalty_redemption WHERE company_id = %s",
            "DELETE FROM loyalty_offer WHERE company_id = %s",
            "DELETE FROM loyalty_lineitem WHERE transaction_id IN "
            "(SELECT id FROM loyalty_transaction WHERE company_id = %s)",
            "DELETE FROM loyalty_transaction WHERE company_id = %s",
            "DELETE FROM loyalty_persona WHERE company_id = %s",
            "DELETE FROM loyalty_source WHERE company_id = %s",
        ):
            cursor.execute(statement, c)
    company.delete()
    print(f"cleaned up in {time.perf_counter() - started:.1f}s", flush=True)


def seeded_company(personas: int):
    company, stores, source, offer = bench_company(stores=5)
    try:
        seed(company, stores, source, offer, personas)
    except BaseException:
        cleanup(company)
        raise
    return company


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--personas", type=int, default=1_000_000)
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE both queries")
    parser.add_argument("--keep", action="store_true",
                        help="leave the seeded company in place, for --company (and psql) next time")
    parser.add_argument("--company", type=int, help="measure a company an earlier --keep run seeded")
    args = parser.parse_args()

    if args.company:
        company = Company.objects.get(pk=args.company, slug__startswith="bench-")
        Audience.objects.filter(company=company).delete()
    else:
        company = seeded_company(args.personas)
    personas = Persona.objects.filter(company=company).count()
    try:
        now = timezone.now()
        facts_s, _ = timed(lambda: persona_facts_refresh(company=company, now=now))
        execute("VACUUM (ANALYZE) audiences_personafacts")
        print(f"purchase facts in {facts_s:.1f}s", flush=True)

        compiled = lambda: audience_count(company=company, rules=TREE, now=now)  # noqa: E731
        cutoff = now - dt.timedelta(days=30)

        def handwritten():
            # The same session settings the compiled count runs with, so only the SQL differs.
            with transaction.atomic(), connection.cursor() as cursor:
                _roomy(cursor)
                cursor.execute(HANDWRITTEN, {"company": company.pk, "cutoff": cutoff})
                return cursor.fetchone()[0]

        count_ms, count = best_of(compiled)
        hand_ms, hand_count = best_of(handwritten)
        assert count == hand_count, f"the compiled count {count} is not the hand-written {hand_count}"
        print(f"count {count:,}: compiled {count_ms:.0f} ms, hand-written {hand_ms:.0f} ms", flush=True)

        if args.explain:
            compiled_tree = rules_compile(TREE, company_id=company.pk, tz=company.timezone, now=now)
            sql, params = compiled_tree.select("count(*)")
            with transaction.atomic(), connection.cursor() as cursor:
                _roomy(cursor)  # the settings the counts run with
                for name, (query, qparams) in (("compiled", (sql, params)),
                                               ("hand-written", (HANDWRITTEN, {"company": company.pk,
                                                                               "cutoff": cutoff}))):
                    cursor.execute("EXPLAIN (ANALYZE, BUFFERS) " + query, qparams)
                    print(f"--- {name}\n" + "\n".join(row[0] for row in cursor.fetchall()), flush=True)

        audience = audience_save(company=company, name="Bench audience", rules=TREE)
        materialise_s, audience = timed(lambda: audience_refresh(audience=audience, now=now))
        assert audience.size == count, (audience.size, count)
        print(f"materialised {audience.size:,} members in {materialise_s:.1f}s", flush=True)
    finally:
        if args.keep:
            print(f"kept company {company.pk}: --company {company.pk}", flush=True)
        else:
            cleanup(company)
    print(f"facts_s={facts_s:.1f}")
    print(f"personas={personas} count_ms={count_ms:.0f} handwritten_ms={hand_ms:.0f} "
          f"ratio={count_ms / hand_ms:.2f} materialise_s={materialise_s:.1f}")


if __name__ == "__main__":
    main()
