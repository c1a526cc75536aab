"""The CSV report import against a raw PostgreSQL COPY of the same file.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/import_csv.py [--rows N]

Writes a line-item report of N rows (default 1,000,000; the 21 template columns with
realistic values: US dates with AM/PM, "$1,234.50" amounts, names, phones, emails, three
store locations, about 4.5 lines per receipt and 10 receipts per customer). Baseline: a
raw `COPY ... (FORMAT csv, HEADER)` of the file into an unindexed table of text columns.
Then the full import of the same file through a Folder connection into an empty company
(reading, validation, COPY into staging, the set-wise merge into customers, sales, line
items, payments and points, in one database transaction). The throw-away company is
removed at the end.

Before it, a "steps:" line says where the import's time went: reading and checking the
file in Python, its COPY into staging, each merge statement (grouped by what it writes),
the commit (with the foreign-key checks PostgreSQL defers to it) and the rest.

Last line: rows=N import_s=… copy_s=… ratio=… rows_per_s=… peak_rss_mb=…
(ratio = copy_s / import_s; peak_rss_mb is this process's peak resident memory).
"""

import argparse
import csv
import datetime as dt
import os
import random
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection, connections  # noqa: E402

from integrations import fields  # noqa: E402
from integrations.models import Connection, SyncRun  # noqa: E402
from integrations.services import imports  # noqa: E402
from integrations.services.connections import connection_create, store_mapping_set  # noqa: E402
from integrations.services.sync import sync_run_create, sync_run_execute  # noqa: E402
from loyalty.services.ingest import StagingCopy  # noqa: E402
from stores.services import company_create, store_create  # noqa: E402

PRODUCTS = [
    ("Flower", "Green Dot Labs", "Blue Dream 3.5g", 35.00), ("Flower", "Malek's", "Wedding Cake 3.5g", 28.00),
    ("Flower", "Cookies", "Gary Payton 3.5g", 45.00), ("Pre-Rolls", "Lazercat", "Jack Herer 1g", 12.00),
    ("Vapes", "Select", "Elite Cartridge 1g", 48.00), ("Vapes", "Stiiizy", "OG Kush Pod 0.5g", 30.00),
    ("Edibles", "Wana", "Sour Gummies 100mg", 20.00), ("Edibles", "Kiva", "Camino Gummies 100mg", 22.00),
    ("Concentrates", "Soiku Bano", "Live Rosin 1g", 55.00),
    ("Topicals", "Papa & Barkley", "Releaf Balm", 38.00),
    ("Accessories", "Puffco", "Plus Vaporizer", 99.00), ("Accessories", "RAW", "Rolling Papers", 3.00),
]
FIRST = ["Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Mia", "Lucas", "José", "Zoë"]
LAST = ["Smith", "Garcia", "Nguyen", "Patel", "Brown", "Lee", "Lopez", "Kim", "Young", "Hall", "O'Brien"]
LOCATIONS = ["DEN-01", "BOU-02", "PDX-03"]
PAYMENTS = ["Cash", "Debit", "CanPay"]
FULFILLMENT = ["In-Store", "In-Store", "In-Store", "Pickup", "Delivery"]


