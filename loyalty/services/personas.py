from datetime import date, datetime

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection
from django.db import transaction as db
from django.utils import timezone

from stores.audit import AuditContext, audit_changes, audit_record
from stores.errors import DomainError

from ..locks import persona_lock, personas_lock
from ..models import (
    LoyaltyProgram,
    Persona,
    PersonaIdentity,
    PersonaMerge,
    PointsEntry,
    Redemption,
    Source,
    Transaction,
    WalletItem,
)
from ..phone import phone_normalize
from .points import entry_append_locked, personas_save_derived_locked
from .program import tiers_recompute
from .webhooks import persona_updated_emit


def source_get_or_create(*, company, kind: str, name: str | None = None) -> Source:
    name = name or Source.Kind(kind).label
    source, _ = Source.objects.get_or_create(company=company, name=name,
                                             defaults={"kind": kind})
    return source


def source_create(*, company, kind: str, name: str) -> Source:
    """A new source of customers and sales (an integration connection). Names are unique
    per company: a name already taken raises IntegrityError, for the caller to word."""
    return Source.objects.create(company=company, kind=kind, name=name)


def source_rename(*, source_id: int, name: str) -> None:
    """A name already taken raises IntegrityError, as in `source_create`."""
    Source.objects.filter(pk=source_id).update(name=name)


def source_retire(*, source: Source, keep: bool, renamed: str) -> bool:
    """A source nothing feeds any more. Deleted, with the ids its customers had in it, when
    nothing came from it (no sales, no customers sourced from it) and `keep` is false;
    otherwise kept under the name `renamed`, so its sales and customers still say where
    they came from. True when it was kept."""
    if keep or Transaction.objects.filter(source=source).exists() or source.personas.exists():
        source.name = renamed[:120]
        source.save(update_fields=["name"])
        return True
    source.delete()
    return False


def persona_identity_attach(*, persona: Persona, source_id: int, external_id: str) -> PersonaIdentity | None:
    """Record `external_id` as the persona's id in the source (a customer id a POS gave them).
    Idempotent: attaching it again changes nothing. An id is unique per source, so an id the
    source already has for someone is never moved: that identity is returned as it is.
    A persona erased meanwhile (the POS answered after the customer asked to be erased) gets
    no identity: the id becomes a tombstone, so a later sync does not bring them back; None."""
    from .privacy import persona_erased, tombstones_add

    with db.atomic():
        persona = persona_lock(company=persona.company, persona_id=persona.pk)
        if persona_erased(persona):
            tombstones_add(company_id=persona.company_id, external_ids=((source_id, external_id),))
            return None
        identity, _ = PersonaIdentity.objects.get_or_create(
            source_id=source_id, external_id=external_id,
            defaults={"company_id": persona.company_id, "persona": persona})
    return identity


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


def persona_enroll(*, company, persona_id: int, when: datetime | None = None,
                   audit: AuditContext | None = None) -> Persona:
    """Make the persona a loyalty member. Enrolling a member again changes nothing."""
    with db.atomic(durable=True):
        persona = persona_lock(company=company, persona_id=persona_id)
        if not persona.is_member:
            balance_before = persona.points_balance
            persona.is_member = True
            persona.enrolled_at = when or timezone.now()
            persona.save(update_fields=["is_member", "enrolled_at", "updated_at"])
            signup_bonus_give_locked(persona)
            persona_updated_emit(persona, change="enrolled")
            _enrolled_announce(persona)
            audit_record(audit=audit, company=company, kind="persona.enrolled", obj=persona,
                         changes=audit_changes(
                             {"is_member": False, "enrolled_at": None, "points_balance": balance_before},
                             {"is_member": True, "enrolled_at": persona.enrolled_at,
                              "points_balance": persona.points_balance}))
        return persona


def _enrolled_announce(persona: Persona) -> None:
    from ..signals import persona_enrolled

    db.on_commit(lambda: persona_enrolled.send(sender=Persona, persona=persona))


def signup_bonus_give_locked(persona: Persona) -> None:
    """The program's signup bonus, once per persona (its key makes a second one fail)."""
    bonus = LoyaltyProgram.objects.filter(company_id=persona.company_id).values_list(
        "signup_bonus", flat=True).first()
    if not bonus or PointsEntry.objects.filter(idempotency_key=f"signup:{persona.pk}").exists():
        return
    entry_append_locked(persona=persona, delta=bonus, kind=PointsEntry.Kind.EARN,
                        idempotency_key=f"signup:{persona.pk}", reason="Signup bonus")
    personas_save_derived_locked([persona])


