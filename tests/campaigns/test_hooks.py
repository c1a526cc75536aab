"""Twilio's webhooks for campaigns: a customer's reply (STOP, START, HELP) and a message's
delivery status, each signed with the auth token of the account the company sends through."""

from urllib.parse import urlencode

import pytest
from django.test import override_settings
from django.utils import timezone
from twilio.request_validator import RequestValidator

from campaigns.hooks import status_callback_url
from campaigns.models import Campaign, CampaignRecipient, InboundMessage
from loyalty.models import ConsentRecord
from members.models import LoyaltyPageSettings
from stores.crypto import encrypt
from tests.factories import PersonaFactory

pytestmark = pytest.mark.django_db

BASE = "https://loyalty.example.com"
PLATFORM_SID, PLATFORM_TOKEN = "AC" + "ab" * 16, "platform-token-0000000000000000"
OWN_SID, OWN_TOKEN = "AC" + "12" * 16, "own-token-of-the-company-0000000"
NUMBER = "+13035550100"
CUSTOMER = "+13035550142"


@pytest.fixture(autouse=True)
def platform_twilio():
    with override_settings(SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=PLATFORM_SID,
                           TWILIO_AUTH_TOKEN=PLATFORM_TOKEN, TWILIO_FROM=NUMBER, PUBLIC_BASE_URL=BASE):
        yield


def post_signed(client, path, params, *, token=PLATFORM_TOKEN, signed_url=None):
    signature = RequestValidator(token).compute_signature(signed_url or BASE + path, params)
    return client.post(path, urlencode(params), content_type="application/x-www-form-urlencoded",
                       HTTP_X_TWILIO_SIGNATURE=signature)


def inbound(client, company, body, *, sid="SM" + "1" * 32, sender=CUSTOMER, **kwargs):
    params = {"MessageSid": sid, "AccountSid": PLATFORM_SID, "From": sender, "To": NUMBER, "Body": body,
              "NumMedia": "0", "NumSegments": "1", "ApiVersion": "2010-04-01"}
    return post_signed(client, f"/hooks/twilio/{company.slug}/inbound/", params, **kwargs)


def status(client, company, sid, message_status, *, error_code="", **kwargs):
    params = {"MessageSid": sid, "SmsSid": sid, "AccountSid": PLATFORM_SID, "From": NUMBER, "To": CUSTOMER,
              "MessageStatus": message_status, "SmsStatus": message_status, "ApiVersion": "2010-04-01"}
    if error_code:
        params["ErrorCode"] = error_code
    return post_signed(client, f"/hooks/twilio/{company.slug}/status/", params, **kwargs)


def sms_opt_ins(company, phone=CUSTOMER):
    return sorted(p.sms_opt_in for p in company.personas.filter(phone=phone))


# --- replies -------------------------------------------------------------------------------------

def test_stop_withdraws_sms_consent_of_every_persona_with_that_phone(client, company, other_company):
    mine = [PersonaFactory(company=company, phone=CUSTOMER, sms_opt_in=True) for _ in range(2)]
    elsewhere = PersonaFactory(company=other_company, phone=CUSTOMER, sms_opt_in=True)

    response = inbound(client, company, "  stop please ")

    assert response.status_code == 200 and response["Content-Type"].startswith("text/xml")
    assert response.content.decode().endswith(
        "<Response><Message>You're unsubscribed from Green Leaf texts. No more messages will be sent. "
        "Reply START to resubscribe.</Message></Response>")
    assert sms_opt_ins(company) == [False, False]
    elsewhere.refresh_from_db()
    assert elsewhere.sms_opt_in is True
    records = ConsentRecord.objects.filter(company=company, channel="sms")
    assert sorted(r.persona_id for r in records) == sorted(p.pk for p in mine)
    assert {(r.granted, r.wording) for r in records} == {
        (False, f'Replied "STOP" by text message to {NUMBER}.')}
    message = InboundMessage.objects.get(company=company)
    assert (message.sender, message.keyword, message.body) == (CUSTOMER, "stop", "  stop please ")


@pytest.mark.parametrize("word", ["STOPALL", "unsubscribe", "Cancel", "END", "quit"])
def test_every_stop_word_stops(client, company, word):
    PersonaFactory(company=company, phone=CUSTOMER, sms_opt_in=True)
    assert b"unsubscribed" in inbound(client, company, word).content
    assert sms_opt_ins(company) == [False]


