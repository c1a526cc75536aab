import pytest

from campaigns.smtp_fake import SmtpFake


@pytest.fixture
def smtp_fake(settings):
    """A local mail server (campaigns/smtp_fake.py) on free ports, and Django's email going
    to it through the SMTP backend: `smtp_fake.sent_to(address)` is what it received,
    `smtp_fake.refuse(451)` makes it refuse mail."""
    fake = SmtpFake().start()
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = fake.smtp_host, fake.smtp_port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = settings.EMAIL_USE_SSL = False
    settings.EMAIL_TIMEOUT = 5
    yield fake
    fake.close()
