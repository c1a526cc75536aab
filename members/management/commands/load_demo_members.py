"""The demo company's loyalty page: on, 21 to join in both its states, and a demo customer
to sign in as (the code is on the operator's Sent messages page)."""

from django.core.management.base import BaseCommand

from loyalty.management.commands.load_demo import DEMO_SLUG
from loyalty.models import Persona
from loyalty.phone import phone_display
from stores.models import Company

from ...models import LoyaltyPageSettings


class Command(BaseCommand):
    help = "Turn the demo company's loyalty page on (idempotent)."

    def add_arguments(self, parser):
        parser.add_argument("--base-url", default="", help="Where the site is served, for the page's link.")

    def handle(self, *args, **options):
        company = Company.objects.filter(slug=DEMO_SLUG).first()
        if company is None:
            self.stderr.write("Load the demo company first (manage.py load_demo).")
            return
        LoyaltyPageSettings.objects.update_or_create(
            company=company,
            defaults={"enabled": True, "minimum_age": 21, "minimum_ages": {"CO": 21, "OR": 21}})
        # A member whose points buy a reward or two, so the demo reaches the wallet.
        member = (Persona.objects.filter(company=company, is_member=True, points_balance__gte=500)
                  .exclude(phone="").order_by("id").first()
                  or Persona.objects.filter(company=company, is_member=True).exclude(phone="")
                  .order_by("-points_balance", "id").first())
        self.stdout.write(f"Loyalty page: {options['base_url']}/c/{company.slug}/")
        if member:
            self.stdout.write(f"  sign in as {member.display_name}: {phone_display(member.phone)} "
                              "(the code is in Django admin › Sent messages)")
