"""Personas list at 100k personas: the page's server-side time against the raw SQL it needs.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/personas_list.py [--personas N]

Seeds N personas set-wise in a throw-away company, then for each of a few typical list
requests (first page, a name search, a phone search, a filter with a sort, a deep page)
times the whole view (Django test client: middleware, ORM, template) and, as the baseline
in the same run, the two hand-written SQL statements that page needs (the page rows and
the count). Last line: personas=… list_ms=… raw_sql_ms=… ratio=… (ratio = list / raw).
"""

import argparse
import os
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import setup_test_environment  # noqa: E402

from bench.common import median_ms  # noqa: E402
from stores.models import Role  # noqa: E402
from stores.services import company_create, membership_create, store_create  # noqa: E402

SEED_SQL = """
INSERT INTO loyalty_persona (company_id, first_name, last_name, phone, email, market,
    is_member, enrolled_at, sms_opt_in, email_opt_in, favourite_store_id, sourced_from_id,
    custom_traits, points_balance, lifetime_points, tier, last_purchase_at, created_at,
    updated_at)
SELECT %(company)s,
       (ARRAY['Olivia','Liam','Emma','Noah','Ava','Mia','Lucas','Zoe','Ethan','Maya'])[1 + i %% 10]
           || i::text,
       (ARRAY['Smith','Garcia','Nguyen','Patel','Brown','Lee','Lopez','Kim','Young','Hall'])
           [1 + (i / 10) %% 10],
       '+1303' || lpad((2000000 + i)::text, 7, '0'),
       'person' || i || '@example.com',
       'CO', i %% 3 <> 0, CASE WHEN i %% 3 <> 0 THEN now() END, i %% 2 = 0, i %% 4 = 0,
       (%(stores)s)[1 + i %% 3], NULL, '{}'::jsonb, (i * 37) %% 5000, (i * 37) %% 5000 + 100, '',
       now() - (i %% 365) * interval '1 day', now(), now()
FROM generate_series(1, %(n)s) AS i
"""

REQUESTS = [
    ("first page", {}),
    ("name search", {"q": "olivia1234"}),
    ("phone search", {"q": "(303) 205-0042"}),
    ("members by points", {"member": "yes", "sort": "points", "dir": "desc"}),
    ("last purchase", {"sort": "last_purchase", "dir": "desc"}),
    ("deep page", {"page": "1500"}),
]

RAW = {
    "first page": ("SELECT p.*, s.name FROM loyalty_persona p LEFT JOIN stores_retailstore s "
                   "ON s.id = p.favourite_store_id WHERE p.company_id = %(c)s "
                   "ORDER BY p.last_name, p.first_name, p.id LIMIT 25",
                   "SELECT count(*) FROM loyalty_persona WHERE company_id = %(c)s"),
    "name search": ("SELECT p.* FROM loyalty_persona p WHERE p.company_id = %(c)s AND "
                    "(upper(p.first_name) LIKE 'OLIVIA1234%%' OR upper(p.last_name) LIKE "
                    "'OLIVIA1234%%' OR upper(p.email) LIKE 'OLIVIA1234%%') "
                    "ORDER BY p.last_name, p.first_name, p.id LIMIT 25",
                    "SELECT count(*) FROM loyalty_persona p WHERE p.company_id = %(c)s AND "
                    "(upper(p.first_name) LIKE 'OLIVIA1234%%' OR upper(p.last_name) LIKE "
                    "'OLIVIA1234%%' OR upper(p.email) LIKE 'OLIVIA1234%%')"),
    "phone search": ("SELECT p.* FROM loyalty_persona p WHERE p.company_id = %(c)s AND "
                     "p.phone LIKE '%%3032050042%%' ORDER BY p.last_name, p.first_name, p.id "
                     "LIMIT 25",
                     "SELECT count(*) FROM loyalty_persona p WHERE p.company_id = %(c)s AND "
                     "p.phone LIKE '%%3032050042%%'"),
    "members by points": ("SELECT p.* FROM loyalty_persona p WHERE p.company_id = %(c)s AND "
                          "p.is_member ORDER BY p.points_balance DESC, p.id DESC LIMIT 25",
                          "SELECT count(*) FROM loyalty_persona p WHERE p.company_id = %(c)s "
                          "AND p.is_member"),
    "last purchase": ("SELECT p.* FROM loyalty_persona p WHERE p.company_id = %(c)s "
                      "ORDER BY p.last_purchase_at DESC NULLS LAST, p.id DESC LIMIT 25",
                      "SELECT count(*) FROM loyalty_persona WHERE company_id = %(c)s"),
    "deep page": ("SELECT p.* FROM loyalty_persona p WHERE p.company_id = %(c)s "
                  "ORDER BY p.last_name, p.first_name, p.id LIMIT 25 OFFSET 37475",
                  "SELECT count(*) FROM loyalty_persona WHERE company_id = %(c)s"),
}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--personas", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()

    setup_test_environment()
    company = company_create(name="Bench", slug=f"bench-{uuid.uuid4().hex[:8]}")
    try:
        stores = [store_create(company=company, name=f"Store {i}", state="CO").pk
                  for i in range(3)]
        user = membership_create(company=company, username=f"bench-{company.slug}",
                                 password=None, role=Role.ADMIN).user
        started = time.perf_counter()
        with connection.cursor() as cursor:
            cursor.execute(SEED_SQL, {"company": company.pk, "stores": stores,
                                      "n": args.personas})
            cursor.execute("ANALYZE loyalty_persona")
        print(f"seeded {args.personas} personas in {time.perf_counter() - started:.1f}s")

        client = Client()
        client.force_login(user)
        page_total = raw_total = 0.0
        for name, params in REQUESTS:
            def view(params=params):
                response = client.get("/personas/", params)
                assert response.status_code == 200, response.status_code

            def raw(name=name):
                with connection.cursor() as cursor:
                    for sql in RAW[name]:
                        cursor.execute(sql, {"c": company.pk})
                        cursor.fetchall()

            view()
            raw()  # warm both
            page_ms, raw_ms = median_ms(view, args.repeat), median_ms(raw, args.repeat)
            page_total += page_ms
            raw_total += raw_ms
            print(f"  {name:<18} page {page_ms:7.1f} ms   raw SQL {raw_ms:7.1f} ms")
    finally:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM loyalty_persona WHERE company_id = %s", [company.pk])
        company.delete()
    n = len(REQUESTS)
    print(f"personas={args.personas} list_ms={page_total / n:.1f} raw_sql_ms={raw_total / n:.1f} "
          f"ratio={page_total / raw_total:.2f}")


if __name__ == "__main__":
    main()
