"""A few customers waiting at the demo company's stores today, so the queue has life."""

import random
from datetime import timedelta

from django.core.management.base import BaseCommand
from django.urls import reverse
from django.utils import timezone

from loyalty.management.commands.load_demo import DEMO_SLUG
from loyalty.models import Persona
from stores.models import Company
from waitingroom.models import QueueEntry
from waitingroom.services import queue_check_in, store_local_date


class Command(BaseCommand):
    help = "Check a few demo customers in to each demo store whose opt-in queue is on."

    def add_arguments(self, parser):
        parser.add_argument("--per-store", type=int, default=6)
        parser.add_argument("--base-url", default="", help="Where the site is served, for the kiosk links.")

    def handle(self, *args, **options):
        company = Company.objects.filter(slug=DEMO_SLUG).first()
        if company is None:
            self.stderr.write("Load the demo company first (manage.py load_demo).")
            return
        rng = random.Random(20261126)
        now = timezone.now()
        for store in company.stores.filter(opt_in_queue_enabled=True):
            if QueueEntry.objects.filter(store=store, local_date=store_local_date(store, now)).exists():
                self.stdout.write(f"{store.name}: today's queue already has customers.")
            else:
                # Buyers of this store with a phone, members and not, so both buttons show.
                candidates = list(Persona.objects.filter(company=company, favourite_store=store)
                                  .exclude(phone="").exclude(last_purchase_at=None)
                                  .order_by("id")[:200])
                picked = rng.sample(candidates, min(options["per_store"], len(candidates)))
                for minutes, persona in zip(range(len(picked) * 6, 0, -6), picked, strict=False):
                    queue_check_in(store=store, phone=persona.phone, now=now - timedelta(minutes=minutes))
                self.stdout.write(f"{store.name}: {len(picked)} customers waiting.")
            url = options["base_url"].rstrip("/") + reverse("queue_check_in", args=[store.checkin_token])
            self.stdout.write(f"  check-in kiosk: {url}")
