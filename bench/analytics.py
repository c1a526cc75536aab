"""Sales analytics at a million sales: the whole Analytics page against the SQL it needs.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/analytics.py [--sales N]

Seeds, set-wise in SQL (generate_series), a throw-away company in America/Denver with 8
stores, 120,000 customers (two thirds loyalty members, many enrolled during the year) and
N sales (default 1,000,000) over the last 365 days: 1 to 5 lines each (about 3 on average,
300 products in 8 categories and 40 brands, popular ones sold far more), 15% with a 10%
discount, 15% tax, 12% without a customer, 2% voided, 1% returns, in store / pickup /
delivery 72/18/10, opening hours 9:00 to 22:00 local time; points earned on members' sales
and a few rewards redeemed on them.

Then it builds the daily rollup (timed), and for the 12-month view of the page with no
filter it times, best of 5 each in the same run:
  page_ms     the page's whole server-side work: the view through the Django test client
              (middleware, selectors, every KPI and chart, template, chart JSON);
  raw_sql_ms  the aggregate SQL statements that page needs, hand-written here and run
              straight on a cursor (the same rollup tables, no Django);
  tables_ms   for reference, the same numbers straight from the sales and line-item tables
              (what the page would cost without the rollup).
It checks that the page, the hand-written SQL and the straight-from-the-tables SQL agree
on every headline number, prints them, and removes the company (unless --keep).

Last line: transactions=… page_ms=… raw_sql_ms=… ratio=…   (ratio = page_ms / raw_sql_ms)
Targets: page < 500 ms, ratio <= 2.
"""

import argparse
import os
import sys
import time
import uuid
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.contrib.auth import get_user_model  # noqa: E402
from django.db import connection, transaction  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402
from django.utils import timezone  # noqa: E402

from analytics.forms import preset_period  # noqa: E402
from analytics.models import RollupState  # noqa: E402
from analytics.selectors import Filters, months_and_days, sales_report  # noqa: E402
from analytics.services import rollup_refresh  # noqa: E402
from bench.common import bench_company, median_ms  # noqa: E402
from loyalty.models import LineItem, Source, Transaction  # noqa: E402
from loyalty.services import LineItemData, TransactionData, transaction_record  # noqa: E402
from stores.models import Company, Role  # noqa: E402
from stores.services import membership_create  # noqa: E402

STORES = 8
PERSONAS = 120_000
CATEGORIES = ["Flower", "Pre-Rolls", "Vapes", "Edibles", "Concentrates", "Beverages", "Topicals",
              "Accessories"]
BRANDS = ["Green Dot Labs", "Malek's", "Cookies", "Lazercat", "Select", "Stiiizy", "Wana", "Kiva",
          "Soiku Bano", "Papa & Barkley", "Puffco", "RAW", "Wyld", "Dixie", "Cheeba Chews",
          "Host Farms", "Veritas", "Lightshade", "Verde Natural", "Bonanza", "1906", "Incredibles",
          "Binske", "Harmony", "Evolab", "Chronic Creations", "Bhang", "Craft 710", "Mile High Labs",
          "Good Chemistry", "Pure Vida", "Keef", "Sweet Grass", "Nomad", "Olio", "Folium",
          "Medicine Man", "Higher Grade", "Summit", "Ascend"]
PRODUCTS = 300

PERSONAS_SQL = """
INSERT INTO loyalty_persona (company_id, first_name, last_name, phone, email, market, is_member,
    enrolled_at, sms_opt_in, email_opt_in, sourced_from_id, custom_traits, points_balance,
    lifetime_points, tier, created_at, updated_at)
SELECT %(company)s, 'Guest' || i, 'Bench', '+1720' || lpad(i::text, 7, '0'), '', 'CO',
       i %% 3 <> 0,
       -- members joined over the last two years: a third of them during the year measured
       CASE WHEN i %% 3 <> 0 THEN now() - ((i * 7919) %% 730) * interval '1 day' END,
       false, false, %(source)s, '{}'::jsonb, 0, 0, '', now() - interval '800 days', now()
FROM generate_series(1, %(n)s) AS i
"""

