"""Text messages go out through Twilio's Messages API (a local fake over real HTTP here), or
stay in the outbox; a provider that refuses, is down or is slow leaves a failed
SentMessage and a clear SmsNotSent for the customer."""

import base64
import json
import re
import socket
import time
import urllib.request

import pytest
from django.test import override_settings

from members.models import LoyaltyPageSettings, SentMessage
from members.sms import NOT_SENT_MESSAGE, SmsNotSent, sms_send
from members.twilio_fake import DEFAULT_FROM, FakeTwilio
from stores.crypto import encrypt

from . import sms_fixtures

twilio_server = sms_fixtures.twilio_server

pytestmark = pytest.mark.django_db

TO = "+13035550142"


def test_a_message_reaches_twilio_with_its_form_fields_and_basic_auth(company, twilio_server):
    sent = sms_send(company=company, to=TO, body="Your code is 123456", purpose="sign_in")

    [(method, path, form, authorization)] = twilio_server.requests
    assert (method, path) == ("POST", f"/2010-04-01/Accounts/{twilio_server.account_sid}/Messages.json")
    assert form == {"To": TO, "From": DEFAULT_FROM, "Body": "Your code is 123456"}
    user, password = base64.b64decode(authorization.removeprefix("Basic ")).decode().split(":")
    assert (user, password) == (twilio_server.account_sid, twilio_server.auth_token)
    # the message is recorded as sent, with the sid Twilio gave it
    [message] = twilio_server.messages
    assert re.fullmatch(r"SM[0-9a-f]{32}", message["sid"]) and message["status"] == "queued"
    sent.refresh_from_db()
    assert (sent.state, sent.provider, sent.provider_id, sent.to, sent.purpose) == (
        "sent", "twilio", message["sid"], TO, "sign_in")


def test_the_fakes_outbox_is_readable_over_http(company, twilio_server):
    sms_send(company=company, to=TO, body="one", purpose="test")
    sms_send(company=company, to="+13035550143", body="two", purpose="test")
    outbox = f"{twilio_server.url}/fake/messages.json?to=%2B13035550142"
    with urllib.request.urlopen(outbox, timeout=5) as answer:
        messages = json.load(answer)["messages"]
    assert [m["body"] for m in messages] == ["one"]


def test_a_messaging_service_sender_is_sent_as_such(company, twilio_server):
    service = "MG" + "ab" * 16
    with override_settings(TWILIO_FROM=service):
        sms_send(company=company, to=TO, body="hi", purpose="test")
    [(_, _, form, _)] = twilio_server.requests
    assert form == {"To": TO, "MessagingServiceSid": service, "Body": "hi"}
    assert twilio_server.messages[0]["status"] == "accepted"


def test_a_wrong_token_fails_with_twilios_message(company, twilio_server):
    with (override_settings(TWILIO_AUTH_TOKEN="not-the-token-0000000000000000000"),
          pytest.raises(SmsNotSent) as refused):
        sms_send(company=company, to=TO, body="Your code is 123456", purpose="sign_in")
    assert refused.value.message == NOT_SENT_MESSAGE
    assert refused.value.extra == {"provider_code": "20003", "provider_error": "Authenticate"}
    failed = SentMessage.objects.get()
    assert (failed.state, failed.provider, failed.provider_id, failed.error) == (
        "failed", "twilio", "", "20003: Authenticate")
    assert twilio_server.messages == []


def test_an_invalid_number_is_refused_by_twilio(company, twilio_server):
    with pytest.raises(SmsNotSent):
        sms_send(company=company, to="3035550142", body="hi", purpose="test")
    assert SentMessage.objects.get().error == "21211: Invalid 'To' Phone Number: 3035550142"


def test_twilio_down_is_not_sent_at_once(company, twilio_server, outbound_allow):
    # a port nobody listens on
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outbound_allow(f"127.0.0.1:{port}")
    started = time.monotonic()
    with (override_settings(TWILIO_API_BASE=f"http://127.0.0.1:{port}", SMS_TIMEOUT_SECONDS=5),
          pytest.raises(SmsNotSent) as refused):
        sms_send(company=company, to=TO, body="hi", purpose="sign_in")
    assert time.monotonic() - started < 6
    assert refused.value.message == NOT_SENT_MESSAGE
    failed = SentMessage.objects.get()
    assert failed.state == "failed" and failed.error.startswith("unreachable: ")


