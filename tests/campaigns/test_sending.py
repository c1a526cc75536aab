"""Who receives a campaign, the holdout, the allowed hours, and sending through the Twilio
fake: once per persona whatever happens."""

import datetime as dt
import threading
import zoneinfo
from collections import Counter

import pytest
from django.db import connection
from django.utils import timezone

from campaigns.models import Campaign, CampaignRecipient
from campaigns.selectors import campaign_eligibility
from campaigns.services import (
    CampaignRefused,
    campaign_cancel,
    campaign_pause,
    campaign_queue,
    campaign_resume,
    campaign_send,
    campaign_send_batch,
)
from loyalty.models import ConsentRecord
from members.models import LoyaltyPageSettings
from tests.factories import CompanyFactory, PersonaFactory, RetailStoreFactory
from tests.members import sms_fixtures

from .campaign_helpers import audience_of, consenting, open_all_day, sms_campaign

twilio_server = sms_fixtures.twilio_server
S = CampaignRecipient.State


def _send_all(campaign):
    for _ in range(50):
        state, _wait = campaign_send_batch(campaign_id=campaign.pk, budget_seconds=5)
        if state in ("done", "stopped", "wait"):
            return state
    raise AssertionError("the campaign never finished")


def _received(fake) -> Counter:
    return Counter(m["to"] for m in fake.messages)


@pytest.mark.django_db
def test_each_exclusion_rule_keeps_its_persona_out(twilio_server):
    company = CompanyFactory()
    open_all_day(company, sms_cap_count=2, sms_cap_days=7)
    LoyaltyPageSettings.objects.create(company=company, minimum_age=21, minimum_ages={"MI": 18})
    ok = consenting(company, 3)
    no_consent = PersonaFactory(company=company, sms_opt_in=False)
    withdrawn = PersonaFactory(company=company, sms_opt_in=False)
    for granted in (True, False):
        ConsentRecord.objects.create(company=company, persona=withdrawn, channel="sms", granted=granted,
                                     wording="Texts from us")
    today = timezone.localdate(timezone=zoneinfo.ZoneInfo(company.timezone))
    under_age = PersonaFactory(company=company, sms_opt_in=True, market="CO",
                               birth_date=today.replace(year=today.year - 20))
    michigan_19 = PersonaFactory(company=company, sms_opt_in=True, market="MI",
                                 birth_date=today.replace(year=today.year - 19))
    bad_phone = PersonaFactory(company=company, sms_opt_in=True, phone="303-555")
    no_phone = PersonaFactory(company=company, sms_opt_in=True, phone="")
    same_phone = PersonaFactory(company=company, sms_opt_in=True, phone=ok[0].phone)
    capped = PersonaFactory(company=company, sms_opt_in=True)
    for days in (1, 3):
        other = Campaign.objects.create(company=company, name=f"Earlier {days}", channel="sms", status="sent",
                                        queued_at=timezone.now(), sms_body="Hi")
        CampaignRecipient.objects.create(campaign=other, persona=capped, group="send", to=capped.phone,
                                         time_zone="UTC", due_at=timezone.now(), state="delivered",
                                         sent_at=timezone.now() - dt.timedelta(days=days))
    everyone = [*ok, no_consent, withdrawn, under_age, michigan_19, bad_phone, no_phone, same_phone, capped]
    campaign = sms_campaign(company, audience_of(company, everyone))

    seen = campaign_eligibility(campaign=campaign)
    assert (seen.audience, seen.receive, seen.holdout) == (len(everyone), 4, 0)
    assert seen.exclusions == {"no_consent": 2, "under_age": 1, "no_contact": 2, "duplicate_contact": 1,
                               "over_cap": 1}
    assert seen.reasons("sms")[0] == ("no SMS consent", 2)

    campaign_send(campaign=campaign, audit=None)
    assert _send_all(campaign) == "done"
    received = set(_received(twilio_server))
    assert received == {p.phone for p in [*ok, michigan_19]}
    campaign.refresh_from_db()
    assert campaign.status == "sent" and campaign.recipient_count == 4
    assert campaign.exclusions["over_cap"] == 1


