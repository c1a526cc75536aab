"""Demo report files in a folder on disk and the Folder connection that reads them.

A few daily line-item reports for the Portland store (which has no POS integration in the
demo), one of them with a bad row and an unmapped location, and one raw POS export whose
headers need mapping. Runs one sync so the demo shows a history. Idempotent.
"""

import csv
import datetime as dt
import random
import zlib
import zoneinfo

from django.core.management.base import BaseCommand

from integrations.models import Connection, SyncRun
from integrations.services.connections import connection_create, store_mapping_set
from integrations.services.sync import SyncFailed, sync_run_create, sync_run_execute
from stores.folders import company_folder
from stores.models import Company

DEMO_SLUG = "green-leaf"
CONNECTION = "Portland daily reports"
DEMO_FOLDER = "portland"  # relative to the company's report folder
PRODUCTS = [("Flower", "Lazercat", "Zkittlez 3.5g", "40.00"),
            ("Edibles", "Wana", "Sour Gummies 100mg", "20.00"),
            ("Vapes", "Select", "Elite Cartridge 1g", "48.00"),
            ("Pre-Rolls", "Cookies", "Cereal Milk 1g", "15.00"),
            ("Concentrates", "Soiku Bano", "Live Rosin 1g", "55.00")]
FIRST = ["Ruth", "Omar", "Jade", "Felix", "Ines", "Tobias", "Keiko", "Marcus", "Lena", "Sam"]
LAST = ["Okafor", "Lindqvist", "Haddad", "Moreau", "Silva", "Novak", "Yamada", "Reyes", "Fischer", "Byrne"]
HEADERS = ["ReceiptId", "customerId", "TransactionDate", "Location", "FirstName", "LastName", "Email",
           "Phone", "SKU", "ProductName", "Brand", "Category", "Quantity", "UnitPrice", "LineDiscount",
           "LineTax", "LineTotal", "PaymentMethod", "FulfillmentType", "Employee"]


class Command(BaseCommand):
    help = "Add demo CSV reports and a Folder connection to the demo company (idempotent)."

    def handle(self, *args, **options):
        company = Company.objects.filter(slug=DEMO_SLUG).first()
        if company is None:
            self.stdout.write("No demo company: run load_demo first.")
            return
        if Connection.objects.filter(company=company, name=CONNECTION).exists():
            self.stdout.write(f"Demo connection '{CONNECTION}' is already there.")
            return
        # Inside the company's report folder, REPORTS_ROOT/green-leaf/, the only place its
        # folder connections may read.
        folder = company_folder(DEMO_SLUG) / DEMO_FOLDER
        folder.mkdir(parents=True, exist_ok=True)
        portland = company.stores.get(state="OR")
        self.write_reports(folder, zoneinfo.ZoneInfo(portland.timezone))
        connection = connection_create(company=company, name=CONNECTION, provider="folder",
                                       settings={"path": DEMO_FOLDER}, credentials={})
        store_mapping_set(connection=connection, external_location_id="PDX-HAW", store=portland)
        run = sync_run_create(connection=connection, trigger=SyncRun.Trigger.MANUAL)
        try:
            run = sync_run_execute(run_id=run.pk)
        except SyncFailed as failure:
            self.stdout.write(self.style.WARNING(f"Demo report sync failed: {failure.message}"))
            return
        self.stdout.write(f"Demo reports in {folder}: {run.files_imported} imported, "
                          f"{run.files_rejected} waiting for a header mapping, "
                          f"{run.rows_accepted} rows in, {run.rows_rejected} rejected.")

    def write_reports(self, folder, tz):
        rng = random.Random(2026)
        today = dt.datetime.now(tz).date()
        customers = [(f"P-{4100 + i}", FIRST[i % 10], LAST[(i * 3) % 10],
                      f"(503) 555-{1000 + i:04d}") for i in range(40)]
        for back in (3, 2, 1):
            day = today - dt.timedelta(days=back)
            rows = []
            for receipt in range(25):
                cid, first, last, phone = rng.choice(customers)
                at = dt.datetime.combine(day, dt.time(10 + receipt % 10, rng.randrange(60)))
                for _ in range(rng.randint(1, 3)):
                    category, brand, product, price = rng.choice(PRODUCTS)
                    qty = rng.randint(1, 2)
                    total = float(price) * qty
                    sku = f"SKU-{zlib.crc32(product.encode()) % 10000:04d}"
                    rows.append([f"PDX-{day:%m%d}-{receipt:03d}", cid, at.strftime("%m/%d/%Y %I:%M %p"),
                                 "PDX-HAW", first, last, f"{first}.{last}@example.com".lower(), phone,
                                 sku, product, brand, category, qty,
                                 f"${price}", "0.00", f"{total * 0.17:.2f}", f"${total:,.2f}", "Cash",
                                 rng.choice(["In-Store", "In-Store", "Pickup"]), "Jordan"])
            if back == 1:  # what a merchant's report sometimes holds
                rows.append(["PDX-BAD-1", "P-4101", "13/45/2026", "PDX-HAW", "", "", "", "", "", "Gift card",
                             "", "", 1, "$25.00", "0", "0", "$25.00", "Card", "In-Store", "Jordan"])
                rows.append(["PDX-BAD-2", "P-4102", day.strftime("%m/%d/%Y"), "PDX-MAIN", "", "", "", "", "",
                             "Blue Dream 3.5g", "", "Flower", 1, "$35.00", "0", "0", "$35.00", "Card",
                             "In-Store", "Jordan"])
            with open(folder / f"sales-{day:%Y-%m-%d}.csv", "w", newline="", encoding="utf-8") as handle:
                writer = csv.writer(handle)
                writer.writerow(HEADERS)
                writer.writerows(rows)
        # A raw export straight from the POS: its headers need mapping before it imports.
        with open(folder / "pos-export-raw.csv", "w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["Receipt #", "Cust #", "Sold At", "Store", "Item", "Qty", "Each", "Net"])
            day = today - dt.timedelta(days=1)
            for i in range(10):
                cid, *_ = customers[i]
                writer.writerow([f"RAW-{i:03d}", cid, f"{day:%Y-%m-%d} 1{i % 9}:30", "PDX-HAW",
                                 PRODUCTS[i % 5][2], 1, PRODUCTS[i % 5][3], PRODUCTS[i % 5][3]])
