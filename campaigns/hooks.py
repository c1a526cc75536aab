"""What the outside world sends back about campaigns: Twilio's webhooks (a customer's reply,
a message's delivery status), the email unsubscribe link and tracked link clicks; and the
URLs the messages carry to reach them (all absolute, on settings.PUBLIC_BASE_URL).

Twilio signs each webhook (X-Twilio-Signature) with the auth token of the account that
sent the message: the company's own or the platform's, whichever `members.sms.sms_route`
sends through. It signs the URL it was configured with, so the check is made against
PUBLIC_BASE_URL + the request's path, never against the Host header.
"""

from __future__ import annotations

import logging
import secrets
import string
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.core import signing
from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import transaction as db
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone
from twilio.request_validator import RequestValidator

from loyalty.models import ConsentRecord, Persona
from members.services_privacy import consent_restart, consent_stop
from members.sms import sms_route
from stores.errors import DomainError
from stores.models import Company

from .models import Campaign, CampaignLink, CampaignRecipient, InboundMessage, LinkClick

log = logging.getLogger(__name__)

# --- URLs in the messages -------------------------------------------------------------------------

UNSUBSCRIBE_SALT = "campaigns.unsubscribe"
BASE62 = string.digits + string.ascii_letters
LINK_CODE_LENGTH = 7


def public_url(path: str) -> str:
    return settings.PUBLIC_BASE_URL.rstrip("/") + path


def status_callback_url(company, recipient_id: int | None = None) -> str:
    """Where Twilio posts the delivery status of the company's messages (StatusCallback),
    naming the campaign recipient the message is for when there is one."""
    url = public_url(reverse("campaigns_public:twilio_status", args=[company.slug]))
    return f"{url}?r={base36(recipient_id)}" if recipient_id else url


def inbound_url(company) -> str:
    """Where Twilio posts the texts customers send to the company's number."""
    return public_url(reverse("campaigns_public:twilio_inbound", args=[company.slug]))


@dataclass(frozen=True)
class Unsubscribe:
    company_id: int
    persona_id: int
    recipient_id: int | None


def unsubscribe_token(*, company, persona_id: int, recipient_id: int | None = None) -> str:
    value = f"{company.pk}.{persona_id}.{recipient_id or ''}"
    return signing.Signer(salt=UNSUBSCRIBE_SALT).sign(value)


def unsubscribe_url(*, company, persona_id: int, recipient_id: int | None = None) -> str:
    """The email's unsubscribe link (and its List-Unsubscribe header): signed, so it is
    checked without a database lookup and cannot be made for another persona."""
    token = unsubscribe_token(company=company, persona_id=persona_id, recipient_id=recipient_id)
    return public_url(reverse("campaigns_public:unsubscribe", args=[token]))


def unsubscribe_read(token: str) -> Unsubscribe | None:
    """The unsubscribe link's contents, or None when it was not made here or was altered."""
    try:
        value = signing.Signer(salt=UNSUBSCRIBE_SALT).unsign(token)
        company_id, persona_id, recipient_id = value.split(".")
        return Unsubscribe(int(company_id), int(persona_id), int(recipient_id) if recipient_id else None)
    except (signing.BadSignature, ValueError):
        return None


def base36(number: int) -> str:
    digits = "0123456789abcdefghijklmnopqrstuvwxyz"
    out = ""
    while True:
        number, rest = divmod(number, 36)
        out = digits[rest] + out
        if not number:
            return out


def tracked_link_url(*, link: CampaignLink, recipient_id: int | None) -> str:
    """The short link that stands for `link.url` in a message: /l/<code>/<recipient in
    base 36>/, or /l/<code>/ for a preview."""
    if recipient_id is None:
        return public_url(reverse("campaigns_public:link_preview", args=[link.code]))
    return public_url(reverse("campaigns_public:link", args=[link.code, base36(recipient_id)]))


def tracked_link_maker(link: CampaignLink):
    """tracked_link_url for one link, made once: a function of the recipient id that only
    joins strings (the send loop makes one per message)."""
    preview = tracked_link_url(link=link, recipient_id=None)
    if tracked_link_url(link=link, recipient_id=35) != f"{preview}z/":  # the URL's shape changed
        return lambda recipient_id: tracked_link_url(link=link, recipient_id=recipient_id)
    return lambda recipient_id: preview if recipient_id is None else f"{preview}{base36(recipient_id)}/"