def write_report(path: Path, rows: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    customers = max(10, rows // 45)
    now = dt.datetime.now()
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(fields.template_headers("s3"))
        written, receipt = 0, 0
        while written < rows:
            receipt += 1
            c = rng.randrange(customers)
            when = now - dt.timedelta(days=rng.randrange(330), minutes=rng.randrange(1440))
            stamp = when.strftime("%m/%d/%Y %I:%M %p")
            location = LOCATIONS[c % 3]
            first, last = FIRST[c % len(FIRST)], LAST[(c // 12) % len(LAST)]
            phone = f"(303) {200 + c // 10000:03d}-{c % 10000:04d}"
            email = f"{first.lower()}.{c}@example.com"
            birth = f"{1 + c % 12:02d}/{1 + c % 28:02d}/{1950 + c % 50}"
            payment, fulfillment = rng.choice(PAYMENTS), rng.choice(FULFILLMENT)
            for _ in range(min(rng.randint(1, 8), rows - written)):
                category, brand, product, price = rng.choice(PRODUCTS)
                quantity = rng.randint(1, 3)
                discount = round(price * quantity * 0.1, 2) if rng.random() < 0.2 else 0.0
                net = price * quantity - discount
                writer.writerow([
                    f"R{receipt:08d}", f"C{c:07d}", stamp, location, first, last, email, phone, birth,
                    f"SKU-{PRODUCTS.index((category, brand, product, price)):04d}", product, brand,
                    category, quantity, f"${price:,.2f}", f"{discount:.2f}", f"{net * 0.15:.2f}",
                    f"${net:,.2f}", payment, fulfillment, "Jordan",
                ])
                written += 1


def raw_copy_seconds(path: Path) -> float:
    """The baseline: PostgreSQL's own CSV COPY of the file into plain text columns."""
    columns = ", ".join(f"c{i} text" for i in range(len(fields.template_headers("s3"))))
    with connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS bench_raw_copy")
        cursor.execute(f"CREATE UNLOGGED TABLE bench_raw_copy ({columns})")
        started = time.perf_counter()
        with open(path, "rb") as handle, cursor.cursor.copy(
                "COPY bench_raw_copy FROM STDIN (FORMAT csv, HEADER)") as copy:
            while chunk := handle.read(1 << 20):
                copy.write(chunk)
        elapsed = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_raw_copy")
    return elapsed


class StepTimes:
    """Times the import's steps from the outside: the staging (`imports._stage`) and its
    COPY chunks (`StagingCopy.flush`), every SQL statement (an execute wrapper, grouped by
    its first words), and the commit."""

    def __init__(self):
        self.seconds: dict[str, float] = {}

    def add(self, step: str, seconds: float) -> None:
        self.seconds[step] = self.seconds.get(step, 0.0) + seconds

    def timed(self, step: str, function):
        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.add(step, time.perf_counter() - started)
        return wrapper

    def statement(self, execute, sql, params, many, context):
        started = time.perf_counter()
        try:
            return execute(sql, params, many, context)
        finally:
            self.add(_statement_label(sql), time.perf_counter() - started)

    def report(self, total: float) -> str:
        stage, copy = self.seconds.pop("stage", 0.0), self.seconds.get("copy into staging", 0.0)
        steps = {"read and check (Python)": stage - copy, **self.seconds}
        steps["rest"] = total - stage - sum(self.seconds.values())
        biggest = sorted(steps.items(), key=lambda item: -item[1])
        return "steps: " + ", ".join(f"{name} {seconds:.2f}s" for name, seconds in biggest if seconds >= 0.01)


def _statement_label(sql: str) -> str:
    words = " ".join(sql.split()).split(" ")
    head = [w for w in words[:12] if w and not w.startswith("(")]
    for verb, skip in (("INSERT", 2), ("UPDATE", 1), ("DELETE", 2), ("CREATE", 3)):
        if verb in head:
            at = head.index(verb)
            return " ".join(head[at:at + skip + 1]).lower()
    return "other statements"


def cleanup(company) -> None:
    with connection.cursor() as cursor:
        for statement in (
            "DELETE FROM loyalty_lineitem WHERE transaction_id IN "
            "(SELECT id FROM loyalty_transaction WHERE company_id = %s)",
            "DELETE FROM loyalty_payment WHERE transaction_id IN "
            "(SELECT id FROM loyalty_transaction WHERE company_id = %s)",
            "DELETE FROM loyalty_pointsentry WHERE company_id = %s",
            "DELETE FROM loyalty_transaction WHERE company_id = %s",
            "DELETE FROM loyalty_personaidentity WHERE company_id = %s",
            "DELETE FROM loyalty_persona WHERE company_id = %s",
        ):
            cursor.execute(statement, [company.pk])
    Connection.objects.filter(company=company).delete()
    company.delete()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=1_000_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        # The throw-away company's report folder, under a throw-away REPORTS_ROOT.
        suffix = uuid.uuid4().hex[:8]
        settings.REPORTS_ROOT = Path(tmp)
        folder = Path(tmp) / f"bench-{suffix}"
        folder.mkdir()
        report = folder / "line-items.csv"
        started = time.perf_counter()
        write_report(report, args.rows)
        size_mb = report.stat().st_size / 1e6
        print(f"generated {args.rows:,} rows ({size_mb:.0f} MB) in {time.perf_counter() - started:.1f}s")

        copy_s = raw_copy_seconds(report)
        print(f"raw COPY: {copy_s:.2f}s")

        company = company_create(name=f"Bench {suffix}", slug=f"bench-{suffix}", timezone="America/Denver")
        try:
            stores = [store_create(company=company, name=f"Store {loc}", state="CO") for loc in LOCATIONS]
            conn = connection_create(company=company, name="Bench reports", provider="folder",
                                     settings={"path": ""}, credentials={})
            for location, store in zip(LOCATIONS, stores, strict=True):
                store_mapping_set(connection=conn, external_location_id=location, store=store)
            run = sync_run_create(connection=conn, trigger=SyncRun.Trigger.MANUAL)
            steps = StepTimes()
            database = connections["default"]
            imports._stage = steps.timed("stage", imports._stage)
            StagingCopy.flush = steps.timed("copy into staging", StagingCopy.flush)
            database._commit = steps.timed("commit", database._commit)
            started = time.perf_counter()
            with connection.execute_wrapper(steps.statement):
                run = sync_run_execute(run_id=run.pk)
            import_s = time.perf_counter() - started
            del database._commit
            print(steps.report(import_s))
            assert run.state != SyncRun.State.FAILED, run.error  # rejected rows end it "with errors"
            print(f"import: {import_s:.2f}s, {run.rows_accepted:,} rows accepted, "
                  f"{run.rows_rejected:,} rejected, {company.transactions.count():,} transactions, "
                  f"{company.personas.count():,} personas")
        finally:
            cleanup(company)

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"rows={args.rows} import_s={import_s:.2f} copy_s={copy_s:.2f} ratio={copy_s / import_s:.3f} "
          f"rows_per_s={args.rows / import_s:.0f} peak_rss_mb={peak_mb:.0f}")


if __name__ == "__main__":
    main()