@pytest.mark.django_db
def test_holdout_is_drawn_recorded_and_never_sent(twilio_server):
    company = CompanyFactory()
    open_all_day(company)
    people = consenting(company, 40)
    campaign = sms_campaign(company, audience_of(company, people), holdout=10)
    campaign_send(campaign=campaign, audit=None)
    _send_all(campaign)
    rows = CampaignRecipient.objects.filter(campaign=campaign)
    held = {r.persona.phone for r in rows.filter(group="holdout").select_related("persona")}
    assert len(held) == 4 and rows.filter(group="holdout", state="held_out").count() == 4
    assert not held & set(_received(twilio_server))
    assert len(_received(twilio_server)) == 36


@pytest.mark.django_db
def test_no_holdout_sends_to_all(twilio_server):
    company = CompanyFactory()
    open_all_day(company)
    campaign = sms_campaign(company, audience_of(company, consenting(company, 7)), holdout=0)
    campaign_send(campaign=campaign, audit=None)
    _send_all(campaign)
    assert len(_received(twilio_server)) == 7


@pytest.mark.django_db
def test_message_merges_fields_and_ends_with_opt_out_line(twilio_server):
    company = CompanyFactory()
    open_all_day(company, opt_out_line="Reply STOP to opt out")
    [persona] = consenting(company, 1, first_name="Dana")
    campaign = sms_campaign(company, audience_of(company, [persona]),
                            body="Hi {first_name}, you have {points} points")
    campaign_send(campaign=campaign, audit=None)
    _send_all(campaign)
    [message] = twilio_server.messages
    assert message["body"].startswith("Hi Dana, you have 0 points")
    assert message["body"].rstrip().endswith("Reply STOP to opt out")
    row = CampaignRecipient.objects.get(campaign=campaign)
    assert row.state == "sent" and row.provider_id.startswith("SM") and row.sent_at


@pytest.mark.django_db
def test_messages_wait_for_the_allowed_hours_in_the_store_time_zone():
    company = CompanyFactory(timezone="America/Denver")
    open_all_day(company, send_window_start=dt.time(9), send_window_end=dt.time(20))
    ny_store = RetailStoreFactory(company=company, timezone="America/New_York")
    denver = PersonaFactory(company=company, sms_opt_in=True)
    new_york = PersonaFactory(company=company, sms_opt_in=True, favourite_store=ny_store)
    campaign = sms_campaign(company, audience_of(company, [denver, new_york]))
    campaign.status = "scheduled"
    campaign.save()
    # 21:30 in Denver = 23:30 in New York: both wait for 09:00 the next day, each in their own zone.
    now = dt.datetime(2026, 3, 10, 21, 30, tzinfo=zoneinfo.ZoneInfo("America/Denver"))
    campaign_queue(campaign_id=campaign.pk, now=now)
    due = {r.persona_id: r.due_at for r in CampaignRecipient.objects.filter(campaign=campaign)}
    assert due[denver.pk] == dt.datetime(2026, 3, 11, 9, 0, tzinfo=zoneinfo.ZoneInfo("America/Denver"))
    assert due[new_york.pk] == dt.datetime(2026, 3, 11, 9, 0, tzinfo=zoneinfo.ZoneInfo("America/New_York"))
    # Nothing is due yet: the worker comes back when the first one is.
    state, wait = campaign_send_batch(campaign_id=campaign.pk)
    assert state == "wait" and wait > 0


