"""Rebuild the sales analytics rollup from the sales: of one company, or of all."""

import time

from django.core.management.base import BaseCommand, CommandError

from analytics.services import rollup_refresh
from stores.models import Company


class Command(BaseCommand):
    help = "Rebuild the sales analytics rollup of a company (by slug), or of every company."

    def add_arguments(self, parser):
        parser.add_argument("--company", help="the company's slug; every company when left out")

    def handle(self, *args, company=None, **options):
        companies = Company.objects.order_by("pk")
        if company:
            companies = companies.filter(slug=company)
            if not companies.exists():
                raise CommandError(f"No company with the slug “{company}”.")
        for each in companies:
            started = time.perf_counter()
            outcome = rollup_refresh(company=each, rebuild=True)
            self.stdout.write(f"{each.slug}: {outcome.days} days with sales, {outcome.customers} customers, "
                              f"in {time.perf_counter() - started:.1f}s")