# One row per sale, with its id drawn up front so the line items can point at it.
SALES_STAGE_SQL = """
CREATE TEMP TABLE bench_sales AS
SELECT nextval(pg_get_serial_sequence('loyalty_transaction', 'id')) AS id, i,
       (%(stores)s::bigint[])[1 + floor(power(random(), 1.4) * %(store_count)s)::int] AS store_id,
       CASE WHEN r.anonymous < 0.12 THEN NULL
            ELSE %(first)s + floor(%(personas)s * power(r.who, 1.6))::bigint END AS persona_id,
       ((current_date - floor(random() * 365)::int)
        + make_interval(hours => 9 + floor(power(random(), 0.8) * 13)::int,
                        mins => floor(random() * 60)::int, secs => floor(random() * 60)::int))
           AT TIME ZONE 'America/Denver' AS occurred_at,
       CASE WHEN r.how < 0.72 THEN 'in_store' WHEN r.how < 0.9 THEN 'pickup' ELSE 'delivery' END
           AS fulfillment,
       CASE WHEN r.state < 0.02 THEN 'voided' WHEN r.state < 0.03 THEN 'refunded' ELSE 'completed' END
           AS status,
       CASE WHEN r.lines < 0.15 THEN 1 WHEN r.lines < 0.40 THEN 2 WHEN r.lines < 0.65 THEN 3
            WHEN r.lines < 0.85 THEN 4 ELSE 5 END AS lines,
       CASE WHEN r.discounted < 0.15 THEN 0.10 ELSE 0 END AS discount_rate
FROM generate_series(1, %(n)s) AS i,
     LATERAL (SELECT random() AS anonymous, random() AS who, random() AS how, random() AS state,
                     random() AS lines, random() AS discounted, i AS correlated) r
"""

LINES_STAGE_SQL = """
CREATE TEMP TABLE bench_lines AS
SELECT s.id AS transaction_id, x.n AS line_no, x.k,
       (CASE WHEN x.q < 0.8 THEN 1 WHEN x.q < 0.95 THEN 2 ELSE 3 END)::numeric AS quantity,
       (5 + (x.k * 37) %% 60)::numeric AS unit_price, s.discount_rate
FROM bench_sales s,
     LATERAL (SELECT n, 1 + floor(%(products)s * power(random(), 2.2))::int AS k, random() AS q,
                     s.id AS correlated
              FROM generate_series(1, s.lines) AS n) x
"""

SALES_SQL = """
INSERT INTO loyalty_transaction (id, company_id, store_id, persona_id, source_id, external_id,
    source_file, source_location, occurred_at, channel, fulfillment, employee, subtotal,
    discount_total, tax_total, total, status, created_at, updated_at)
SELECT s.id, %(company)s, s.store_id, s.persona_id, %(source)s, 'B' || s.i, '', '', s.occurred_at,
       CASE WHEN s.fulfillment = 'in_store' THEN 'in_store' ELSE 'online' END, s.fulfillment, '',
       l.subtotal, l.discount, round((l.subtotal - l.discount) * 0.15, 2),
       l.subtotal - l.discount + round((l.subtotal - l.discount) * 0.15, 2), s.status, now(), now()
FROM bench_sales s
JOIN (SELECT transaction_id, sum(quantity * unit_price) AS subtotal,
             sum(round(quantity * unit_price * discount_rate, 2)) AS discount
      FROM bench_lines GROUP BY transaction_id) l ON l.transaction_id = s.id
"""

LINES_SQL = """
INSERT INTO loyalty_lineitem (transaction_id, line_no, sku, product, brand, category, quantity,
    unit_price, discount, tax, tax_included, total)
SELECT l.transaction_id, l.line_no, 'SKU-' || l.k,
       (%(brands)s::text[])[1 + l.k %% %(brand_count)s] || ' #' || l.k,
       (%(brands)s::text[])[1 + l.k %% %(brand_count)s],
       (%(categories)s::text[])[1 + l.k %% %(category_count)s],
       l.quantity, l.unit_price, round(l.quantity * l.unit_price * l.discount_rate, 2), 0, false,
       l.quantity * l.unit_price - round(l.quantity * l.unit_price * l.discount_rate, 2)
FROM bench_lines l
"""

# Members earn a point per dollar of pre-tax sales.
POINTS_SQL = """
INSERT INTO loyalty_pointsentry (company_id, persona_id, delta, kind, balance_after, transaction_id,
    reason, idempotency_key, created_at)
SELECT %(company)s, t.persona_id, floor(t.subtotal - t.discount_total)::int, 'earn',
       floor(t.subtotal - t.discount_total)::int, t.id, '', 'bench:' || t.id, t.occurred_at
FROM loyalty_transaction t JOIN loyalty_persona p ON p.id = t.persona_id
WHERE t.company_id = %(company)s AND t.status = 'completed' AND p.is_member
  AND p.enrolled_at <= t.occurred_at AND t.subtotal - t.discount_total >= 1
"""

