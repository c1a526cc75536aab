"""Demo data: one company, 3 stores in two states, a login per role, ~2,000 personas and
~20,000 sales over the last 12 months, all written through the services.

Running it again changes nothing: a company with the demo slug is left as it is.
"""

import itertools
import random
import time
import zlib
from collections import defaultdict
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand
from django.db import connection
from django.utils import timezone

from loyalty.models import Source, Transaction
from loyalty.services import (
    LineItemData,
    PaymentData,
    TransactionData,
    persona_create,
    source_get_or_create,
    transactions_record_batch,
)
from stores.models import Company, Role
from stores.services import company_create, membership_create, store_create

DEMO_SLUG = "green-leaf"
DEMO_PASSWORD = "demo-pass-2026"
LOGINS = [("admin", Role.ADMIN), ("marketer", Role.MARKETER), ("budtender", Role.BUDTENDER)]
SUPPORT_LOGIN = "support"

STORES = [
    {"name": "Denver – Broadway", "address": "1420 S Broadway", "city": "Denver", "state": "CO",
     "postal_code": "80210", "timezone": "America/Denver", "opt_in_queue_enabled": True,
     "area_codes": ["303", "720"], "tax": Decimal("0.15")},
    {"name": "Boulder – Pearl St", "address": "2035 Pearl St", "city": "Boulder", "state": "CO",
     "postal_code": "80302", "timezone": "America/Denver", "opt_in_queue_enabled": False,
     "area_codes": ["303", "720"], "tax": Decimal("0.15")},
    {"name": "Portland – Hawthorne", "address": "3701 SE Hawthorne Blvd", "city": "Portland",
     "state": "OR", "postal_code": "97214", "timezone": "America/Los_Angeles",
     "opt_in_queue_enabled": True, "area_codes": ["503", "971"], "tax": Decimal("0.17")},
]

# category -> [(brand, product, price)]
CATALOG = {
    "Flower": [("Green Dot Labs", "Blue Dream 3.5g", "35.00"),
               ("Malek's", "Wedding Cake 3.5g", "28.00"), ("Cookies", "Gary Payton 3.5g", "45.00"),
               ("Green Dot Labs", "Sour Diesel 7g", "60.00"), ("Lazercat", "Zkittlez 3.5g", "40.00")],
    "Pre-Rolls": [("Lazercat", "Jack Herer Pre-Roll 1g", "12.00"),
                  ("Malek's", "Infused Pre-Roll 5-pack", "30.00"),
                  ("Cookies", "Cereal Milk Pre-Roll 1g", "15.00")],
    "Vapes": [("Select", "Elite Cartridge 1g", "48.00"), ("Stiiizy", "OG Kush Pod 0.5g", "30.00"),
              ("Select", "Essentials Cart 0.5g", "25.00")],
    "Edibles": [("Wana", "Sour Gummies 100mg", "20.00"), ("Kiva", "Camino Gummies 100mg", "22.00"),
                ("Incredibles", "Mile High Mint Bar 100mg", "18.00"),
                ("Wyld", "Raspberry Gummies 100mg", "19.00")],
    "Concentrates": [("Soiku Bano", "Live Rosin 1g", "55.00"),
                     ("Green Dot Labs", "Live Resin Badder 1g", "40.00")],
    "Topicals": [("Mary's Medicinals", "Transdermal Patch", "16.00"),
                 ("Papa & Barkley", "Releaf Balm", "38.00")],
    "Accessories": [("RAW", "Rolling Papers King Size", "3.00"),
                    ("Puffco", "Plus Vaporizer", "99.00")],
}
CATEGORY_WEIGHTS = {"Flower": 30, "Pre-Rolls": 15, "Vapes": 18, "Edibles": 18,
                    "Concentrates": 8, "Topicals": 5, "Accessories": 6}

FIRST = ["Olivia", "Liam", "Emma", "Noah", "Ava", "Elijah", "Sophia", "James", "Isabella",
         "Lucas", "Mia", "Mason", "Amelia", "Ethan", "Harper", "Logan", "Evelyn", "Jackson",
         "Abigail", "Aiden", "Emily", "Carter", "Ella", "Wyatt", "Scarlett", "Jayden", "Grace",
         "Leo", "Chloe", "Owen", "Riley", "Caleb", "Zoey", "Nathan", "Nora", "Hunter", "Lily",
         "Isaac", "Hannah", "Maya", "Diego", "Priya", "Wei", "Fatima", "Mateo", "Aisha"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis",
        "Rodriguez", "Martinez", "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas",
        "Taylor", "Moore", "Jackson", "Martin", "Lee", "Perez", "Thompson", "White", "Harris",
        "Sanchez", "Clark", "Ramirez", "Lewis", "Robinson", "Walker", "Young", "Allen", "King",
        "Wright", "Scott", "Torres", "Nguyen", "Hill", "Flores", "Green", "Adams", "Nelson",
        "Baker", "Hall", "Rivera", "Campbell", "Mitchell", "Carter", "Roberts", "Patel", "Kim"]
