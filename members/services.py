"""What a customer does on their company's loyalty page: ask for a sign-in code, enter it,
join the program."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.conf import settings
from django.core.cache import cache
from django.db import connection
from django.db import transaction as db
from django.utils import timezone

from loyalty.models import ConsentRecord, Persona, Source
from loyalty.phone import phone_normalize
from loyalty.services.personas import persona_create, persona_enroll, source_get_or_create
from loyalty.services.privacy import erased_phone_clear
from stores.errors import DomainError
from stores.http import valid_ip
from stores.redis_guard import REDIS_ERRORS, redis_failed, redis_up

from .models import LoginCode
from .selectors import page_settings
from .sms import sms_send

CODE_MINUTES = 10
# Sending limits: (how many, in how many seconds).
SENDS_PER_PHONE = (3, 10 * 60)
SENDS_PER_ADDRESS = (10, 60 * 60)


class SignInRefused(DomainError):
    code = "sign_in_refused"


# --- the code ---------------------------------------------------------------------------------

def _code_hash(*, company_id: int, phone: str, code: str) -> str:
    message = f"{company_id}:{phone}:{code}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _limit_reached(key: str, limit: tuple[int, int]) -> bool:
    """One more send in a fixed window kept in the cache (Redis); over `limit`, True.
    With Redis away nobody is held back (fail open): the per-code tries still stand."""
    if not redis_up():
        return False
    most, seconds = limit
    try:
        cache.add(key, 0, timeout=seconds)
        try:
            return cache.incr(key) > most
        except ValueError:  # the window closed between add and incr
            cache.set(key, 1, timeout=seconds)
            return False
    except REDIS_ERRORS as exc:
        redis_failed("sign-in send limit", exc)
        return False


def _limit_give_back(key: str) -> None:
    if not redis_up():
        return
    try:
        cache.decr(key)
    except (ValueError, *REDIS_ERRORS):
        pass


def sign_in_phone(*, company, phone: str) -> str:
    """The number as the project stores it (E.164), or a DomainError on field "phone"."""
    phone = phone_normalize(phone, country=company.country)
    if not phone:
        raise DomainError("Enter your mobile number.", code="required", extra={"field": "phone"})
    return phone


CODE_TEXTS = {
    LoginCode.Purpose.SIGN_IN: "{code} is your {company} sign-in code. It expires in {minutes} minutes.",
    LoginCode.Purpose.ERASE: ("{code} is your code to delete your {company} Rewards account. It expires in "
                              "{minutes} minutes. Didn't ask? Ignore this message."),
}


def sign_in_code_send(*, company, phone: str, address: str, now: datetime | None = None,
                      purpose: str = LoginCode.Purpose.SIGN_IN,
                      link: Callable[[str], str] | None = None) -> LoginCode:
    """Text a new 6-digit code to `phone` (already normalised) for this company's page: to
    sign in, or (purpose "erase") to confirm deleting the account. With `link` (code -> a
    sign-in URL) the text carries a link instead (sent from the kiosk, where the customer is
    not on their own phone). Refused past the send limits; when the SMS provider fails
    nothing is kept but the failed message in the outbox."""
    now = now or timezone.now()
    phone_key = f"members:send:phone:{company.pk}:{phone}"
    address_key = f"members:send:addr:{address}"
    if _limit_reached(phone_key, SENDS_PER_PHONE):
        _limit_give_back(phone_key)
        raise SignInRefused("We've sent 3 codes to this number in the last 10 minutes. Wait a few minutes, "
                            "then ask for a new one.", code="too_many_codes_phone", extra={"field": "phone"})
    if _limit_reached(address_key, SENDS_PER_ADDRESS):
        _limit_give_back(address_key)
        _limit_give_back(phone_key)
        raise SignInRefused("Too many codes asked for from this connection in the last hour. "
                            "Please try again later.", code="too_many_codes_address")
    code = f"{secrets.randbelow(1_000_000):06d}"
    with db.atomic():
        login_code = LoginCode.objects.create(
            company=company, phone=phone, code_hash=_code_hash(company_id=company.pk, phone=phone, code=code),
            purpose=purpose, created_at=now, expires_at=now + timedelta(minutes=CODE_MINUTES))
    try:
        if link is None:
            body = CODE_TEXTS[purpose].format(code=code, company=company.name, minutes=CODE_MINUTES)
        else:
            body = f"See your {company.name} rewards: {link(code)} (works for {CODE_MINUTES} minutes)"
        sms_send(company=company, to=phone, purpose=purpose if link is None else "sign_in_link", body=body)
    except DomainError:
        LoginCode.objects.filter(pk=login_code.pk).delete()
        _limit_give_back(phone_key)
        _limit_give_back(address_key)
        raise SignInRefused("We couldn't send a text message just now. Please try again in a few minutes.",
                            code="sms_not_sent") from None
    return login_code


@dataclass(frozen=True)
class CodeChecked:
    phone: str
    persona: Persona | None  # the member with this number, None when they have to join


def sign_in_code_check(*, company, phone: str, code: str, now: datetime | None = None,
                       purpose: str = LoginCode.Purpose.SIGN_IN) -> CodeChecked:
    """Check `code` against the latest code of `purpose` sent to `phone` for this company: at most
    LoginCode.MAX_TRIES tries, not expired, used once. Returns the member with this number
    (None: the number has to join first)."""
    now = now or timezone.now()
    code = "".join(ch for ch in (code or "") if ch.isdigit())
    refusal = None
    with db.atomic():
        login_code = (LoginCode.objects.select_for_update()
                      .filter(company=company, phone=phone, purpose=purpose)
                      .order_by("-created_at", "-id").first())
        if login_code is None or login_code.used_at is not None:
            refusal = SignInRefused("Ask for a code first.", code="no_code")
        elif login_code.attempts >= LoginCode.MAX_TRIES:
            refusal = SignInRefused("Too many tries: ask for a new code.", code="too_many_tries")
        elif login_code.expires_at <= now:
            refusal = SignInRefused(f"This code has expired (codes last {CODE_MINUTES} minutes): "
                                    "ask for a new one.", code="code_expired")
        elif not hmac.compare_digest(login_code.code_hash,
                                     _code_hash(company_id=company.pk, phone=phone, code=code)):
            login_code.attempts += 1
            login_code.save(update_fields=["attempts"])
            left = LoginCode.MAX_TRIES - login_code.attempts
            if left:
                tries = "1 try" if left == 1 else f"{left} tries"
                refusal = SignInRefused(f"That code isn't right. {tries} left.", code="code_wrong",
                                        extra={"field": "code"})
            else:
                refusal = SignInRefused("That code isn't right, and that was the last try: "
                                        "ask for a new code.", code="too_many_tries", extra={"field": "code"})
        else:
            login_code.used_at = now
            login_code.save(update_fields=["used_at"])
    if refusal is not None:  # the counted try is committed first
        raise refusal
    if purpose != LoginCode.Purpose.SIGN_IN:
        return CodeChecked(phone=phone, persona=None)
    member = (Persona.objects.filter(company=company, phone=phone, is_member=True)
              .order_by("enrolled_at", "id").first())
    return CodeChecked(phone=phone, persona=member)


# --- joining ------------------------------------------------------------------------------------

SMS_CONSENT_WORDING = ("Text me offers and news from {company}. Up to 6 messages a month; message and "
                       "data rates may apply. Reply STOP to stop, HELP for help.")
EMAIL_CONSENT_WORDING = "Email me offers and news from {company}. Unsubscribe any time."


def consent_wording(company) -> dict[str, str]:
    """The exact sentences beside the two boxes, as stored with each consent."""
    return {"sms": SMS_CONSENT_WORDING.format(company=company.name),
            "email": EMAIL_CONSENT_WORDING.format(company=company.name)}


def age_on(birth_date: date, today: date) -> int:
    return today.year - birth_date.year - ((today.month, today.day) < (birth_date.month, birth_date.day))


def _phone_lock(*, company_id: int, phone: str) -> None:
    # Two joins with the same number at once (a double tap) queue here; the second finds the first's.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 0))",
                       [f"checkin:{company_id}:{phone}"])


def member_join(*, company, phone: str, first_name: str, last_name: str, birth_date: date, email: str,
                store, sms_consent: bool, email_consent: bool, address: str = "", page_url: str = "",
                now: datetime | None = None) -> Persona:
    """The customer with this verified phone joins the program: the persona with the number is
    enrolled (signup bonus and persona.enrolled as at the POS), or one is made, sourced from
    the loyalty page. Each ticked box is a ConsentRecord with its exact wording."""
    now = now or timezone.now()
    if store is None or store.company_id != company.pk:
        raise DomainError("Pick your favourite store.", code="invalid_store",
                          extra={"field": "favourite_store"})
    if not first_name.strip():
        raise DomainError("Enter your first name.", code="required", extra={"field": "first_name"})
    today = timezone.localtime(now).date()
    if birth_date is None or birth_date > today:
        raise DomainError("Enter your birth date.", code="required", extra={"field": "birth_date"})
    minimum = page_settings(company).minimum_age_for(store.state)
    if age_on(birth_date, today) < minimum:
        where = f" in {store.state}" if store.state else ""
        raise DomainError(f"You must be {minimum} or older to join{where}.", code="under_age",
                          extra={"field": "birth_date", "minimum_age": minimum})
    email = (email or "").strip().lower()
    wording = consent_wording(company)
    with db.atomic():
        _phone_lock(company_id=company.pk, phone=phone)
        # Signing up again brings back a customer who had their data erased.
        erased_phone_clear(company=company, phone=phone)
        persona = (Persona.objects.select_for_update().filter(company=company, phone=phone)
                   .order_by("-is_member", "id").first())
        if persona is None:
            source = source_get_or_create(company=company, kind=Source.Kind.LOYALTY_PAGE)
            persona = persona_create(
                company=company, source=source, first_name=first_name, last_name=last_name, phone=phone,
                email=email, birth_date=birth_date, market=store.state, favourite_store=store,
                sms_opt_in=sms_consent, email_opt_in=email_consent, enrolled_at=now)
        else:
            # The number is verified: it is them. What they type now is their own word.
            persona.first_name, persona.last_name = first_name.strip(), last_name.strip()
            persona.birth_date, persona.favourite_store = birth_date, store
            persona.market = persona.market or store.state
            persona.email = email or persona.email
            persona.sms_opt_in = persona.sms_opt_in or sms_consent
            persona.email_opt_in = persona.email_opt_in or email_consent
            persona.save(update_fields=["first_name", "last_name", "birth_date", "favourite_store", "market",
                                        "email", "sms_opt_in", "email_opt_in", "updated_at"])
        ip = valid_ip(address)
        ticked_boxes = ((ConsentRecord.Channel.SMS, sms_consent),
                        (ConsentRecord.Channel.EMAIL, email_consent))
        for channel, ticked in ticked_boxes:
            if ticked:
                ConsentRecord.objects.create(company=company, persona=persona, channel=channel, granted=True,
                                             wording=wording[channel], ip=ip, page_url=page_url[:500],
                                             created_at=now)
    if not persona.is_member:
        persona = persona_enroll(company=company, persona_id=persona.pk, when=now)
    return persona
