"""The Cova sync against the local fake Cova, and the bare download of the same data.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/cova_sync.py [--customers N]

Seeds the fake with N customers (default 20,000) and --sales sales (default 30,000) over
three locations, all mapped. Baseline: the Cova client alone paging through every customer
and every location's sales (HTTP and JSON parsing, no database). Then a full sync of the
same data into an empty company (fetch, staging, the set-wise merge into personas, sales,
line items, payments and points, one database transaction). The throw-away company is
removed at the end.

Last line: customers=… sales=… sync_s=… fetch_s=… ratio=… customers_per_s=… sales_per_s=…
(ratio = fetch_s / sync_s: the share of the sync spent just getting the data).
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

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from integrations.models import Connection, SyncRun  # noqa: E402
from integrations.providers.cova import CovaClient  # noqa: E402
from integrations.services.cova import (  # noqa: E402
    cova_connection_create,
    cova_credential_save,
    store_mapping_save,
)
from integrations.services.sync import sync_run_create, sync_run_execute  # noqa: E402
from loyalty.models import Source  # noqa: E402
from stores.services import company_create, store_create  # noqa: E402
from tests.integrations.cova_fake import FakeCova  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--sales", type=int, default=30_000)
    args = parser.parse_args()

    fake = FakeCova()
    fake.seed_demo(customers=args.customers, sales_per_location=args.sales // 3, locations=3, merges=50)
    fake.start()
    # The fake listens on this machine: let the guarded outbound session call it, as
    # OUTBOUND_ALLOW_HOSTS does for the demo fakes.
    settings.OUTBOUND_ALLOW_HOSTS = [*settings.OUTBOUND_ALLOW_HOSTS, fake.url.removeprefix("http://")]
    suffix = uuid.uuid4().hex[:8]
    company = company_create(name=f"Cova bench {suffix}", slug=f"cova-bench-{suffix}",
                             timezone="America/Denver")
    try:
        client = CovaClient(**fake.client_kwargs())
        started = time.perf_counter()
        fetched_customers = sum(len(page) for page in client.customers_changed(None))
        fetched_sales = sum(len(page) for location in client.locations()
                            for page in client.sales(location.id, None))
        fetch_s = time.perf_counter() - started

        cova = cova_connection_create(company=company, name="Cova")
        credential = cova_credential_save(
            connection=cova, client_id=fake.client_id, client_secret=fake.client_secret,
            username=fake.username, password=fake.password, cova_company_id=str(fake.company_id),
            accounts_url=fake.url, api_url=fake.url)
        for location in fake.locations:
            store = store_create(company=company, name=location["Name"], state=location["State"])
            store_mapping_save(store=store, connection=cova, external_location_id=str(location["Id"]))
        run = sync_run_create(connection=cova, credential=credential, trigger=SyncRun.Trigger.COMMAND)
        started = time.perf_counter()
        sync_run_execute(run_id=run.pk)
        sync_s = time.perf_counter() - started
        run.refresh_from_db()
        assert run.state == SyncRun.State.SUCCEEDED, run.error
        assert run.sales_synced == fetched_sales, (run.sales_synced, fetched_sales)
    finally:
        fake.close()
        with connection.cursor() as cursor:
            for table in ("loyalty_pointsentry", "loyalty_personaidentity"):
                cursor.execute(f"DELETE FROM {table} WHERE company_id = %s", [company.pk])
            cursor.execute("DELETE FROM loyalty_lineitem WHERE transaction_id IN "
                           "(SELECT id FROM loyalty_transaction WHERE company_id = %s)", [company.pk])
            cursor.execute("DELETE FROM loyalty_payment WHERE transaction_id IN "
                           "(SELECT id FROM loyalty_transaction WHERE company_id = %s)", [company.pk])
            cursor.execute("DELETE FROM loyalty_transaction WHERE company_id = %s", [company.pk])
            cursor.execute("DELETE FROM loyalty_persona WHERE company_id = %s", [company.pk])
        Connection.objects.filter(company=company).delete()
        Source.objects.filter(company=company).delete()
        company.delete()

    print(f"customers={fetched_customers} sales={fetched_sales} sync_s={sync_s:.2f} fetch_s={fetch_s:.2f} "
          f"ratio={fetch_s / sync_s:.2f} customers_per_s={fetched_customers / sync_s:.0f} "
          f"sales_per_s={fetched_sales / sync_s:.0f}")


if __name__ == "__main__":
    main()
