"""What the bench scripts share: timing, and the throw-away company they seed."""

import statistics
import time
import uuid


def median_ms(fn, repeat: int) -> float:
    """The median of `repeat` calls of `fn`, in milliseconds."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def bench_company(*, stores: int):
    """A throw-away company (slug bench-…, Denver time) with `stores` stores, a Cova source
    and a 10-off offer for 100 points, for a script to seed set-wise.
    Returns (company, store ids, source id, offer id)."""
    from django.db import connection

    from stores.services import company_create, store_create

    suffix = uuid.uuid4().hex[:8]
    company = company_create(name=f"Bench {suffix}", slug=f"bench-{suffix}", timezone="America/Denver")
    try:
        store_ids = [store_create(company=company, name=f"Store {i + 1}", state="CO").pk
                     for i in range(stores)]
        with connection.cursor() as cursor:
            cursor.execute("INSERT INTO loyalty_source (company_id, kind, name, created_at) "
                           "VALUES (%s, 'cova', 'Cova', now()) RETURNING id", [company.pk])
            source = cursor.fetchone()[0]
            cursor.execute("INSERT INTO loyalty_offer (company_id, name, description, kind, amount, "
                           "points_cost, applies, min_subtotal, categories, brands, is_active, created_at) "
                           "VALUES (%s, '10 off', '', 'flat', 10, 100, '', 0, '[]', '[]', true, now()) "
                           "RETURNING id", [company.pk])
            offer = cursor.fetchone()[0]
    except BaseException:
        with connection.cursor() as cursor:
            cursor.execute("DELETE FROM loyalty_source WHERE company_id = %s", [company.pk])
        company.delete()
        raise
    return company, store_ids, source, offer
