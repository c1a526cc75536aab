"""A few audiences from the prebuilt templates for the demo company, calculated. Idempotent:
a company that already has audiences is left alone."""

from django.core.management.base import BaseCommand

from audiences.models import Audience
from audiences.templates import audience_from_template
from stores.models import Company

DEMO_SLUG = "green-leaf"
DEMO_TEMPLATES = ("loyalty_members", "delivery_customers", "lapsed_90_days", "top_spenders", "sms_opted_in")


class Command(BaseCommand):
    help = "Create and calculate a few demo audiences (idempotent)."

    def handle(self, *args, **options):
        company = Company.objects.filter(slug=DEMO_SLUG).first()
        if company is None or Audience.objects.filter(company=company).exists():
            return
        for key in DEMO_TEMPLATES:
            audience = audience_from_template(company=company, key=key)
            self.stdout.write(f"Audience {audience.name}: {audience.size} customers")