@pytest.mark.django_db
def test_inside_the_hours_a_message_is_due_at_once():
    company = CompanyFactory(timezone="America/Denver")
    open_all_day(company, send_window_start=dt.time(9), send_window_end=dt.time(20))
    persona = PersonaFactory(company=company, sms_opt_in=True)
    campaign = sms_campaign(company, audience_of(company, [persona]), status="scheduled")
    now = dt.datetime(2026, 3, 10, 8, 59, tzinfo=zoneinfo.ZoneInfo("America/Denver"))
    campaign_queue(campaign_id=campaign.pk, now=now)
    row = CampaignRecipient.objects.get(campaign=campaign)
    assert row.due_at == now.replace(hour=9, minute=0)
    Campaign.objects.filter(pk=campaign.pk).update(status="scheduled")
    CampaignRecipient.objects.filter(campaign=campaign).delete()
    campaign_queue(campaign_id=campaign.pk, now=now.replace(hour=12))
    assert CampaignRecipient.objects.get(campaign=campaign).due_at == now.replace(hour=12)


@pytest.mark.django_db
def test_stop_mid_campaign_stops_the_rest(twilio_server):
    company = CompanyFactory()
    open_all_day(company)
    people = consenting(company, 6)
    campaign = sms_campaign(company, audience_of(company, people))
    campaign_send(campaign=campaign, audit=None)
    campaign_send_batch(campaign_id=campaign.pk, batch_size=2, budget_seconds=0)  # one batch of two
    sent = set(_received(twilio_server))
    assert len(sent) == 2
    stopper = next(p for p in people if p.phone not in sent)
    from members.services_privacy import consent_stop

    consent_stop(company=company, persona_id=stopper.pk, channel="sms")
    _send_all(campaign)
    assert stopper.phone not in _received(twilio_server)
    row = CampaignRecipient.objects.get(campaign=campaign, persona=stopper)
    assert row.state == "skipped" and row.error_code == "no_consent"
    assert len(_received(twilio_server)) == 5


@pytest.mark.django_db
def test_sending_twice_is_refused_and_sends_once(twilio_server):
    company = CompanyFactory()
    open_all_day(company)
    campaign = sms_campaign(company, audience_of(company, consenting(company, 3)))
    campaign_send(campaign=campaign, audit=None)
    with pytest.raises(CampaignRefused, match="already sending"):
        campaign_send(campaign=campaign, audit=None)
    _send_all(campaign)
    _send_all(campaign)
    assert sorted(_received(twilio_server).values()) == [1, 1, 1]


