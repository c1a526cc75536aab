"""The customer's "My points" page at 1M personas and 5M ledger entries: its server time
against the raw SQL of the same reads.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/wallet.py [--personas N]

Seeds N personas and 5 ledger entries each set-wise (INSERT ... SELECT generate_series) in a
throw-away company with a loyalty program (tiers, points expiry) and its loyalty page on; the
first personas' earnings come from sales at its stores, so the history shows a store. Then,
signed in as a few of those customers in turn (a real customer session cookie), times the
whole page (Django test client: middleware, ORM, template) and, as the baseline in the same
run, the hand-written SQL of what the page reads (RAW below). Everything seeded is removed at
the end. Last line: personas=… page_ms=… raw_sql_ms=… ratio=… (ratio = page / raw).
"""

import argparse
import hashlib
import itertools
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.http import HttpResponse  # noqa: E402
from django.test import Client, RequestFactory  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from bench.common import bench_company, median_ms  # noqa: E402
from loyalty.models import LoyaltyProgram, Tier  # noqa: E402
from members.models import LoyaltyPageSettings  # noqa: E402
from members.sessions import CUSTOMER_COOKIE, customer_session_start  # noqa: E402

ENTRIES_PER_PERSONA = 5
WITH_SALES = 1000  # the first personas' earnings come from sales (the history shows the store)

SEED_PERSONAS = """
INSERT INTO loyalty_persona (company_id, first_name, last_name, phone, email, market,
    is_member, enrolled_at, sms_opt_in, email_opt_in, favourite_store_id, sourced_from_id,
    custom_traits, points_balance, lifetime_points, tier, last_purchase_at, created_at, updated_at)
SELECT %(company)s, 'Maya' || i::text, 'Lopez', '+1303' || lpad((2000000 + i)::text, 7, '0'),
       'person' || i || '@example.com', 'CO', true, now() - interval '400 days', i %% 2 = 0, i %% 4 = 0,
       (%(stores)s)[1 + i %% 3], %(source)s, '{}'::jsonb, 280, 330, 'Silver',
       now() - (i %% 30) * interval '1 day', now() - interval '400 days', now()
FROM generate_series(1, %(n)s) AS i
"""

# Earn 100, 100, 100, spend 50, earn 30: balance 280, lifetime 330, one entry a week.
SEED_SALES = """
INSERT INTO loyalty_transaction (company_id, store_id, persona_id, source_id, external_id, source_file,
    source_location, occurred_at, channel, fulfillment, employee, subtotal, discount_total, tax_total,
    total, status, created_at, updated_at)
SELECT %(company)s, (%(stores)s)[1 + (p.id + j) %% 3], p.id, %(source)s, 'bench-' || p.id || '-' || j, '', '',
       now() - (6 - j) * interval '7 days', 'in_store', 'in_store', '', d.amount, 0, 0, d.amount,
       'completed', now(), now()
FROM (SELECT id FROM loyalty_persona WHERE company_id = %(company)s ORDER BY id LIMIT %(with_sales)s) p
CROSS JOIN (VALUES (1, 100), (2, 100), (3, 100), (5, 30)) AS d(j, amount)
"""

SEED_LEDGER = """
INSERT INTO loyalty_pointsentry (company_id, persona_id, delta, kind, balance_after, transaction_id,
    staff_user_id, reason, idempotency_key, created_at)
SELECT %(company)s, p.id, d.delta, d.kind, d.after, t.id, NULL, d.reason,
       'bench:' || %(company)s || ':' || p.id || ':' || d.j, now() - (6 - d.j) * interval '7 days'
FROM loyalty_persona p
CROSS JOIN (VALUES (1, 100, 'earn', 100, ''), (2, 100, 'earn', 200, ''), (3, 100, 'earn', 300, ''),
                   (4, -50, 'redeem', 250, 'Offer $5 off'), (5, 30, 'earn', 280, ''))
     AS d(j, delta, kind, after, reason)
LEFT JOIN loyalty_transaction t ON t.company_id = %(company)s AND t.source_id = %(source)s
     AND t.external_id = 'bench-' || p.id || '-' || d.j
WHERE p.company_id = %(company)s
"""

