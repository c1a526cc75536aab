"""A sending process killed with SIGKILL mid-batch: the rest go out, nobody gets the
message twice, and the few it held are marked as interrupted (never sent again)."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time

import pytest
import time_machine
from django.conf import settings

from campaigns.models import CampaignRecipient
from campaigns.services import CLAIM_LEASE, campaign_send, campaign_send_batch
from members.twilio_fake import DEFAULT_FROM, FakeTwilio
from tests.childdb import database_url
from tests.factories import CompanyFactory

from .campaign_helpers import audience_of, consenting, open_all_day, sms_campaign

SENDER = """
import django, sys
django.setup()
from campaigns.services import campaign_send_batch
campaign_send_batch(campaign_id=int(sys.argv[1]), budget_seconds=120, batch_size=4, threads=2)
"""


@pytest.mark.django_db(transaction=True)
def test_killed_sender_resumes_without_duplicates(outbound_allow):
    fake = FakeTwilio(delay_seconds=0.15).start()
    try:
        outbound_allow(fake.url)
        company = CompanyFactory()
        open_all_day(company)
        people = consenting(company, 24)
        campaign = sms_campaign(company, audience_of(company, people))
        env = os.environ | {
            "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
            "PYTHONPATH": str(settings.BASE_DIR),
            "DJANGO_SETTINGS_MODULE": "config.settings", "SMS_PROVIDER": "twilio",
            "TWILIO_ACCOUNT_SID": fake.account_sid, "TWILIO_AUTH_TOKEN": fake.auth_token,
            "TWILIO_FROM": DEFAULT_FROM, "TWILIO_API_BASE": fake.url, "SMS_TIMEOUT_SECONDS": "60",
            "OUTBOUND_ALLOW_HOSTS": fake.url.removeprefix("http://")}
        campaign_send(campaign=campaign, audit=None)
        proc = subprocess.Popen([sys.executable, "-c", SENDER, str(campaign.pk)], env=env,
                                cwd=settings.BASE_DIR)
        deadline = time.monotonic() + 60
        while len(fake.messages) < 6 and time.monotonic() < deadline:
            time.sleep(0.01)
        # Twilio turns slow: the sender waits on its batch in hand when it is killed.
        fake.delay_seconds = 30
        in_hand = CampaignRecipient.objects.filter(campaign=campaign, state="claimed")
        while not in_hand.exists() and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.3)
        os.kill(proc.pid, signal.SIGKILL)
        fake.delay_seconds = 0
        proc.wait()
        before = len(fake.messages)
        assert 6 <= before < 24, "the sender was killed mid-campaign"
        claimed = CampaignRecipient.objects.filter(campaign=campaign, state="claimed").count()
        assert 1 <= claimed <= 8  # the batch in flight and the next one, claimed while it went

        with override_twilio(fake):
            # A restarted worker leaves the dead one's batch alone until its lease runs out...
            campaign_send_batch(campaign_id=campaign.pk, budget_seconds=10)
            assert CampaignRecipient.objects.filter(campaign=campaign, state="claimed").count() == claimed
            # ...then marks it interrupted, and never sends it again.
            with time_machine.travel(dt.datetime.now(dt.UTC) + CLAIM_LEASE + dt.timedelta(seconds=5)):
                assert campaign_send_batch(campaign_id=campaign.pk, budget_seconds=10)[0] == "done"

        received = {}
        for message in fake.messages:
            received[message["to"]] = received.get(message["to"], 0) + 1
        assert set(received.values()) == {1}, "nobody got the message twice"
        rows = CampaignRecipient.objects.filter(campaign=campaign)
        interrupted = rows.filter(state="failed", error_code="interrupted")
        assert interrupted.count() == claimed
        assert rows.filter(state="sent").count() == 24 - claimed
        assert {r.to for r in rows.filter(state="sent")} <= set(received)
    finally:
        fake.close()


def override_twilio(fake):
    from django.test import override_settings

    return override_settings(SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=fake.account_sid,
                             TWILIO_AUTH_TOKEN=fake.auth_token, TWILIO_FROM=DEFAULT_FROM,
                             TWILIO_API_BASE=fake.url, SMS_TIMEOUT_SECONDS=2)
