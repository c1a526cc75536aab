"""Text messages to customers, through the company's SMS provider (or the platform's).

`sms_send` is the one way to send: it records a SentMessage whatever happens and raises
SmsNotSent, with a message fit for the customer, when the provider refused or is away.

Providers:
- "outbox": nothing leaves the machine; the message is only recorded, which is what the
  operator's Sent messages page (Django admin) shows.
- "twilio": Twilio's Messages API (members/sms_twilio.py), with the company's own account
  when its Settings › Loyalty page says so, else the platform's TWILIO_* settings.

Which one a company uses: its LoyaltyPageSettings.sms_provider "twilio" means its own
account; "platform" means settings.SMS_PROVIDER (outbox or twilio).

The request to the provider is made while this runs: call it outside a database
transaction, so a failed message stays recorded and no row is held locked while it waits.
"""

import logging
from dataclasses import dataclass

from django.conf import settings

from stores.crypto import decrypt
from stores.errors import DomainError

from .models import LoyaltyPageSettings, SentMessage
from .sms_twilio import TwilioNotSent, twilio_message_send

log = logging.getLogger(__name__)

NOT_SENT_MESSAGE = "We couldn't send the text message right now. Try again in a few minutes."


class SmsNotSent(DomainError):
    """`message` is for the customer; `extra` has the provider's `provider_code` and
    `provider_error` for staff."""

    code = "sms_not_sent"
    status = 503


@dataclass(frozen=True)
class SmsRoute:
    """How one company's messages go out. `account` says whose Twilio account:
    "company" or "platform"."""

    provider: str
    account: str = "platform"
    account_sid: str = ""
    auth_token: str = ""
    sender: str = ""
    api_base: str = ""


def sms_route(company) -> SmsRoute:
    page = LoyaltyPageSettings.objects.filter(company=company).first()
    if page is not None and page.sms_provider == LoyaltyPageSettings.SmsProvider.TWILIO:
        return SmsRoute(provider="twilio", account="company", account_sid=page.twilio_account_sid,
                        auth_token=(decrypt(page.twilio_auth_token_encrypted)
                                    if page.twilio_auth_token_encrypted else ""),
                        sender=page.twilio_sender, api_base=settings.TWILIO_API_BASE)
    provider = getattr(settings, "SMS_PROVIDER", "outbox") or "outbox"
    if provider == "twilio":
        return SmsRoute(provider="twilio", account_sid=settings.TWILIO_ACCOUNT_SID,
                        auth_token=settings.TWILIO_AUTH_TOKEN, sender=settings.TWILIO_FROM,
                        api_base=settings.TWILIO_API_BASE)
    return SmsRoute(provider="outbox")


def sms_provider_name(company) -> str:
    return sms_route(company).provider


def _outbox(route: SmsRoute, *, to: str, body: str) -> str:
    return ""  # recorded by sms_send; no provider id


def _twilio(route: SmsRoute, *, to: str, body: str) -> str:
    return twilio_message_send(account_sid=route.account_sid, auth_token=route.auth_token,
                               sender=route.sender, to=to, body=body, api_base=route.api_base,
                               timeout=settings.SMS_TIMEOUT_SECONDS)


PROVIDERS = {"outbox": _outbox, "twilio": _twilio}


def sms_send(*, company, to: str, body: str, purpose: str) -> SentMessage:
    """Send `body` to `to` (E.164) for `company`; the recorded SentMessage. Raises
    SmsNotSent, after recording the message as failed with the provider's error."""
    try:
        route = sms_route(company)
    except DomainError as exc:  # the company's stored token no longer decrypts
        route, unreadable = SmsRoute(provider="twilio", account="company"), exc
    else:
        unreadable = None
    try:
        if unreadable is not None:
            raise TwilioNotSent(unreadable.code, unreadable.message)
        provider_id = PROVIDERS[route.provider](route, to=to, body=body)
    except TwilioNotSent as exc:
        error = f"{exc.code}: {exc.detail}"[:300]
        log.warning("SMS to %s for company %s not sent (%s, %s account): %s",
                    to[:-4] + "****", company.pk, route.provider, route.account, error)
        SentMessage.objects.create(company=company, to=to, body=body, purpose=purpose,
                                   provider=route.provider, state=SentMessage.State.FAILED, error=error)
        raise SmsNotSent(NOT_SENT_MESSAGE, extra={"provider_code": exc.code,
                                                  "provider_error": exc.detail}) from exc
    return SentMessage.objects.create(company=company, to=to, body=body, purpose=purpose,
                                      provider=route.provider, provider_id=provider_id or "",
                                      state=SentMessage.State.SENT)