REDEMPTIONS_SQL = """
INSERT INTO loyalty_redemption (company_id, persona_id, offer_id, cart_id, transaction_id, state,
    points, discount_amount, created_at, updated_at)
SELECT %(company)s, t.persona_id, %(offer)s, 'R' || t.id, t.id, 'redeemed', 100, 10, t.occurred_at,
       t.occurred_at
FROM loyalty_transaction t JOIN loyalty_persona p ON p.id = t.persona_id
WHERE t.company_id = %(company)s AND t.status = 'completed' AND p.is_member AND t.id %% 40 = 0
"""


def execute(sql, params=None):
    with connection.cursor() as cursor:
        cursor.execute(sql, params or {})
        return cursor.rowcount


def step(label, fn):
    started = time.perf_counter()
    result = fn()
    print(f"{label} in {time.perf_counter() - started:.1f}s", flush=True)
    return result


def seed(company, stores, source, offer, sales: int) -> None:
    execute(PERSONAS_SQL, {"company": company.pk, "source": source, "n": PERSONAS})
    with connection.cursor() as cursor:
        cursor.execute("SELECT min(id), count(*) FROM loyalty_persona WHERE company_id = %s", [company.pk])
        first, count = cursor.fetchone()
    execute("SELECT setseed(0.42)")
    execute("DROP TABLE IF EXISTS bench_sales, bench_lines")
    execute(SALES_STAGE_SQL, {"stores": stores, "store_count": len(stores), "first": first,
                              "personas": count - 1, "n": sales})
    execute(LINES_STAGE_SQL, {"products": PRODUCTS})
    inserted = step(f"seeded {sales:,} sales", lambda: execute(SALES_SQL, {"company": company.pk,
                                                                           "source": source}))
    assert inserted == sales, (inserted, sales)
    lines = execute(LINES_SQL, {"brands": BRANDS, "brand_count": len(BRANDS), "categories": CATEGORIES,
                                "category_count": len(CATEGORIES)})
    print(f"seeded {lines:,} line items", flush=True)
    execute(POINTS_SQL, {"company": company.pk})
    execute(REDEMPTIONS_SQL, {"company": company.pk, "offer": offer})
    execute("DROP TABLE bench_sales, bench_lines")
    for table in ("loyalty_persona", "loyalty_transaction", "loyalty_lineitem", "loyalty_pointsentry",
                  "loyalty_redemption"):
        execute(f"ANALYZE {table}")


def seeded_company(sales: int) -> Company:
    company, stores, source, offer = bench_company(stores=STORES)
    try:
        step("seeded", lambda: seed(company, stores, source, offer, sales))
    except BaseException:
        cleanup(company)
        raise
    return company


def cleanup(company) -> None:
    c = [company.pk]
    with connection.cursor() as cursor:
        for statement in (
            "DELETE FROM analytics_salesday WHERE company_id = %s",
            "DELETE FROM analytics_saleshour WHERE company_id = %s",
            "DELETE FROM analytics_productsales WHERE company_id = %s",
            "DELETE FROM analytics_customer WHERE company_id = %s",
            "DELETE FROM analytics_customeractivity WHERE company_id = %s",
            "DELETE FROM analytics_rollupstate WHERE company_id = %s",
            "DELETE FROM loyalty_redemption WHERE company_id = %s",
            "DELETE FROM loyalty_offer WHERE company_id = %s",
            "DELETE FROM loyalty_pointsentry WHERE company_id = %s",
            "DELETE FROM loyalty_lineitem WHERE transaction_id IN "
            "(SELECT id FROM loyalty_transaction WHERE company_id = %s)",
            "DELETE FROM loyalty_transaction WHERE company_id = %s",
            "DELETE FROM loyalty_persona WHERE company_id = %s",
            "DELETE FROM loyalty_source WHERE company_id = %s",
            "DELETE FROM analytics_changedhour WHERE company_id = %s",  # the deletes above marked hours
        ):
            cursor.execute(statement, c)
    users = list(get_user_model().objects.filter(memberships__company=company, username__startswith="bench-"))
    company.delete()
    for user in users:
        user.delete()


# The aggregates the 12-month page needs, written by hand over the same rollup tables: what
# the page's time is compared with. One statement per number or series, as one would write
# them without the page's GROUPING SETS.
DAYS = "company_id = %(c)s::bigint AND day BETWEEN %(start)s::date AND %(end)s::date"
PRODUCT_ROWS = ("company_id = %(c)s::bigint AND is_total"
                " AND ((grain = 'month' AND period_start = ANY(%(months)s::date[]))"
                " OR (grain = 'day' AND period_start = ANY(%(days)s::date[])))")