def test_a_slow_twilio_times_out(company, twilio_server):
    twilio_server.delay_seconds = 2  # past SMS_TIMEOUT_SECONDS=1
    started = time.monotonic()
    with pytest.raises(SmsNotSent):
        sms_send(company=company, to=TO, body="hi", purpose="sign_in")
    assert time.monotonic() - started < 2
    assert SentMessage.objects.get().error == "timeout: Twilio did not answer within 1 seconds."


def test_a_twilio_outage_is_not_sent(company, twilio_server):
    twilio_server.fail_next(status=503, code=20503, message="Service Unavailable")
    with pytest.raises(SmsNotSent):
        sms_send(company=company, to=TO, body="hi", purpose="sign_in")
    assert SentMessage.objects.get().error == "20503: Service Unavailable"


def test_twilio_at_a_private_address_not_allow_listed_is_refused(company, settings):
    fake = FakeTwilio().start()  # NOT allow-listed
    try:
        settings.SMS_PROVIDER, settings.TWILIO_API_BASE = "twilio", fake.url
        settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = fake.account_sid, fake.auth_token
        settings.TWILIO_FROM = DEFAULT_FROM
        with pytest.raises(SmsNotSent):
            sms_send(company=company, to=TO, body="hi", purpose="sign_in")
        assert fake.requests == []
        assert SentMessage.objects.get().error.startswith("outbound_refused: ")
    finally:
        fake.close()


def test_the_outbox_only_records(company, settings):
    settings.SMS_PROVIDER = "outbox"
    sent = sms_send(company=company, to=TO, body="hi", purpose="test")
    assert (sent.state, sent.provider, sent.provider_id) == ("sent", "outbox", "")


def test_a_companys_own_twilio_account_is_used_over_the_platforms(company, other_company, twilio_server):
    own_sid, own_token = "AC" + "12" * 16, "own-token-of-green-leaf-000000000"
    twilio_server.add_account(own_sid, own_token)
    LoyaltyPageSettings.objects.create(
        company=company, sms_provider="twilio", twilio_account_sid=own_sid, twilio_sender="+17205550199",
        twilio_auth_token_encrypted=encrypt(own_token), twilio_auth_token_last4=own_token[-4:])

    sms_send(company=company, to=TO, body="from green leaf", purpose="test")
    sms_send(company=other_company, to=TO, body="from the platform", purpose="test")

    first, second = twilio_server.messages
    assert (first["account_sid"], first["from"], first["body"]) == (
        own_sid, "+17205550199", "from green leaf")
    assert (second["account_sid"], second["from"]) == (twilio_server.account_sid, DEFAULT_FROM)


def test_a_company_on_the_platforms_provider_uses_the_global_setting(company, settings):
    LoyaltyPageSettings.objects.create(company=company, sms_provider="platform")
    settings.SMS_PROVIDER = "outbox"
    assert sms_send(company=company, to=TO, body="hi", purpose="test").provider == "outbox"


def test_a_company_twilio_without_credentials_is_not_sent(company, twilio_server):
    LoyaltyPageSettings.objects.create(company=company, sms_provider="twilio")
    with pytest.raises(SmsNotSent):
        sms_send(company=company, to=TO, body="hi", purpose="test")
    assert SentMessage.objects.get().error.startswith("not_configured: ")
    assert twilio_server.requests == []


def test_the_operators_sent_messages_page_lists_twilio_messages(client, company, twilio_server,
                                                                 django_user_model):
    operator = django_user_model.objects.create_superuser("operator", "op@example.com", "x-Pass-12345")
    sms_send(company=company, to=TO, body="Your code is 654321", purpose="sign_in")
    client.force_login(operator)
    html = client.get("/admin/members/sentmessage/").content.decode()
    assert "Your code is 654321" in html and "twilio" in html


def test_a_company_token_that_no_longer_decrypts_is_not_sent(company, twilio_server):
    LoyaltyPageSettings.objects.create(
        company=company, sms_provider="twilio", twilio_account_sid="AC" + "12" * 16,
        twilio_sender="+17205550199", twilio_auth_token_encrypted="not-a-fernet-token")
    with pytest.raises(SmsNotSent) as refused:
        sms_send(company=company, to=TO, body="hi", purpose="test")
    assert refused.value.message == NOT_SENT_MESSAGE
    assert SentMessage.objects.get().error.startswith("secret_unreadable: ")
    assert twilio_server.requests == []