def link_for(*, campaign, url: str) -> CampaignLink:
    """The campaign's tracked link to `url`, made on first use with a new random code. Two
    workers asking at once get the same row (INSERT ... ON CONFLICT DO NOTHING, then read).
    A URL that is not http(s) is a DomainError: the link could not redirect to it."""
    try:
        URLValidator(schemes=["http", "https"])(url)
    except ValidationError:
        raise DomainError(f"Not a web address: {url[:100]}", code="invalid_link") from None
    for _ in range(10):
        link = CampaignLink.objects.filter(campaign=campaign, url=url).first()
        if link is not None:
            return link
        code = "".join(secrets.choice(BASE62) for _ in range(LINK_CODE_LENGTH))
        # A conflict is the same URL made by another worker (read it next time round) or,
        # rarely, a code already taken (try another).
        CampaignLink.objects.bulk_create([CampaignLink(campaign=campaign, url=url, code=code)],
                                         ignore_conflicts=True)
    raise RuntimeError("No free link code after 10 tries.")


# --- Twilio's webhooks ----------------------------------------------------------------------------

class HookRefused(DomainError):
    """The webhook is not Twilio's for this company: 403, nothing recorded."""

    code = "hook_refused"
    status = 403


def twilio_company(*, slug: str, full_path: str, params, signature: str) -> Company:
    """The company a Twilio webhook at `full_path` is for, once its signature is checked
    with the auth token that company's messages go out with. Raises HookRefused."""
    company = Company.objects.filter(slug=slug).first()
    reason = _twilio_refusal(company, full_path=full_path, params=params, signature=signature)
    if reason:
        # Often PUBLIC_BASE_URL differing from the URL set in Twilio: say which was checked.
        log.warning("Twilio webhook %s refused: %s", public_url(full_path), reason)
        raise HookRefused(reason)
    return company


def _twilio_refusal(company, *, full_path: str, params, signature: str) -> str:
    if company is None:
        return "Unknown company."
    try:
        route = sms_route(company)
    except DomainError:  # its stored token no longer decrypts
        return "No Twilio account."
    if route.provider != "twilio" or not route.auth_token:
        return "No Twilio account."
    if not signature:
        return "Missing signature."
    if not RequestValidator(route.auth_token).validate(public_url(full_path), params, signature):
        return "Bad signature."
    return ""