@pytest.mark.django_db(transaction=True)
def test_twenty_clicks_and_two_workers_at_once_send_once(twilio_server):
    company = CompanyFactory()
    open_all_day(company)
    people = consenting(company, 30)
    campaign = sms_campaign(company, audience_of(company, people))
    barrier, outcomes = threading.Barrier(20), []

    def click():
        try:
            barrier.wait()
            campaign_send(campaign=campaign, audit=None)
            outcomes.append("sent")
        except CampaignRefused:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=click) for _ in range(20)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert outcomes.count("sent") == 1 and outcomes.count("refused") == 19
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 30

    workers = threading.Barrier(2)

    def work():
        try:
            workers.wait()
            while campaign_send_batch(campaign_id=campaign.pk, batch_size=4, budget_seconds=2)[0] == "more":
                pass
        finally:
            connection.close()

    threads = [threading.Thread(target=work) for _ in range(2)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    received = _received(twilio_server)
    assert len(received) == 30 and set(received.values()) == {1}
    assert CampaignRecipient.objects.filter(campaign=campaign, state="sent").count() == 30


@pytest.mark.django_db
def test_provider_trouble_is_retried_later_and_a_refusal_is_final(twilio_server):
    company = CompanyFactory()
    open_all_day(company)
    people = consenting(company, 2)
    campaign = sms_campaign(company, audience_of(company, people))
    campaign_send(campaign=campaign, audit=None)
    twilio_server.fail_next(1, status=503, code=20503, message="Service unavailable")
    campaign_send_batch(campaign_id=campaign.pk, batch_size=1, budget_seconds=0, threads=1)
    row = CampaignRecipient.objects.filter(campaign=campaign).exclude(attempts=0).get()
    assert row.state == "pending" and row.error_code == "20503" and row.due_at > timezone.now()
    twilio_server.fail_next(1, status=400, code=21211, message="Invalid 'To' Phone Number")
    campaign_send_batch(campaign_id=campaign.pk, batch_size=1, budget_seconds=0, threads=1)
    other = CampaignRecipient.objects.exclude(pk=row.pk).get(campaign=campaign)
    assert other.state == "failed" and other.error_code == "21211" and "Invalid" in other.error
    # The retry comes when due, and goes.
    CampaignRecipient.objects.filter(pk=row.pk).update(due_at=timezone.now())
    _send_all(campaign)
    row.refresh_from_db()
    assert row.state == "sent" and row.attempts == 2


@pytest.mark.django_db
def test_pause_resume_and_cancel(twilio_server, django_capture_on_commit_callbacks):
    company = CompanyFactory()
    open_all_day(company)
    campaign = sms_campaign(company, audience_of(company, consenting(company, 6)))
    campaign_send(campaign=campaign, audit=None)
    campaign_pause(campaign=campaign, audit=None)
    assert campaign_send_batch(campaign_id=campaign.pk) == ("stopped", None)
    assert not twilio_server.messages
    campaign_resume(campaign=campaign, audit=None)
    campaign_send_batch(campaign_id=campaign.pk, batch_size=2, budget_seconds=0)
    campaign_cancel(campaign=campaign, audit=None)
    assert campaign_send_batch(campaign_id=campaign.pk) == ("stopped", None)
    assert len(twilio_server.messages) == 2
    assert CampaignRecipient.objects.filter(campaign=campaign, state="cancelled").count() == 4
    with pytest.raises(CampaignRefused):
        campaign_resume(campaign=campaign, audit=None)


@pytest.mark.django_db
def test_a_campaign_running_late_waits_for_the_next_morning(twilio_server):
    import time_machine

    company = CompanyFactory(timezone="America/Denver")
    open_all_day(company, send_window_start=dt.time(9), send_window_end=dt.time(20))
    ny_store = RetailStoreFactory(company=company, timezone="America/New_York")
    denver = PersonaFactory(company=company, sms_opt_in=True)
    new_york = PersonaFactory(company=company, sms_opt_in=True, favourite_store=ny_store)
    campaign = sms_campaign(company, audience_of(company, [denver, new_york]), status="scheduled")
    denver_tz = zoneinfo.ZoneInfo("America/Denver")
    campaign_queue(campaign_id=campaign.pk, now=dt.datetime(2026, 3, 10, 12, 0, tzinfo=denver_tz))
    campaign_pause(campaign=campaign, audit=None)
    # Resumed at 18:30 in Denver: 20:30 in New York, past its hours; Denver's still open.
    with time_machine.travel(dt.datetime(2026, 3, 10, 18, 30, tzinfo=denver_tz), tick=False):
        campaign_resume(campaign=campaign, audit=None)
        state, _wait = campaign_send_batch(campaign_id=campaign.pk)
    assert state == "wait"
    assert set(_received(twilio_server)) == {denver.phone}
    row = CampaignRecipient.objects.get(campaign=campaign, persona=new_york)
    assert row.state == "pending"
    assert row.due_at == dt.datetime(2026, 3, 11, 9, 0, tzinfo=zoneinfo.ZoneInfo("America/New_York"))


@pytest.mark.django_db
def test_a_status_callback_before_the_sid_is_stored_is_kept(twilio_server):
    from campaigns import hooks
    from campaigns.services import _claim, _outcomes_write

    company = CompanyFactory()
    open_all_day(company)
    [persona] = consenting(company, 1)
    campaign = sms_campaign(company, audience_of(company, [persona]))
    campaign_send(campaign=campaign, audit=None)
    [(recipient_id, _persona, _to, _attempts)] = _claim(campaign.pk, timezone.now(), 10)
    # Twilio answered and its "delivered" callback comes before the sender writes the sid.
    url = hooks.status_callback_url(company, recipient_id)
    assert url.endswith(f"?r={hooks.base36(recipient_id)}")
    delivered = {"MessageSid": "SM" + "a" * 32, "MessageStatus": "delivered"}
    changed = hooks.delivery_status_record(company=company, recipient_ref=hooks.base36(recipient_id),
                                           params=delivered)
    assert changed == 1
    _outcomes_write([(recipient_id, "sent", "SM" + "a" * 32, "", "", None)], timezone.now())
    row = CampaignRecipient.objects.get(pk=recipient_id)
    assert row.state == "delivered" and row.sent_at and row.provider_id == "SM" + "a" * 32
    # Another company's callback naming this recipient changes nothing.
    other = CompanyFactory()
    failed = {"MessageSid": "SM" + "b" * 32, "MessageStatus": "failed"}
    assert hooks.delivery_status_record(company=other, recipient_ref=hooks.base36(recipient_id),
                                        params=failed) == 0


@pytest.mark.django_db(transaction=True)
def test_fast_status_callbacks_reach_every_message(twilio_server, live_server, settings):
    settings.PUBLIC_BASE_URL = live_server.url
    twilio_server.callback_delay_seconds = 0
    company = CompanyFactory()
    open_all_day(company)
    campaign = sms_campaign(company, audience_of(company, consenting(company, 12)))
    campaign_send(campaign=campaign, audit=None)
    # One at a time, slowly: the first messages' callbacks come while the batch is still going.
    twilio_server.delay_seconds = 0.1
    campaign_send_batch(campaign_id=campaign.pk, threads=1)
    twilio_server.callbacks_wait(24)
    import time

    for _ in range(100):
        if CampaignRecipient.objects.filter(campaign=campaign, state="delivered").count() == 12:
            break
        time.sleep(0.05)
    rows = CampaignRecipient.objects.filter(campaign=campaign)
    assert rows.filter(state="delivered").count() == 12
    assert not rows.filter(sent_at__isnull=True).exists()


@pytest.mark.django_db
@pytest.mark.parametrize("api_base", ["http://10.1.2.3:8766", "http://localhost:8766"])
def test_twilio_at_a_private_address_is_refused_not_called(settings, api_base):
    settings.SMS_PROVIDER, settings.TWILIO_API_BASE = "twilio", api_base
    settings.TWILIO_ACCOUNT_SID, settings.TWILIO_AUTH_TOKEN = "AC" + "1" * 32, "t" * 32
    settings.TWILIO_FROM = "+13035550100"
    company = CompanyFactory()
    open_all_day(company)
    campaign = sms_campaign(company, audience_of(company, consenting(company, 1)))
    campaign_send(campaign=campaign, audit=None)
    campaign_send_batch(campaign_id=campaign.pk, budget_seconds=0)
    row = CampaignRecipient.objects.get(campaign=campaign)
    assert row.state == "failed" and row.error_code == "outbound_refused", row.error
    assert "private or local address" in row.error


@pytest.mark.django_db
def test_sending_leaves_the_twilio_library_quiet(twilio_server, caplog):
    # Its clients log every request at INFO (URLs, headers): at a campaign's rate, a log
    # line storm that also took much of the sending CPU.
    company = CompanyFactory()
    open_all_day(company)
    campaign = sms_campaign(company, audience_of(company, consenting(company, 3)))
    campaign_send(campaign=campaign, audit=None)
    _send_all(campaign)
    assert len(twilio_server.messages) == 3
    assert not [r for r in caplog.records if r.name.startswith("twilio") and r.levelno < 30]


@pytest.mark.django_db
def test_twilio_too_slow_is_a_timeout_tried_again_later(twilio_server):
    company = CompanyFactory()
    open_all_day(company)
    campaign = sms_campaign(company, audience_of(company, consenting(company, 1)))
    campaign_send(campaign=campaign, audit=None)
    twilio_server.delay_seconds = 1.5  # the client waits 1 s (SMS_TIMEOUT_SECONDS)
    campaign_send_batch(campaign_id=campaign.pk, budget_seconds=0)
    row = CampaignRecipient.objects.get(campaign=campaign)
    assert row.state == "pending" and row.error_code == "timeout" and row.due_at > timezone.now()
    assert "did not answer within 1 seconds" in row.error