NET = "sum(gross_sales - discounts - returns_value)"
CURRENT = "order_days && daterange(%(start)s::date, %(end)s::date, '[]')"
BEFORE = "order_days && daterange(%(prev_start)s::date, %(prev_end)s::date, '[]')"
HANDWRITTEN = {
    "kpis": f"""
        SELECT day >= %(start)s::date AS now, sum(orders), sum(gross_sales), sum(discounts),
               sum(returns_value), sum(items), sum(points_earned), sum(points_redeemed),
               {NET} FILTER (WHERE member)
        FROM analytics_salesday
        WHERE company_id = %(c)s::bigint AND day BETWEEN %(prev_start)s::date AND %(end)s::date
        GROUP BY 1""",
    "over time": f"""
        SELECT date_trunc('month', day), sum(orders), {NET} FROM analytics_salesday WHERE {DAYS}
        GROUP BY 1""",
    "stores": f"SELECT store_id, sum(orders), {NET} FROM analytics_salesday WHERE {DAYS} GROUP BY 1",
    "fulfillment": f"SELECT fulfillment, sum(orders), {NET} FROM analytics_salesday WHERE {DAYS} GROUP BY 1",
    "loyalty": f"SELECT member, sum(orders), {NET} FROM analytics_salesday WHERE {DAYS} GROUP BY 1",
    "hours": f"""
        SELECT extract(isodow FROM day), hour, sum(orders), sum(net_sales)
        FROM analytics_saleshour WHERE is_total AND {DAYS} GROUP BY 1, 2""",
    "categories": f"""
        SELECT category, sum(quantity), sum(net_sales) FROM analytics_productsales WHERE {PRODUCT_ROWS}
        GROUP BY 1""",
    "brands": f"""
        SELECT brand, sum(quantity), sum(net_sales) FROM analytics_productsales WHERE {PRODUCT_ROWS}
        GROUP BY 1 ORDER BY 3 DESC LIMIT 10""",
    "products": f"""
        SELECT product, brand, sum(quantity), sum(net_sales) FROM analytics_productsales WHERE {PRODUCT_ROWS}
        GROUP BY 1, 2 ORDER BY 4 DESC LIMIT 10""",
    "customers": f"""
        SELECT count(*) FILTER (WHERE {CURRENT}),
               count(*) FILTER (WHERE {CURRENT} AND first_day >= %(start)s::date),
               count(*) FILTER (WHERE {BEFORE}),
               count(*) FILTER (WHERE {BEFORE} AND first_day >= %(prev_start)s::date)
        FROM analytics_customer WHERE company_id = %(c)s::bigint""",
}


def handwritten(company, filters) -> dict:
    """Run every hand-written statement (the same session settings as the page: no JIT, room
    to group in memory); returns their rows by name."""
    period, previous = filters.period, filters.period.previous()
    months_before = RollupState.objects.get(company=company).month_rows_before
    months, days = months_and_days(period, months_before)
    params = {"c": company.pk, "start": period.start, "end": period.end, "prev_start": previous.start,
              "prev_end": previous.end, "months": months, "days": days}
    out = {}
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("SET LOCAL jit = off")
        cursor.execute("SET LOCAL work_mem = '64MB'")
        for name, sql in HANDWRITTEN.items():
            cursor.execute(sql, params)
            out[name] = cursor.fetchall()
    return out