STOP_WORDS = {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT"}
START_WORDS = {"START", "UNSTOP", "YES"}
HELP_WORDS = {"HELP", "INFO"}


def keyword_of(body: str) -> tuple[str, str]:
    """(stop | start | help | "", the word as the customer wrote it in capitals)."""
    words = (body or "").strip().split(maxsplit=1)
    word = words[0].upper().strip(".!") if words else ""
    for keyword, group in (("stop", STOP_WORDS), ("start", START_WORDS), ("help", HELP_WORDS)):
        if word in group:
            return keyword, word
    return "", word


def inbound_receive(*, company, params, now: datetime | None = None) -> str | None:
    """A text a customer sent to the company's number: recorded once per MessageSid; STOP
    and its kin withdraw SMS consent of every persona of the company with that phone,
    START gives it back, HELP says who this is. The reply to send, or None (none, and
    none for a message seen before)."""
    now = now or timezone.now()
    sid = (params.get("MessageSid") or "")[:64]
    sender = (params.get("From") or "")[:20]
    to = params.get("To") or ""
    body = params.get("Body") or ""
    if not sid:
        return None
    keyword, word = keyword_of(body)
    with db.atomic():
        personas = list(Persona.objects.filter(company=company, phone=sender).exclude(phone="")
                        .order_by("id").values_list("id", flat=True)) if sender else []
        message, created = InboundMessage.objects.get_or_create(
            company=company, provider_id=sid,
            defaults={"sender": sender, "body": body[:1600], "keyword": keyword,
                      "persona_id": personas[0] if personas else None, "received_at": now})
        if not created:
            return None
        wording = f'Replied "{word}" by text message to {to or company.name}.'
        if keyword == "stop":
            for persona_id in personas:
                consent_stop(company=company, persona_id=persona_id, channel=ConsentRecord.Channel.SMS,
                             wording=wording, now=now)
            return (f"You're unsubscribed from {company.name} texts. No more messages will be sent. "
                    "Reply START to resubscribe.")
        if keyword == "start":
            for persona_id in personas:
                consent_restart(company=company, persona_id=persona_id, channel=ConsentRecord.Channel.SMS,
                                wording=wording, now=now)
            return f"You're resubscribed to {company.name} texts. Reply STOP to opt out."
        if keyword == "help":
            return f"{company.name}: Reply STOP to opt out."
    return None


# Twilio's MessageStatus -> the recipient's state, and the states each may follow: a status
# only moves a message forward, so a late "sent" after "delivered" changes nothing.
STATE_OF_STATUS = {
    "queued": CampaignRecipient.State.SENT, "accepted": CampaignRecipient.State.SENT,
    "sending": CampaignRecipient.State.SENT, "sent": CampaignRecipient.State.SENT,
    "delivered": CampaignRecipient.State.DELIVERED, "undelivered": CampaignRecipient.State.UNDELIVERED,
    "failed": CampaignRecipient.State.FAILED,
}
BEFORE_SENT = [CampaignRecipient.State.PENDING, CampaignRecipient.State.CLAIMED]
MAY_FOLLOW = {
    CampaignRecipient.State.SENT: BEFORE_SENT,
    CampaignRecipient.State.DELIVERED: [*BEFORE_SENT, CampaignRecipient.State.SENT],
    CampaignRecipient.State.UNDELIVERED: [*BEFORE_SENT, CampaignRecipient.State.SENT],
    CampaignRecipient.State.FAILED: [*BEFORE_SENT, CampaignRecipient.State.SENT],
}
ERROR_TEXT = {
    "30003": "Unreachable destination handset",
    "30005": "Unknown destination handset",
    "30006": "Landline or unreachable carrier",
    "30007": "Message filtered by the carrier",
    "21610": "Recipient has opted out",
}


def delivery_status_record(*, company, params, recipient_ref: str = "", now: datetime | None = None) -> int:
    """Twilio's status callback for one message: its recipient moves forward to the status.
    The recipient is the one the callback URL names (?r=<base 36 id>, set per message: a
    callback may come before the sender has stored the message's sid) or else the one with
    that MessageSid; in this company's campaigns only. The rows changed (0 or 1). One UPDATE
    guarded by the current state, so callbacks racing each other are safe."""
    sid = params.get("MessageSid") or ""
    state = STATE_OF_STATUS.get((params.get("MessageStatus") or "").lower())
    if not sid or state is None:
        return 0
    code = (params.get("ErrorCode") or "")[:32]
    changes = {"state": state, "status_at": now or timezone.now()}
    if state in (CampaignRecipient.State.UNDELIVERED, CampaignRecipient.State.FAILED):
        changes |= {"error_code": code,
                    "error": ERROR_TEXT.get(code, f"Twilio error {code}" if code else "Not delivered")}
    rows = CampaignRecipient.objects.filter(campaign__in=Campaign.objects.filter(company=company),
                                            state__in=MAY_FOLLOW[state])
    recipient_id = _base36_int(recipient_ref)
    if recipient_id is not None:
        rows = rows.filter(Q(provider_id="") | Q(provider_id=sid), pk=recipient_id)
        changes["provider_id"] = sid[:64]
    else:
        rows = rows.filter(provider_id=sid)
    return rows.update(**changes)


def _base36_int(value: str) -> int | None:
    try:
        number = int(value or "", 36)
    except ValueError:
        return None
    return number if 0 < number < 2**63 else None


# --- unsubscribe and clicks -----------------------------------------------------------------------

def unsubscribe_target(token: str) -> tuple[Company, Persona] | None:
    """The company and persona an unsubscribe link is for, or None (404)."""
    found = unsubscribe_read(token)
    if found is None:
        return None
    persona = (Persona.objects.select_related("company")
               .filter(company_id=found.company_id, pk=found.persona_id).first())
    return (persona.company, persona) if persona is not None else None


def email_unsubscribe(*, company, persona, one_click: bool, address: str = "", page_url: str = "",
                      now: datetime | None = None) -> Persona:
    """The unsubscribe page's button, or a mail provider's one-click unsubscribe (RFC 8058):
    email consent withdrawn, recorded with what was done."""
    wording = (f"One-click unsubscribe from {company.name} email (the email's List-Unsubscribe)."
               if one_click else f"Unsubscribe from {company.name} email")
    return consent_stop(company=company, persona_id=persona.pk, channel=ConsentRecord.Channel.EMAIL,
                        wording=wording, address=address, page_url=page_url, now=now)


def link_click(*, code: str, recipient_ref: str | None, now: datetime | None = None) -> CampaignLink | None:
    """A tracked link was opened: the click is counted (for the recipient when the
    reference names one of the link's campaign) and the link returned; None for an unknown
    code."""
    link = CampaignLink.objects.filter(code=code).first()
    if link is None:
        return None
    recipient_id = None
    if recipient_ref:
        try:
            candidate = int(recipient_ref, 36)
        except ValueError:
            candidate = None
        if candidate is not None and candidate < 2**63 and CampaignRecipient.objects.filter(
                pk=candidate, campaign_id=link.campaign_id).exists():
            recipient_id = candidate
    LinkClick.objects.create(link=link, recipient_id=recipient_id, clicked_at=now or timezone.now())
    return link
