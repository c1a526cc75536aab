"""Companies with an audience to send to, for the campaign tests."""

from datetime import time

from django.utils import timezone

from audiences.models import Audience, AudienceMember
from campaigns.models import Campaign, MessagingSettings
from tests.factories import PersonaFactory

ALL_DAY = {"send_window_start": time(0, 0), "send_window_end": time(23, 59, 59, 999999)}


def open_all_day(company, **fields) -> MessagingSettings:
    """Messages may go at any hour, so a test's outcome does not depend on the clock."""
    rules, _ = MessagingSettings.objects.update_or_create(company=company, defaults=ALL_DAY | fields)
    return rules


def audience_of(company, personas, name="Everyone") -> Audience:
    audience = Audience.objects.create(company=company, name=name, kind=Audience.Kind.STATIC,
                                       size=len(personas))
    AudienceMember.objects.bulk_create([AudienceMember(audience=audience, persona=p, added_at=timezone.now())
                                        for p in personas])
    return audience


def consenting(company, n, **fields):
    return [PersonaFactory(company=company, sms_opt_in=True, email_opt_in=True, **fields) for _ in range(n)]


def sms_campaign(company, audience, *, holdout=0, body="Hi {first_name}, double points today!", **fields):
    return Campaign.objects.create(company=company, name=fields.pop("name", "Double points"), channel="sms",
                                   audience=audience, sms_body=body, holdout_percent=holdout, **fields)