def test_the_same_message_twice_is_recorded_and_answered_once(client, company):
    PersonaFactory(company=company, phone=CUSTOMER, sms_opt_in=True)
    first = inbound(client, company, "STOP")
    again = inbound(client, company, "STOP")

    assert b"<Message>" in first.content
    assert again.status_code == 200 and b"<Message>" not in again.content
    assert InboundMessage.objects.filter(company=company).count() == 1
    assert ConsentRecord.objects.filter(company=company).count() == 1


def test_start_gives_consent_back(client, company):
    persona = PersonaFactory(company=company, phone=CUSTOMER, sms_opt_in=True)
    inbound(client, company, "STOP", sid="SM" + "1" * 32)
    response = inbound(client, company, "Start", sid="SM" + "2" * 32)

    assert b"resubscribed to Green Leaf texts" in response.content
    persona.refresh_from_db()
    assert persona.sms_opt_in is True
    latest = ConsentRecord.objects.filter(persona=persona).order_by("-id").first()
    assert (latest.granted, latest.wording) == (True, f'Replied "START" by text message to {NUMBER}.')


def test_help_says_who_and_how_to_stop_and_changes_nothing(client, company):
    PersonaFactory(company=company, phone=CUSTOMER, sms_opt_in=True)
    response = inbound(client, company, "help")
    assert response.content.decode().endswith(
        "<Response><Message>Green Leaf: Reply STOP to opt out.</Message></Response>")
    assert sms_opt_ins(company) == [True]
    assert not ConsentRecord.objects.exists()


def test_any_other_text_is_recorded_with_no_reply(client, company):
    persona = PersonaFactory(company=company, phone=CUSTOMER, sms_opt_in=True)
    response = inbound(client, company, "Do you stock gummies? stop")
    assert response.status_code == 200 and b"<Response" in response.content
    assert b"<Message>" not in response.content
    message = InboundMessage.objects.get(company=company)
    assert (message.keyword, message.persona_id) == ("", persona.pk)
    assert sms_opt_ins(company) == [True]


# --- refused -------------------------------------------------------------------------------------

def test_a_bad_signature_is_refused_and_nothing_recorded(client, company):
    PersonaFactory(company=company, phone=CUSTOMER, sms_opt_in=True)
    forged = inbound(client, company, "STOP", token="not-the-token-000000000000000000")
    unsigned = client.post(f"/hooks/twilio/{company.slug}/inbound/", {"MessageSid": "SM" + "3" * 32,
                                                                      "From": CUSTOMER, "Body": "STOP"})
    assert (forged.status_code, unsigned.status_code) == (403, 403)
    assert b"signature" in forged.content.lower() and b"signature" in unsigned.content.lower()
    assert not InboundMessage.objects.exists() and not ConsentRecord.objects.exists()
    assert sms_opt_ins(company) == [True]


def test_a_signature_for_another_url_is_refused(client, company):
    PersonaFactory(company=company, phone=CUSTOMER, sms_opt_in=True)
    response = inbound(client, company, "STOP", signed_url="https://elsewhere.example.com"
                                                           f"/hooks/twilio/{company.slug}/inbound/")
    assert response.status_code == 403 and sms_opt_ins(company) == [True]


def test_company_a_token_on_company_b_url_is_refused(client, company, other_company):
    """Green Leaf has its own Twilio account; a request signed with it for Other Co's hook
    (which goes through the platform's account) is refused, and the other way round."""
    LoyaltyPageSettings.objects.create(
        company=company, sms_provider="twilio", twilio_account_sid=OWN_SID, twilio_sender=NUMBER,
        twilio_auth_token_encrypted=encrypt(OWN_TOKEN), twilio_auth_token_last4=OWN_TOKEN[-4:])
    PersonaFactory(company=other_company, phone=CUSTOMER, sms_opt_in=True)
    PersonaFactory(company=company, phone=CUSTOMER, sms_opt_in=True)

    assert inbound(client, other_company, "STOP", token=OWN_TOKEN).status_code == 403
    assert inbound(client, company, "STOP", token=PLATFORM_TOKEN).status_code == 403
    assert sms_opt_ins(other_company) == [True] and sms_opt_ins(company) == [True]
    # each with its own account's token
    assert inbound(client, company, "STOP", token=OWN_TOKEN).status_code == 200
    assert sms_opt_ins(company) == [False] and sms_opt_ins(other_company) == [True]


