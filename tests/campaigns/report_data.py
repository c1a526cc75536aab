"""Campaigns with recipients, clicks and sales, for the report's tests."""

import datetime as dt
import itertools
from decimal import Decimal

from campaigns.models import Campaign, CampaignLink, CampaignRecipient, LinkClick
from loyalty.models import Transaction
from tests.factories import PersonaFactory, SourceFactory

QUEUED_AT = dt.datetime(2026, 3, 2, 16, 0, tzinfo=dt.UTC)
_refs = itertools.count(1)


def campaign_make(company, *, name="Spring sale", channel="sms", report_days=7, queued_at=QUEUED_AT,
                  status=Campaign.Status.SENT, **extra) -> Campaign:
    return Campaign.objects.create(company=company, name=name, channel=channel, report_days=report_days,
                                   queued_at=queued_at, status=status, **extra)


def recipient_add(campaign, *, group="send", state=None, persona=None, **extra) -> CampaignRecipient:
    persona = persona or PersonaFactory(company=campaign.company)
    state = state or ("held_out" if group == "holdout" else "sent")
    return CampaignRecipient.objects.create(
        campaign=campaign, persona=persona, group=group, state=state, due_at=campaign.queued_at or QUEUED_AT,
        to=extra.pop("to", persona.phone), **extra)


def sale(persona, total, when, *, company=None, status="completed") -> Transaction:
    company = company or persona.company
    source = SourceFactory(company=company)
    total = Decimal(str(total))
    return Transaction.objects.create(company=company, persona=persona, source=source,
                                      external_id=f"t{next(_refs)}", occurred_at=when, subtotal=total,
                                      total=total, status=status)


def click(campaign, recipient, *, url="https://example.com/spring", when=None) -> LinkClick:
    link, _ = CampaignLink.objects.get_or_create(campaign=campaign, url=url,
                                                 defaults={"code": f"c{next(_refs)}"})
    return LinkClick.objects.create(link=link, recipient=recipient, clicked_at=when or campaign.queued_at)
