from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db import transaction as db
from django.utils import timezone

from stores.errors import DomainError

from ..locks import persona_lock
from ..models import LoyaltyProgram, Persona, PersonaIdentity, Source
from ..phone import phone_normalize
from .webhooks import persona_updated_emit


def source_get_or_create(*, company, kind: str, name: str | None = None) -> Source:
    name = name or Source.Kind(kind).label
    source, _ = Source.objects.get_or_create(company=company, name=name,
                                             defaults={"kind": kind})
    return source


def _validated(persona: Persona) -> Persona:
    try:
        persona.full_clean(exclude=["company", "sourced_from", "favourite_store"])
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise DomainError(f"{field}: {' '.join(messages)}", code="invalid_persona",
                          extra={"field": field, "errors": exc.message_dict}) from exc
    return persona


def persona_create(*, company, source: Source | None, first_name: str = "",
                   last_name: str = "", phone: str = "", email: str = "",
                   birth_date: date | None = None, market: str = "", sms_opt_in: bool = False,
                   email_opt_in: bool = False, favourite_store=None,
                   custom_traits: dict | None = None, external_id: str | None = None,
                   enrolled_at: datetime | None = None,
                   created_at: datetime | None = None) -> Persona:
    """A new customer. With `external_id`, also the identity it has in `source`.
    `enrolled_at` makes them a loyalty member from that moment."""
    persona = _validated(Persona(
        company=company, sourced_from=source, first_name=first_name.strip(),
        last_name=last_name.strip(), phone=phone_normalize(phone, country=company.country),
        email=email.strip().lower(), birth_date=birth_date, market=market.strip().upper(),
        sms_opt_in=sms_opt_in, email_opt_in=email_opt_in, favourite_store=favourite_store,
        custom_traits=custom_traits or {}, is_member=enrolled_at is not None,
        enrolled_at=enrolled_at, created_at=created_at or timezone.now(),
    ))
    if favourite_store is not None and favourite_store.company_id != company.pk:
        raise DomainError("That store belongs to another company.", code="invalid_store")
    with db.atomic():
        persona.save()
        if external_id:
            if source is None:
                raise DomainError("An external id needs the source it comes from.")
            try:
                with db.atomic():
                    PersonaIdentity.objects.create(company=company, persona=persona,
                                                   source=source, external_id=external_id)
            except IntegrityError as exc:
                raise DomainError(
                    f"{source.name} customer '{external_id}' is already another persona.",
                    code="identity_taken", extra={"field": "external_id"},
                ) from exc
        if persona.is_member and LoyaltyProgram.objects.filter(company=company, signup_bonus__gt=0).exists():
            signup_bonus_give_locked(persona_lock(company=company, persona_id=persona.pk))
        if persona.is_member:
            _enrolled_announce(persona)
    return persona


def persona_enroll(*, company, persona_id: int, when: datetime | None = None) -> Persona:
    """Make the persona a loyalty member. Enrolling a member again changes nothing."""
    with db.atomic(durable=True):
        persona = persona_lock(company=company, persona_id=persona_id)
        if not persona.is_member:
            persona.is_member = True
            persona.enrolled_at = when or timezone.now()
            persona.save(update_fields=["is_member", "enrolled_at", "updated_at"])
            signup_bonus_give_locked(persona)
            persona_updated_emit(persona, change="enrolled")
            _enrolled_announce(persona)
        return persona


def _enrolled_announce(persona: Persona) -> None:
    from ..signals import persona_enrolled

    db.on_commit(lambda: persona_enrolled.send(sender=Persona, persona=persona))


def signup_bonus_give_locked(persona: Persona) -> None:
    """The program's signup bonus, once per persona (its key makes a second one fail)."""
    from ..models import PointsEntry
    from .points import entry_append_locked, personas_save_derived_locked

    bonus = LoyaltyProgram.objects.filter(company_id=persona.company_id).values_list(
        "signup_bonus", flat=True).first()
    if not bonus or PointsEntry.objects.filter(idempotency_key=f"signup:{persona.pk}").exists():
        return
    entry_append_locked(persona=persona, delta=bonus, kind=PointsEntry.Kind.EARN,
                        idempotency_key=f"signup:{persona.pk}", reason="Signup bonus")
    personas_save_derived_locked([persona])