CENT = Decimal("0.01")


class Command(BaseCommand):
    help = "Load the demo company (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--personas", type=int, default=2000)
        parser.add_argument("--transactions", type=int, default=20000)
        parser.add_argument("--seed", type=int, default=20261124)

    def handle(self, *args, **options):
        started = time.monotonic()
        company = Company.objects.filter(slug=DEMO_SLUG).first()
        if company is not None:
            self.stdout.write(f"Demo company '{company.name}' is already loaded.")
        else:
            company = self.load(options)
            self.stdout.write(self.style.SUCCESS(
                f"Demo loaded in {time.monotonic() - started:.1f}s: "
                f"{company.personas.count()} personas, {company.transactions.count()} sales."))
        self.load_rules(company)
        self.print_logins()

    def load_rules(self, company):
        """Tiers, offers and POS prompts, added when missing (older demos get them too)."""
        from decimal import Decimal as D

        from loyalty.models import Offer, Prompt, Tier
        from loyalty.services.program import tiers_recompute

        for name, threshold, multiplier in (("Silver", 500, "1.00"), ("Gold", 1500, "1.25")):
            Tier.objects.get_or_create(company=company, name=name, defaults={
                "threshold": D(threshold), "earn_multiplier": D(multiplier)})
        offers = [
            ("$10 off $50", "flat", "10", 200, "50", [], "A flat $10 off a cart of $50 or more."),
            ("15% off flower", "percent", "15", 350, "0", ["Flower"], "15% off a cart with flower in it."),
            ("$5 off", "flat", "5", 100, "20", [], "Five dollars off any cart over $20."),
        ]
        for name, kind, amount, cost, minimum, categories, description in offers:
            Offer.objects.get_or_create(company=company, name=name, defaults={
                "kind": kind, "amount": D(amount), "points_cost": cost, "min_subtotal": D(minimum),
                "categories": categories, "description": description})
        prompts = [
            ("Vape battery", "category", "Vapes", "Ask if they need a battery for the cartridge.", "ACC-BAT"),
            ("Birthday", "birthday_this_month", "", "Happy birthday! Mention the birthday offer.", ""),
            ("Missing email", "missing_email", "", "Ask for an email address for receipts and offers.", ""),
        ]
        for name, condition, value, message, sku in prompts:
            Prompt.objects.get_or_create(company=company, name=name, defaults={
                "condition": condition, "value": value, "message": message, "suggested_sku": sku})
        tiers_recompute(company=company)

    def print_logins(self):
        self.stdout.write(f"Demo logins (password for all: {DEMO_PASSWORD}):")
        for username, role in LOGINS:
            self.stdout.write(f"  {username:<10} {role.label}")
        self.stdout.write(f"  {SUPPORT_LOGIN:<10} Superuser (Django admin)")

    def load(self, options):
        rng = random.Random(options["seed"])
        with connection.cursor() as cursor:
            # Demo rows can be rebuilt; waiting for each commit to reach the disk buys nothing.
            cursor.execute("SET synchronous_commit TO off")
        now = timezone.now()
        company = company_create(name="Green Leaf Dispensaries", slug=DEMO_SLUG,
                                 timezone="America/Denver", currency="USD", country="US")
        stores = []
        for spec in STORES:
            fields = {k: v for k, v in spec.items() if k not in ("area_codes", "tax")}
            stores.append(store_create(company=company, **fields))
        for username, role in LOGINS:
            membership_create(company=company, username=username, password=DEMO_PASSWORD,
                              role=role, email=f"{username}@greenleaf.example",
                              stores=[stores[0]] if role == Role.BUDTENDER else [])
        user_model = get_user_model()
        if not user_model.objects.filter(username=SUPPORT_LOGIN).exists():
            user_model.objects.create_superuser(SUPPORT_LOGIN, "support@greenleaf.example",
                                                DEMO_PASSWORD)

        sources = {
            "cova": source_get_or_create(company=company, kind=Source.Kind.COVA),
            "s3": source_get_or_create(company=company, kind=Source.Kind.S3),
            "waiting_room": source_get_or_create(company=company, kind=Source.Kind.WAITING_ROOM),
        }
        personas = self.load_personas(company, stores, sources, rng, now, options["personas"])
        self.load_sales(company, stores, sources, personas, rng, now, options["transactions"])
        return company

    def load_personas(self, company, stores, sources, rng, now, count):
        personas = []
        used_phones = set()
        for i in range(count):
            store_index = rng.choices([0, 1, 2], weights=[45, 25, 30])[0]
            spec = STORES[store_index]
            while True:
                phone = (f"+1{rng.choice(spec['area_codes'])}{rng.randint(200, 999)}"
                         f"{rng.randint(0, 9999):04d}")
                if phone[5:8] != "555" and phone not in used_phones:
                    used_phones.add(phone)
                    break
            first, last = rng.choice(FIRST), rng.choice(LAST)
            created = now - timedelta(days=rng.uniform(0, 720))
            member = rng.random() < 0.7
            source = sources["s3"] if spec["state"] == "OR" else (
                sources["waiting_room"] if rng.random() < 0.12 else sources["cova"])
            traits = {}
            if source is sources["cova"]:
                traits["CovaPricingGroup"] = rng.choice(["Standard", "Medical", "Veteran",
                                                         "Senior"])
            personas.append(persona_create(
                company=company, source=source, first_name=first, last_name=last, phone=phone,
                email=(f"{first}.{last}{i}@example.com".lower() if rng.random() < 0.85 else ""),
                birth_date=(now - timedelta(days=rng.randint(21 * 365, 75 * 365))).date(),
                market=spec["state"], sms_opt_in=rng.random() < 0.6,
                email_opt_in=rng.random() < 0.5, favourite_store=stores[store_index],
                custom_traits=traits, external_id=f"C-{100000 + i}",
                enrolled_at=created if member else None, created_at=created,
            ))
        return personas

    def load_sales(self, company, stores, sources, personas, rng, now, count):
        # A few regulars buy most often, as in real shops.
        cum_weights = list(itertools.accumulate(rng.paretovariate(1.3) for _ in personas))
        batches = defaultdict(list)
        categories = list(CATEGORY_WEIGHTS)
        category_weights = list(CATEGORY_WEIGHTS.values())
        for i in range(count):
            persona = rng.choices(personas, cum_weights=cum_weights)[0] if rng.random() < 0.9 else None
            store_index = (stores.index(persona.favourite_store)
                           if persona is not None and rng.random() < 0.85
                           else rng.randrange(len(stores)))
            store, spec = stores[store_index], STORES[store_index]
            earliest = max(persona.created_at, now - timedelta(days=364)) if persona else (
                now - timedelta(days=364))
            span_days = max((now - earliest).total_seconds() / 86400, 0.1)
            local_day = (earliest + timedelta(days=rng.uniform(0, span_days))).astimezone(
                ZoneInfo(spec["timezone"]))
            occurred = datetime(local_day.year, local_day.month, local_day.day,
                                rng.choices(range(9, 22), weights=[2, 3, 4, 5, 6, 7, 8, 9, 10,
                                                                   10, 8, 6, 3])[0],
                                rng.randrange(60), rng.randrange(60),
                                tzinfo=ZoneInfo(spec["timezone"]))
            occurred = min(occurred, now - timedelta(minutes=5))

            lines, subtotal, discount_total = [], Decimal("0"), Decimal("0")
            percent_off = Decimal("0.10") if rng.random() < 0.15 else Decimal("0")
            for _ in range(rng.choices([1, 2, 3, 4, 5], weights=[30, 30, 20, 12, 8])[0]):
                category = rng.choices(categories, weights=category_weights)[0]
                brand, product, price = rng.choice(CATALOG[category])
                quantity = Decimal(rng.choices([1, 2, 3], weights=[80, 15, 5])[0])
                unit_price = Decimal(price)
                gross = unit_price * quantity
                discount = (gross * percent_off).quantize(CENT, ROUND_HALF_UP)
                subtotal += gross
                discount_total += discount
                sku = f"{category[:3].upper()}-{zlib.crc32(product.encode()) % 100000:05d}"
                lines.append(LineItemData(sku=sku, product=product, brand=brand,
                                          category=category, quantity=quantity,
                                          unit_price=unit_price, discount=discount,
                                          total=gross - discount))
            tax_total = ((subtotal - discount_total) * spec["tax"]).quantize(CENT, ROUND_HALF_UP)
            total = subtotal - discount_total + tax_total
            fulfillment = rng.choices(["in_store", "pickup", "delivery"], weights=[70, 20, 10])[0]
            status = (Transaction.Status.VOIDED if rng.random() < 0.02
                      else Transaction.Status.COMPLETED)
            source = sources["s3"] if spec["state"] == "OR" else sources["cova"]
            batches[source.pk].append(TransactionData(
                external_id=f"{store.pk}-{100000 + i}", occurred_at=occurred, store_id=store.pk,
                persona_id=persona.pk if persona else None, subtotal=subtotal,
                discount_total=discount_total, tax_total=tax_total, total=total,
                channel="in_store" if fulfillment == "in_store" else "online",
                fulfillment=fulfillment, status=status,
                employee=rng.choice(["Sam R.", "Alex T.", "Jordan P.", "Casey M."]),
                line_items=lines,
                payments=[PaymentData(method=rng.choice(["Cash", "Debit", "CanPay"]),
                                      amount=total)],
            ))
            if len(batches[source.pk]) >= 1000:
                transactions_record_batch(company=company, source=source,
                                          items=batches.pop(source.pk))
        for source_pk, items in batches.items():
            transactions_record_batch(company=company, source=Source.objects.get(pk=source_pk),
                                      items=items)
