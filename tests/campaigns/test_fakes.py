"""The local stand-ins campaigns are tested and demonstrated with, over real sockets: the
mail server, and the Twilio fake's status callbacks and customer replies reaching a live
server."""

import json
import smtplib
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest
from django.core.mail import EmailMultiAlternatives, send_mail
from django.test import override_settings
from django.utils import timezone

from campaigns.hooks import inbound_url, status_callback_url
from campaigns.models import Campaign, CampaignRecipient, InboundMessage
from campaigns.smtp_fake import free_port
from config import launcher
from members.sms import sms_route
from members.sms_twilio import twilio_client
from members.twilio_fake import DEFAULT_FROM, FakeTwilio
from tests.factories import PersonaFactory

# --- the mail server -----------------------------------------------------------------------------


def _outbox(fake, to=""):
    with urllib.request.urlopen(f"{fake.url}/messages.json?to={to}", timeout=5) as answer:
        return json.load(answer)["messages"]


def test_the_smtp_fake_keeps_what_djangos_smtp_backend_sends(smtp_fake):
    message = EmailMultiAlternatives("Spring sale", "20% off this weekend",
                                     "Green Leaf <news@greenleaf.example>", ["ana@example.com"],
                                     headers={"List-Unsubscribe": "<https://x.example/u/1/>"})
    message.attach_alternative("<p>20% off <b>this weekend</b></p>", "text/html")
    assert message.send() == 1
    send_mail("Other", "for bo", "news@greenleaf.example", ["bo@example.com"])

    [received] = _outbox(smtp_fake, "ana@example.com")
    assert (received["from"], received["to"], received["subject"]) == (
        "news@greenleaf.example", ["ana@example.com"], "Spring sale")
    assert received["text"].strip() == "20% off this weekend"
    assert received["html"].strip() == "<p>20% off <b>this weekend</b></p>"
    assert received["headers"]["List-Unsubscribe"] == "<https://x.example/u/1/>"
    assert [m["subject"] for m in _outbox(smtp_fake)] == ["Other", "Spring sale"]  # newest first


@pytest.mark.parametrize("code", [421, 451])
def test_the_smtp_fake_refuses_when_told(smtp_fake, code):
    smtp_fake.refuse(code)
    with pytest.raises(smtplib.SMTPException):
        send_mail("Spring sale", "20% off", "news@greenleaf.example", ["ana@example.com"])
    assert smtp_fake.sent_to() == []
    smtp_fake.refuse(None)
    assert send_mail("Spring sale", "20% off", "news@greenleaf.example", ["ana@example.com"]) == 1
    assert len(smtp_fake.sent_to("ANA@example.com")) == 1


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_make_run_starts_the_mail_server_and_points_email_at_it(monkeypatch, settings):
    smtp_port, outbox_port = free_port(), free_port()
    monkeypatch.setattr(launcher, "DEMO_SMTP_PORT", smtp_port)
    monkeypatch.setattr(launcher, "DEMO_SMTP_OUTBOX_PORT", outbox_port)
    env = {}
    command = launcher.demo_email_env(env)
    assert env == {"EMAIL_HOST": "127.0.0.1", "EMAIL_PORT": str(smtp_port)}
    fake = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_listening(outbox_port)
        settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
        settings.EMAIL_HOST, settings.EMAIL_PORT = env["EMAIL_HOST"], int(env["EMAIL_PORT"])
        send_mail("Spring sale", "20% off", "news@greenleaf.example", ["ana@example.com"])
        with urllib.request.urlopen(f"http://127.0.0.1:{outbox_port}/messages.json", timeout=5) as answer:
            [message] = json.load(answer)["messages"]
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    assert (message["subject"], message["to"]) == ("Spring sale", ["ana@example.com"])


def test_make_run_leaves_a_chosen_mail_server_alone():
    env = {"EMAIL_HOST": "smtp.example.com"}
    assert launcher.demo_email_env(env) is None
    assert env == {"EMAIL_HOST": "smtp.example.com"}


# --- the Twilio fake -----------------------------------------------------------------------------

@pytest.fixture
def twilio(outbound_allow):
    fake = FakeTwilio(callback_delay_seconds=0.3).start()
    outbound_allow(fake.url)
    yield fake
    fake.close()


