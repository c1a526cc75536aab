"""The demo company's campaigns: one sent ten days ago (its report has a holdout to compare
with) and a draft ready to send. Idempotent: a company with campaigns is left alone."""

import datetime as dt

from django.core.management.base import BaseCommand
from django.db.models import CharField, F, Value
from django.db.models.functions import Cast, Concat
from django.utils import timezone

from audiences.models import Audience
from loyalty.management.commands.load_demo import DEMO_SLUG
from stores.models import Company

from ...models import Campaign, CampaignRecipient
from ...services import campaign_queue


class Command(BaseCommand):
    help = "Create the demo campaigns (idempotent)."

    def handle(self, *args, **options):
        company = Company.objects.filter(slug=DEMO_SLUG).first()
        if company is None or Campaign.objects.filter(company=company).exists():
            return
        audience = (Audience.objects.filter(company=company, name__icontains="SMS").first()
                    or Audience.objects.filter(company=company).order_by("-size").first())
        if audience is None:
            self.stderr.write("Load the demo audiences first (manage.py load_demo_audiences).")
            return
        sent_at = timezone.now() - dt.timedelta(days=10)
        past = Campaign.objects.create(
            company=company, name="Double points weekend", channel="sms", audience=audience,
            holdout_percent=10,
            sms_body="Hi {first_name}, double points all weekend at {store}! You have {points} points.",
            status=Campaign.Status.SCHEDULED, scheduled_at=sent_at)
        campaign_queue(campaign_id=past.pk, now=sent_at)
        # What the provider reported back then: nearly all delivered, a few carriers refused.
        rows = CampaignRecipient.objects.filter(campaign=past, group="send")
        rows.update(state="delivered", sent_at=F("due_at"), status_at=F("due_at") + dt.timedelta(seconds=4),
                    provider_id=Concat(Value("SMdemo"), Cast("id", CharField())), attempts=1)
        ids = list(rows.order_by("id").values_list("id", flat=True))
        rows.filter(id__in=ids[::40]).update(state="undelivered", error_code="30003",
                                             error="Unreachable destination handset")
        Campaign.objects.filter(pk=past.pk).update(status=Campaign.Status.SENT,
                                                   finished_at=sent_at + dt.timedelta(minutes=3))
        Campaign.objects.create(
            company=company, name="Spring sale", channel="sms", audience=audience, holdout_percent=10,
            sms_body="{first_name}, 20% off edibles this week at {store}. "
                     "Show this text: https://example.com/spring")
        self.stdout.write(f"Campaigns: {past.name} (sent), Spring sale (draft) to {audience.name}")