# What the points page reads, by hand: the company with its page settings and program, the
# session with its persona, one page of history with each sale's store, the tiers.
RAW = [
    "SELECT c.*, ps.*, lp.* FROM stores_company c "
    "LEFT JOIN members_loyaltypagesettings ps ON ps.company_id = c.id "
    "LEFT JOIN loyalty_loyaltyprogram lp ON lp.company_id = c.id WHERE c.slug = %(slug)s",
    "SELECT s.*, p.* FROM members_customersession s JOIN loyalty_persona p ON p.id = s.persona_id "
    "WHERE s.token_hash = %(token_hash)s AND s.company_id = %(c)s AND s.revoked_at IS NULL "
    "AND s.expires_at > now() AND p.company_id = %(c)s",
    "SELECT e.id, e.delta, e.kind, e.reason, e.created_at, e.balance_after, s.name "
    "FROM loyalty_pointsentry e LEFT JOIN loyalty_transaction t ON t.id = e.transaction_id "
    "LEFT JOIN stores_retailstore s ON s.id = t.store_id WHERE e.persona_id = %(p)s "
    "ORDER BY e.created_at DESC, e.id DESC LIMIT 21",
    "SELECT * FROM loyalty_tier WHERE company_id = %(c)s",
]


def seed(company, stores, source, n) -> None:
    params = {"company": company.pk, "stores": stores, "source": source, "n": n, "with_sales": WITH_SALES}
    with connection.cursor() as cursor:
        cursor.execute("SET synchronous_commit TO off")
        steps = (("personas", SEED_PERSONAS), ("sales", SEED_SALES), ("ledger entries", SEED_LEDGER))
        for what, sql in steps:
            started = time.perf_counter()
            cursor.execute(sql, params)
            print(f"  seeded {cursor.rowcount:,} {what} in {time.perf_counter() - started:.1f}s", flush=True)
        cursor.execute("ANALYZE loyalty_persona")
        cursor.execute("ANALYZE loyalty_pointsentry")
        cursor.execute("ANALYZE loyalty_transaction")


def remove(company) -> None:
    with connection.cursor() as cursor:
        tables = ("members_customersession", "loyalty_pointsentry", "loyalty_transaction", "loyalty_persona")
        for table in tables:
            cursor.execute(f"DELETE FROM {table} WHERE company_id = %s", [company.pk])  # noqa: S608 - our names
        cursor.execute("DELETE FROM loyalty_offer WHERE company_id = %s", [company.pk])
        cursor.execute("DELETE FROM loyalty_source WHERE company_id = %s", [company.pk])
    company.delete()


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--personas", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=25)
    parser.add_argument("--customers", type=int, default=5,
                        help="signed-in customers the requests rotate over")
    args = parser.parse_args()

    setup_test_environment()
    company, stores, source, _offer = bench_company(stores=3)
    try:
        LoyaltyPageSettings.objects.create(company=company, enabled=True)
        LoyaltyProgram.objects.create(company=company, expiry_months=12)
        Tier.objects.create(company=company, name="Silver", threshold=300)
        Tier.objects.create(company=company, name="VIP", threshold=1000, earn_multiplier="1.5")
        started = time.perf_counter()
        print(f"seeding {args.personas:,} personas, {args.personas * ENTRIES_PER_PERSONA:,} ledger entries",
              flush=True)
        seed(company, stores, source, args.personas)
        print(f"seeded in {time.perf_counter() - started:.1f}s", flush=True)

        customers = []
        for persona in company.personas.order_by("id")[:args.customers]:
            response = HttpResponse()
            customer_session_start(company=company, persona=persona, request=RequestFactory().get("/"),
                                   response=response)
            client = Client()
            token = response.cookies[CUSTOMER_COOKIE].value
            client.cookies[CUSTOMER_COOKIE] = token
            customers.append((client, persona.pk, hashlib.sha256(token.encode()).hexdigest()))
        url = f"/c/{company.slug}/points/"
        rotation = itertools.cycle(customers)

        def page():
            client, _, _ = next(rotation)
            response = client.get(url)
            assert response.status_code == 200, response.status_code
            assert b"+30" in response.content and b"Store " in response.content

        def raw():
            _, persona_id, token_hash = next(rotation)
            params = {"slug": company.slug, "c": company.pk, "p": persona_id, "token_hash": token_hash}
            with connection.cursor() as cursor:
                for sql in RAW:
                    cursor.execute(sql, params)
                    cursor.fetchall()

        for _ in range(len(customers)):  # warm both (and each session's last-seen write)
            page()
            raw()
        page_ms, raw_ms = median_ms(page, args.repeat), median_ms(raw, args.repeat)
    finally:
        started = time.perf_counter()
        remove(company)
        print(f"removed the bench company in {time.perf_counter() - started:.1f}s")
    print(f"personas={args.personas} page_ms={page_ms:.1f} raw_sql_ms={raw_ms:.1f} "
          f"ratio={page_ms / raw_ms:.2f}")


if __name__ == "__main__":
    main()