@pytest.fixture
def live_hooks(twilio, live_server):
    """The live server takes Twilio's webhooks for the platform's account, the fake's."""
    with override_settings(SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=twilio.account_sid,
                           TWILIO_AUTH_TOKEN=twilio.auth_token, TWILIO_FROM=DEFAULT_FROM,
                           TWILIO_API_BASE=twilio.url, PUBLIC_BASE_URL=live_server.url):
        yield live_server


def _client(fake):
    return twilio_client(account_sid=fake.account_sid, auth_token=fake.auth_token, api_base=fake.url)


def test_no_status_callback_asked_none_posted(twilio):
    twilio.callback_delay_seconds = 0
    _client(twilio).messages.create(to="+13035550142", body="hi", from_=DEFAULT_FROM)
    with pytest.raises(AssertionError):
        twilio.callbacks_wait(1, timeout=0.5)


def _recipient(company, persona):
    campaign, _ = Campaign.objects.get_or_create(company=company, name="Spring sale", defaults={
        "channel": "sms", "sms_body": "hi", "status": "sending", "queued_at": timezone.now()})
    return CampaignRecipient.objects.create(campaign=campaign, persona=persona, group="send",
                                            to=persona.phone, due_at=timezone.now(), state="claimed")


@pytest.mark.django_db(transaction=True)
def test_signed_status_callbacks_reach_the_live_server_and_move_recipients(twilio, live_hooks, company):
    twilio.undeliverable = {"+13035550199"}
    assert sms_route(company).auth_token == twilio.auth_token
    delivered = _recipient(company, PersonaFactory(company=company, phone="+13035550142"))
    failing = _recipient(company, PersonaFactory(company=company, phone="+13035550199"))
    client = _client(twilio)
    for recipient in (delivered, failing):
        message = client.messages.create(to=recipient.to, body="hi", from_=DEFAULT_FROM,
                                         status_callback=status_callback_url(company))
        CampaignRecipient.objects.filter(pk=recipient.pk).update(state="sent", provider_id=message.sid)

    callbacks = twilio.callbacks_wait(4)
    assert [outcome for _, _, outcome in callbacks] == [200, 200, 200, 200]  # the signatures passed
    statuses = {}
    for _, params, _ in callbacks:
        statuses.setdefault(params["To"], []).append(params["MessageStatus"])
    assert statuses == {"+13035550142": ["sent", "delivered"], "+13035550199": ["sent", "undelivered"]}
    delivered.refresh_from_db()
    failing.refresh_from_db()
    assert delivered.state == "delivered" and delivered.status_at is not None
    assert (failing.state, failing.error_code, failing.error) == (
        "undelivered", "30003", "Unreachable destination handset")


@pytest.mark.django_db(transaction=True)
def test_a_reply_through_the_fake_reaches_the_live_server(twilio, live_hooks, company):
    persona = PersonaFactory(company=company, phone="+13035550142", sms_opt_in=True)
    form = urllib.parse.urlencode({"From": persona.phone, "To": DEFAULT_FROM, "Body": "STOP",
                                   "Url": inbound_url(company)}).encode()
    with urllib.request.urlopen(f"{twilio.url}/fake/inbound", data=form, timeout=10) as answer:
        result = json.load(answer)

    assert result["status"] == 200 and result["content_type"].startswith("text/xml")
    assert "You're unsubscribed from Green Leaf texts." in result["body"]
    persona.refresh_from_db()
    assert persona.sms_opt_in is False
    assert InboundMessage.objects.get(company=company).sender == persona.phone
    # a webhook signed with another token is refused
    twilio.add_account("AC" + "77" * 16, "another-accounts-token-000000000")
    form = urllib.parse.urlencode({"From": persona.phone, "To": DEFAULT_FROM, "Body": "START",
                                   "Url": inbound_url(company), "AccountSid": "AC" + "77" * 16}).encode()
    with urllib.request.urlopen(f"{twilio.url}/fake/inbound", data=form, timeout=10) as answer:
        assert json.load(answer)["status"] == 403
    persona.refresh_from_db()
    assert persona.sms_opt_in is False


def test_the_outbox_still_lists_messages(twilio):
    _client(twilio).messages.create(to="+13035550142", body="hello", from_=DEFAULT_FROM)
    with urllib.request.urlopen(f"{twilio.url}/fake/messages.json?to=%2B13035550142", timeout=5) as answer:
        [message] = json.load(answer)["messages"]
    assert message["body"] == "hello"