# The survivor's ledger is both ledgers: each persona's entries were appended under its
# row lock, so id order is the order they happened in, and the running sum of the two is
# never below zero because neither one's was.
_LEDGER_RENUMBER = """
UPDATE loyalty_pointsentry e SET balance_after = r.running
FROM (SELECT id, sum(delta) OVER (ORDER BY id) AS running
      FROM loyalty_pointsentry WHERE persona_id = %s) r
WHERE e.id = r.id AND e.balance_after <> r.running
"""


MERGE_FILLED_FIELDS = ("first_name", "last_name", "phone", "email", "birth_date", "market", "favourite_store",
                       "sms_opt_in", "email_opt_in", "is_member", "enrolled_at", "points_balance",
                       "lifetime_points")


def persona_merge(*, company, survivor_id: int, duplicate_id: int, reason: str,
                  staff_user=None, audit: AuditContext | None = None) -> Persona:
    """One customer known twice becomes one persona: the duplicate's sales, points,
    wallet, rewards, identities and places in line move to the survivor, its balance adds
    to the survivor's, contact details the survivor lacks are filled from it, and the
    duplicate is deleted, leaving a PersonaMerge behind. Returns the survivor."""
    from ..signals import persona_merging

    if survivor_id == duplicate_id:
        raise DomainError("A persona cannot be merged into itself.", code="merge_same_persona")
    with db.atomic():
        locked = personas_lock(company=company, persona_ids=[survivor_id, duplicate_id])
        if len(locked) != 2:
            raise DomainError("Both personas must belong to this company.", code="merge_unknown_persona")
        survivor, duplicate = locked[survivor_id], locked[duplicate_id]
        before = {name: getattr(survivor, name) for name in MERGE_FILLED_FIELDS}
        duplicate_label = str(duplicate)

        sales = Transaction.objects.filter(persona_id=duplicate.pk).update(persona_id=survivor.pk)
        # What was merged into the duplicate before is now the survivor's history.
        for model in (PersonaIdentity, Redemption, WalletItem, PointsEntry, PersonaMerge):  # the lock order
            model.objects.filter(persona_id=duplicate.pk).update(persona_id=survivor.pk)
        PersonaMerge.objects.create(
            company=company, persona=survivor, merged_persona_id=duplicate.pk,
            merged_name=duplicate.display_name[:250], points_moved=duplicate.points_balance,
            sales_moved=sales, reason=reason[:200], staff_user=staff_user)
        persona_merging.send(sender=Persona, survivor=survivor, duplicate=duplicate)
        with connection.cursor() as cursor:
            cursor.execute(_LEDGER_RENUMBER, [survivor.pk])

        survivor.points_balance += duplicate.points_balance
        survivor.lifetime_points += duplicate.lifetime_points
        if duplicate.last_purchase_at and (survivor.last_purchase_at is None
                                           or duplicate.last_purchase_at > survivor.last_purchase_at):
            survivor.last_purchase_at = duplicate.last_purchase_at
        personas_save_derived_locked([survivor])
        for field in ("first_name", "last_name", "phone", "email", "birth_date", "market", "favourite_store"):
            if not getattr(survivor, field) and getattr(duplicate, field):
                setattr(survivor, field, getattr(duplicate, field))
        # A consent or an enrolment given under either record stands.
        survivor.sms_opt_in = survivor.sms_opt_in or duplicate.sms_opt_in
        survivor.email_opt_in = survivor.email_opt_in or duplicate.email_opt_in
        enrolments = [p.enrolled_at for p in (survivor, duplicate) if p.is_member]
        if enrolments:
            survivor.is_member, survivor.enrolled_at = True, min(enrolments)
        survivor.created_at = min(survivor.created_at, duplicate.created_at)
        survivor.custom_traits = {**duplicate.custom_traits, **survivor.custom_traits}
        duplicate.delete()
        survivor.save(update_fields=[
            "first_name", "last_name", "phone", "email", "birth_date", "market", "favourite_store",
            "sms_opt_in", "email_opt_in", "is_member", "enrolled_at", "created_at", "custom_traits",
            "updated_at"])
        tiers_recompute(company=company, persona_ids=[survivor.pk])
        survivor.refresh_from_db(fields=["tier"])
        persona_updated_emit(survivor, change="merged", merged_persona_id=duplicate_id)
        audit_record(audit=audit, company=company, kind="persona.merged", obj=survivor,
                     changes=audit_changes(before, {name: getattr(survivor, name)
                                                    for name in MERGE_FILLED_FIELDS}),
                     extra={"merged_persona_id": duplicate_id, "merged_persona": duplicate_label,
                            "points_moved": duplicate.points_balance, "sales_moved": sales})
    return survivor
