"""The local Twilio fake as a pytest fixture, with the platform's settings pointed at it.

pytest finds fixtures by name in the test module, so bind it there (an assignment, not an
import, keeps ruff's F811 quiet):

    from . import sms_fixtures
    twilio_server = sms_fixtures.twilio_server
"""

import pytest
from django.test import override_settings

from members.twilio_fake import DEFAULT_FROM, FakeTwilio


@pytest.fixture
def twilio_server(outbound_allow):
    """A FakeTwilio on a free port, allow-listed for this test, and the platform's SMS
    settings sending through it (SMS_PROVIDER=twilio, TWILIO_* its account)."""
    fake = FakeTwilio().start()
    outbound_allow(fake.url)
    with override_settings(SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=fake.account_sid,
                           TWILIO_AUTH_TOKEN=fake.auth_token, TWILIO_FROM=DEFAULT_FROM,
                           TWILIO_API_BASE=fake.url, SMS_TIMEOUT_SECONDS=1):
        yield fake
    fake.close()
