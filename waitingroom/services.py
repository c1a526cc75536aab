"""Waiting-room actions: a customer checks in at the door, budtenders move them through
the queue and sign them up for loyalty."""

import zoneinfo
from datetime import datetime

from django.db import connection
from django.db import transaction as db
from django.utils import timezone

from loyalty.models import Persona, Source
from loyalty.phone import phone_normalize
from loyalty.services.personas import persona_create, persona_enroll, source_get_or_create
from stores.audit import AuditContext
from stores.errors import DomainError
from stores.models import RetailStore

from .models import IN_LINE, QueueEntry, QueueState


def store_local_date(store: RetailStore, when: datetime):
    return timezone.localtime(when, zoneinfo.ZoneInfo(store.effective_timezone)).date()


def _phone_lock(*, company_id: int, phone: str) -> None:
    # Two check-ins with the same number at once (a double tap, a slow tablet) queue
    # behind each other here, so the second finds what the first made.
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s::text, 0))",
                       [f"checkin:{company_id}:{phone}"])


def queue_check_in(*, store: RetailStore, phone: str, first_name: str = "", last_name: str = "",
                   sms_opt_in: bool = False, loyalty_opt_in: bool = False,
                   now: datetime | None = None) -> QueueEntry:
    """Put the customer with this phone number in the store's queue for today.

    The persona is found by phone, or made (sourced from the waiting room) when the number
    is new. Checking in again while still in line keeps the same place. Ticking a consent
    box opts in; leaving it empty does not opt an existing customer out."""
    company = store.company
    if not store.opt_in_queue_enabled:
        raise DomainError(f"{store.name} does not take check-ins.", code="queue_disabled")
    now = now or timezone.now()
    phone = phone_normalize(phone, country=company.country)
    if not phone:
        raise DomainError("Enter your phone number.", code="required", extra={"field": "phone"})
    first_name, last_name = first_name.strip(), last_name.strip()
    with db.atomic():
        _phone_lock(company_id=company.pk, phone=phone)
        persona = (Persona.objects.filter(company=company, phone=phone)
                   .order_by("-is_member", "id").first())
        if persona is None:
            if not first_name:
                raise DomainError("We don't know this number yet: please enter your first name.",
                                  code="name_required", extra={"field": "first_name"})
            source = source_get_or_create(company=company, kind=Source.Kind.WAITING_ROOM)
            persona = persona_create(
                company=company, source=source, first_name=first_name, last_name=last_name,
                phone=phone, sms_opt_in=sms_opt_in, market=store.state, favourite_store=store,
                enrolled_at=now if loyalty_opt_in else None)
        else:
            changed = []
            if sms_opt_in and not persona.sms_opt_in:
                persona.sms_opt_in = True
                changed.append("sms_opt_in")
            # Fill a missing name, never overwrite one: anyone can type any number here.
            if first_name and not persona.first_name:
                persona.first_name, persona.last_name = first_name, persona.last_name or last_name
                changed += ["first_name", "last_name"]
            if changed:
                persona.save(update_fields=changed + ["updated_at"])
        local_date = store_local_date(store, now)
        entry = QueueEntry.objects.filter(store=store, persona=persona, local_date=local_date,
                                          state__in=IN_LINE).first()
        if entry is None:
            entry = QueueEntry.objects.create(company=company, store=store, persona=persona,
                                              local_date=local_date, checked_in_at=now)
    if loyalty_opt_in and not persona.is_member:
        persona_enroll(company=company, persona_id=persona.pk, when=now)
    return entry


def _entry_move(entry: QueueEntry, *, to: str, allowed_from: tuple[str, ...], user=None) -> QueueEntry:
    with db.atomic():
        locked = QueueEntry.objects.select_for_update().get(pk=entry.pk)
        if locked.state == to:
            return locked
        if locked.state not in allowed_from:
            raise DomainError(f"{locked.persona.display_name} is already "
                              f"{locked.get_state_display().lower()}.", code="queue_state")
        now = timezone.now()
        locked.state = to
        fields = ["state"]
        if to == QueueState.SERVING:
            locked.serving_at, locked.served_by = now, user
            fields += ["serving_at", "served_by"]
        else:
            locked.finished_at = now
            fields.append("finished_at")
        locked.save(update_fields=fields)
    return locked


def queue_serving_start(*, entry: QueueEntry, user) -> QueueEntry:
    return _entry_move(entry, to=QueueState.SERVING, allowed_from=(QueueState.WAITING,), user=user)


def queue_entry_finish(*, entry: QueueEntry) -> QueueEntry:
    return _entry_move(entry, to=QueueState.DONE, allowed_from=IN_LINE)


def queue_entry_remove(*, entry: QueueEntry) -> QueueEntry:
    return _entry_move(entry, to=QueueState.LEFT, allowed_from=IN_LINE)


def queue_signup(*, entry: QueueEntry, audit: AuditContext | None = None) -> Persona:
    """Enroll the waiting customer in loyalty: enrolled now, the signup bonus, and the push
    to the POS where the company's integration sends signups (on the enrolment signal)."""
    return persona_enroll(company=entry.company, persona_id=entry.persona_id, audit=audit)
