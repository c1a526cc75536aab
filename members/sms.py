"""Text messages to customers, through the company's SMS provider (or the platform's).

`sms_send` is the one way to send: it records a SentMessage whatever happens and raises
SmsNotSent, with a message fit for the customer, when the provider refused or is away.
Providers: "outbox" (nothing leaves the machine: the message is only recorded, which is what
the operator's Sent messages page shows) and, added with their settings, real ones."""

import logging

from django.conf import settings

from stores.errors import DomainError

from .models import SentMessage

log = logging.getLogger(__name__)


class SmsNotSent(DomainError):
    code = "sms_not_sent"


def _outbox(*, company, to: str, body: str) -> str:
    return ""  # recorded below; no provider id


PROVIDERS = {"outbox": _outbox}


def sms_provider_name(company) -> str:
    return getattr(settings, "SMS_PROVIDER", "outbox") or "outbox"


def sms_send(*, company, to: str, body: str, purpose: str) -> SentMessage:
    provider = sms_provider_name(company)
    send = PROVIDERS[provider]
    try:
        provider_id = send(company=company, to=to, body=body)
    except SmsNotSent as refused:
        SentMessage.objects.create(company=company, to=to, body=body, purpose=purpose, provider=provider,
                                   state=SentMessage.State.FAILED, error=refused.message[:300])
        raise
    return SentMessage.objects.create(company=company, to=to, body=body, purpose=purpose, provider=provider,
                                      provider_id=provider_id or "", state=SentMessage.State.SENT)