def money(value) -> str:
    return f"${value:,.2f}"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sales", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--keep", action="store_true",
                        help="leave the seeded company in place, for --company next time")
    parser.add_argument("--company", type=int, help="measure a company an earlier --keep run seeded")
    args = parser.parse_args()

    setup_test_environment()
    company = (Company.objects.get(pk=args.company, slug__startswith="bench-") if args.company
               else seeded_company(args.sales))
    try:
        transactions = Transaction.objects.filter(company=company).count()
        lines = LineItem.objects.filter(transaction__company=company).count()
        print(f"company {company.pk}: {transactions:,} sales, {lines:,} line items", flush=True)
        if not args.company:
            # What autovacuum does to freshly loaded tables before anyone reads them.
            step("vacuumed", lambda: [execute_autocommit(f"VACUUM ANALYZE {table}") for table in
                                      ("loyalty_transaction", "loyalty_lineitem", "loyalty_persona",
                                       "loyalty_pointsentry", "loyalty_redemption")])
        build_s = step("rollup built", lambda: _timed(lambda: rollup_refresh(company=company, rebuild=True)))

        user = membership_create(company=company, username=f"bench-{uuid.uuid4().hex[:8]}", password=None,
                                 role=Role.MARKETER).user
        client = Client()
        client.force_login(user)
        with timezone.override(company.timezone):  # as a request of the company runs
            today = timezone.localdate()
        filters = Filters(period=preset_period("12m", today))

        def page():
            response = client.get("/analytics/", {"range": "12m"})
            assert response.status_code == 200, response.status_code

        def raw_sql():
            handwritten(company, filters)

        page()
        raw_sql()  # warm both
        page_ms = median_ms(page, args.repeat)
        raw_ms = median_ms(raw_sql, args.repeat)
        filtered_ms = median_ms(lambda: client.get("/analytics/", {"range": "12m", "customers": "members"}),
                                args.repeat)

        # The numbers, three ways: the page's report, the hand-written SQL, the sales tables.
        report = sales_report(company=company, filters=filters)
        rows = handwritten(company, filters)
        started = time.perf_counter()
        from_tables = sales_report(company=company, filters=filters, path="raw")
        tables_ms = (time.perf_counter() - started) * 1000
        now = next(r for r in rows["kpis"] if r[0])
        unique, new = rows["customers"][0][:2]
        hand = {"orders": now[1], "net_sales": now[2] - now[3] - now[4], "points_earned": now[6],
                "customers": unique, "new_customers": new, "member_sales": now[8]}
        page_numbers = {"orders": report.current.orders, "net_sales": report.current.net_sales,
                        "points_earned": report.current.points_earned, "customers": report.customers.unique,
                        "new_customers": report.customers.new, "member_sales": report.member_sales}
        table_numbers = {"orders": from_tables.current.orders, "net_sales": from_tables.current.net_sales,
                         "points_earned": from_tables.current.points_earned,
                         "customers": from_tables.customers.unique,
                         "new_customers": from_tables.customers.new, "member_sales": from_tables.member_sales}
        assert page_numbers == hand == table_numbers, (page_numbers, hand, table_numbers)
        assert observed_equal(report, from_tables), "the rollup and the sales tables disagree"
        period = filters.period
        print(f"12 months, {period.start} to {period.end}, no filter: {report.current.orders:,} orders, "
              f"net sales {money(report.current.net_sales)} (gross {money(report.current.gross_sales)}, "
              f"discounts {money(report.current.discounts)}, returns {money(report.current.returns_value)}), "
              f"{report.customers.unique:,} customers, members' share {report.member_share}%, "
              f"{report.current.points_earned:,} points earned", flush=True)
        print("the page, the hand-written SQL and the sales tables agree on every figure above; the rollup "
              "and the sales tables on every KPI and chart series", flush=True)

        # One more POS sale: what its refresh costs.
        record_one_sale(company)
        refresh_ms = _timed(lambda: rollup_refresh(company=company)) * 1000
        print(f"rollup build {build_s:.1f} s; refresh after one new sale {refresh_ms:.0f} ms; "
              f"page with a filter (loyalty members) {filtered_ms:.0f} ms; "
              f"the same page's numbers straight from the sales tables {tables_ms:.0f} ms", flush=True)
    finally:
        if args.keep:
            print(f"kept company {company.pk}: --company {company.pk}", flush=True)
        else:
            step("cleaned up", lambda: cleanup(company))
    print(f"transactions={transactions} page_ms={page_ms:.0f} raw_sql_ms={raw_ms:.0f} "
          f"ratio={page_ms / raw_ms:.2f}")


def _timed(fn) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def execute_autocommit(sql: str) -> None:
    # VACUUM cannot run inside a transaction; Django's connection is in autocommit here.
    with connection.cursor() as cursor:
        cursor.execute(sql)


def observed_equal(a, b) -> bool:
    keys = ("current", "previous", "customers", "previous_customers", "member_sales", "by_store",
            "by_fulfillment", "by_member", "hours", "categories", "brands", "products")
    return all(getattr(a, k) == getattr(b, k) for k in keys) and [
        (x.start, x.orders, x.net_sales) for x in a.over_time] == [(x.start, x.orders, x.net_sales)
                                                                    for x in b.over_time]


def record_one_sale(company) -> None:
    store = company.stores.order_by("pk").first()
    source = Source.objects.get(company=company, name="Cova")
    noon = timezone.now().replace(microsecond=0)
    transaction_record(company=company, source=source, data=TransactionData(
        external_id=f"bench-one-{uuid.uuid4().hex[:6]}", occurred_at=noon, store_id=store.pk,
        subtotal=Decimal("42.00"), total=Decimal("42.00"),
        line_items=[LineItemData(product="Bench product", quantity=Decimal("1"), unit_price=Decimal("42.00"),
                                 total=Decimal("42.00"))]))


if __name__ == "__main__":
    main()