def test_unknown_company_and_outbox_provider_are_refused(client, company):
    params = {"MessageSid": "SM" + "4" * 32, "From": CUSTOMER, "Body": "STOP"}
    assert post_signed(client, "/hooks/twilio/no-such-company/inbound/", params).status_code == 403
    with override_settings(SMS_PROVIDER="outbox"):
        response = inbound(client, company, "STOP")
    assert response.status_code == 403 and b"No Twilio account" in response.content
    assert not InboundMessage.objects.exists()


def test_hooks_take_only_post(client, company):
    assert client.get(f"/hooks/twilio/{company.slug}/inbound/").status_code == 405


# --- delivery status -----------------------------------------------------------------------------

def _recipient(company, sid, *, state="sent", persona=None):
    campaign = Campaign.objects.filter(company=company).first() or Campaign.objects.create(
        company=company, name="Spring sale", channel="sms", sms_body="20% off", status="sending",
        queued_at=timezone.now())
    persona = persona or PersonaFactory(company=company)
    return CampaignRecipient.objects.create(campaign=campaign, persona=persona, group="send",
                                            to=persona.phone, due_at=timezone.now(), state=state,
                                            provider_id=sid, sent_at=timezone.now())


def _state(recipient):
    recipient.refresh_from_db()
    return recipient.state, recipient.error_code, recipient.error


def test_status_callbacks_in_order_move_the_recipient_forward(client, company):
    recipient = _recipient(company, "SM" + "a" * 32, state="claimed")
    assert status(client, company, recipient.provider_id, "queued").status_code == 200
    assert _state(recipient) == ("sent", "", "")
    status(client, company, recipient.provider_id, "sent")
    status(client, company, recipient.provider_id, "delivered")
    assert _state(recipient) == ("delivered", "", "")
    assert recipient.status_at is not None


def test_a_late_sent_after_delivered_changes_nothing(client, company):
    recipient = _recipient(company, "SM" + "b" * 32)
    status(client, company, recipient.provider_id, "delivered")
    recipient.refresh_from_db()
    delivered_at = recipient.status_at
    status(client, company, recipient.provider_id, "sent")
    status(client, company, recipient.provider_id, "undelivered", error_code="30003")
    assert _state(recipient) == ("delivered", "", "")
    assert recipient.status_at == delivered_at


@pytest.mark.parametrize(("twilio_status", "code", "state", "error"), [
    ("undelivered", "30003", "undelivered", "Unreachable destination handset"),
    ("undelivered", "30006", "undelivered", "Landline or unreachable carrier"),
    ("failed", "30007", "failed", "Message filtered by the carrier"),
    ("failed", "21610", "failed", "Recipient has opted out"),
    ("failed", "30999", "failed", "Twilio error 30999"),
])
def test_failures_keep_the_code_and_say_what_it_means(client, company, twilio_status, code, state, error):
    recipient = _recipient(company, "SM" + "c" * 32)
    status(client, company, recipient.provider_id, twilio_status, error_code=code)
    assert _state(recipient) == (state, code, error)


def test_an_unknown_sid_is_accepted_and_changes_nothing(client, company):
    recipient = _recipient(company, "SM" + "d" * 32)
    response = status(client, company, "SM" + "e" * 32, "delivered")
    assert response.status_code == 200
    assert _state(recipient) == ("sent", "", "")


def test_another_companys_message_is_not_touched(client, company, other_company):
    theirs = _recipient(other_company, "SM" + "f" * 32)
    response = status(client, company, theirs.provider_id, "undelivered", error_code="30003")
    assert response.status_code == 200
    assert _state(theirs) == ("sent", "", "")


def test_a_status_with_a_bad_signature_is_refused(client, company):
    recipient = _recipient(company, "SM" + "9" * 32)
    assert status(client, company, recipient.provider_id, "delivered", token="x" * 32).status_code == 403
    assert _state(recipient) == ("sent", "", "")


def test_status_callback_url_is_the_public_status_hook(company):
    assert status_callback_url(company) == f"{BASE}/hooks/twilio/{company.slug}/status/"

