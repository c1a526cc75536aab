"""Email campaigns through a real SMTP server (the local fake): what arrives, and what a
mail server that refuses or is away does to the messages."""

import pytest
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from campaigns.services import MAX_ATTEMPTS, campaign_send, campaign_send_batch
from tests.factories import CompanyFactory, PersonaFactory

from .campaign_helpers import audience_of, consenting, open_all_day


def email_campaign(company, audience, **fields):
    return Campaign.objects.create(
        company=company, name=fields.pop("name", "Spring"), channel="email", audience=audience,
        email_subject="Spring deals for {first_name}", email_preheader="20% off this week",
        email_template="announcement", email_body="Hi {first_name},\n\nSee https://example.com/spring",
        holdout_percent=0, **fields)


def _run(campaign):
    for _ in range(20):
        state, _ = campaign_send_batch(campaign_id=campaign.pk, budget_seconds=5)
        if state != "more":
            return state
    return state


@pytest.mark.django_db
def test_email_reaches_consenting_valid_addresses_with_unsubscribe_headers(smtp_fake):
    company = CompanyFactory(name="Green Leaf")
    open_all_day(company)
    ok = consenting(company, 2)
    no_consent = PersonaFactory(company=company, email_opt_in=False, sms_opt_in=True)
    bad_address = PersonaFactory(company=company, email_opt_in=True, email="not-an-address")
    campaign = email_campaign(company, audience_of(company, [*ok, no_consent, bad_address]))
    campaign_send(campaign=campaign, audit=None)
    assert _run(campaign) == "done"
    received = {m["to"][0] if isinstance(m["to"], list) else m["to"]: m for m in smtp_fake.sent_to()}
    assert set(received) == {p.email for p in ok}
    message = received[ok[0].email]
    assert message["subject"] == f"Spring deals for {ok[0].first_name}"
    headers = {k.lower(): v for k, v in message["headers"].items()} if isinstance(message["headers"], dict) \
        else {k.lower(): v for k, v in message["headers"]}
    assert headers["list-unsubscribe"].strip().startswith("<http") and "/u/" in headers["list-unsubscribe"]
    assert headers["list-unsubscribe-post"].strip() == "List-Unsubscribe=One-Click"
    assert "Unsubscribe:" in message["text"] and "/l/" in message["text"]  # the link is tracked
    assert "Green Leaf" in message["html"]
    row = CampaignRecipient.objects.get(campaign=campaign, persona=ok[0])
    assert row.state == "sent" and row.provider_id


@pytest.mark.django_db
def test_smtp_refusing_is_retried_then_failed_with_the_reason(smtp_fake):
    company = CompanyFactory()
    open_all_day(company)
    [persona] = consenting(company, 1)
    campaign = email_campaign(company, audience_of(company, [persona]))
    campaign_send(campaign=campaign, audit=None)
    smtp_fake.refuse(451)
    row = CampaignRecipient.objects.get(campaign=campaign)
    for attempt in range(1, MAX_ATTEMPTS + 1):
        CampaignRecipient.objects.filter(pk=row.pk).update(due_at=timezone.now())
        campaign_send_batch(campaign_id=campaign.pk, budget_seconds=1)
        row.refresh_from_db()
        assert row.attempts == attempt and row.error_code == "smtp_451"
        assert row.state == ("pending" if attempt < MAX_ATTEMPTS else "failed")
    assert row.error and not smtp_fake.sent_to()


@pytest.mark.django_db
def test_smtp_away_is_retried_and_sends_when_back(smtp_fake, settings):
    company = CompanyFactory()
    open_all_day(company)
    [persona] = consenting(company, 1)
    campaign = email_campaign(company, audience_of(company, [persona]))
    campaign_send(campaign=campaign, audit=None)
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = 1  # nothing listens there
    campaign_send_batch(campaign_id=campaign.pk, budget_seconds=1)
    row = CampaignRecipient.objects.get(campaign=campaign)
    assert row.state == "pending" and row.error_code == "smtp_unreachable" and row.due_at > timezone.now()
    settings.EMAIL_PORT = port
    CampaignRecipient.objects.filter(pk=row.pk).update(due_at=timezone.now())
    assert _run(campaign) == "done"
    row.refresh_from_db()
    assert row.state == "sent" and len(smtp_fake.sent_to(persona.email)) == 1


@pytest.mark.django_db
def test_an_email_service_through_anymail_takes_the_same_path(settings):
    from django.core import mail

    settings.EMAIL_BACKEND = "anymail.backends.test.EmailBackend"
    company = CompanyFactory()
    open_all_day(company)
    [persona] = consenting(company, 1)
    campaign = email_campaign(company, audience_of(company, [persona]))
    campaign_send(campaign=campaign, audit=None)
    assert _run(campaign) == "done"
    [message] = mail.outbox
    assert message.to == [persona.email] and message.extra_headers["List-Unsubscribe-Post"]
    row = CampaignRecipient.objects.get(campaign=campaign)
    assert row.state == "sent" and row.provider_id == str(message.anymail_status.message_id)
