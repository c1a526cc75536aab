"""Erasing a customer's personal data at their request, and the tombstones that keep an
import or a POS sync from bringing the same identity back."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.db import transaction as db
from django.utils import timezone

from stores.audit import AuditContext, audit_record

from ..locks import persona_lock
from ..models import ConsentRecord, ErasedIdentity, ErasureRequest, PersonaIdentity, PointsEntry, WalletItem
from .points import entry_append_locked, personas_save_derived_locked

FORFEIT_REASON = "Account deleted at the customer's request"
# What an import or sync reports for a row it leaves out.
SKIPPED_ERASED = "erased at the customer's request"


def identity_digest(*, company_id: int, kind: str, value: str, source_id: int | None = None) -> str:
    """The HMAC (SECRET_KEY) of one identity: a phone in E.164, an email in lower case, or an
    id in one source. The value itself is never stored."""
    message = f"{company_id}:{kind}:{source_id or ''}:{value}".encode()
    return hmac.new(settings.SECRET_KEY.encode(), message, hashlib.sha256).hexdigest()


def _digests(*, company_id: int, phone: str = "", email: str = "",
             external_ids: tuple[tuple[int, str], ...] = ()) -> list[tuple[str, str]]:
    kinds = ErasedIdentity.Kind
    out = []
    if phone:
        out.append((kinds.PHONE, identity_digest(company_id=company_id, kind=kinds.PHONE, value=phone)))
    if email:
        out.append((kinds.EMAIL, identity_digest(company_id=company_id, kind=kinds.EMAIL,
                                                 value=email.strip().lower())))
    for source_id, external_id in external_ids:
        if external_id:
            out.append((kinds.EXTERNAL_ID, identity_digest(company_id=company_id, kind=kinds.EXTERNAL_ID,
                                                           value=str(external_id).strip(),
                                                           source_id=source_id)))
    return out


def persona_erased(persona) -> bool:
    """True once the persona's personal data has been erased."""
    return ErasureRequest.objects.filter(persona=persona, completed_at__isnull=False).exists()


def tombstones_add(*, company_id: int, phone: str = "", email: str = "",
                   external_ids: tuple[tuple[int, str], ...] = (), now: datetime | None = None) -> None:
    """Tombstones for an erased customer's identities (an id a source gave them after the
    erasure too): a later import or sync of any of them skips it."""
    ErasedIdentity.objects.bulk_create(
        [ErasedIdentity(company_id=company_id, kind=kind, digest=digest, created_at=now or timezone.now())
         for kind, digest in _digests(company_id=company_id, phone=phone, email=email,
                                      external_ids=external_ids)],
        ignore_conflicts=True)


@dataclass
class ErasedIdentities:
    """The company's tombstones, loaded once for a whole import or sync."""

    company_id: int
    digests: set[tuple[str, str]] = field(default_factory=set)

    def match(self, *, phone: str = "", email: str = "", source_id: int | None = None,
              external_id: str = "") -> bool:
        """True when any of these identities belongs to an erased customer."""
        if not self.digests:
            return False
        ids = ((source_id, external_id),) if source_id and external_id else ()
        return any(d in self.digests for d in _digests(company_id=self.company_id, phone=phone, email=email,
                                                       external_ids=ids))


def erased_identities(*, company) -> ErasedIdentities:
    company_id = getattr(company, "pk", company)
    return ErasedIdentities(company_id=company_id, digests=set(
        ErasedIdentity.objects.filter(company_id=company_id).values_list("kind", "digest")))


def erased_phone_clear(*, company, phone: str) -> int:
    """The customer signs up again with this phone: its tombstone goes."""
    digest = identity_digest(company_id=company.pk, kind=ErasedIdentity.Kind.PHONE, value=phone)
    deleted, _ = ErasedIdentity.objects.filter(company=company, kind=ErasedIdentity.Kind.PHONE,
                                               digest=digest).delete()
    return deleted


def persona_erase(*, company, persona_id: int, via: str, audit: AuditContext | None = None,
                  now: datetime | None = None) -> ErasureRequest:
    """Erase the persona's personal data in one transaction: names, phone, email, birth date,
    custom traits and ids in other systems are blanked (their hashes kept as tombstones),
    the points balance is forfeited with a ledger entry, rewards not yet used expire, and
    apps holding the customer's rows (sign-in sessions) let go of them via `persona_erasing`.
    The persona stays as an anonymous id: its sales still count. Erasing twice returns the
    first request. A foreign or missing id is a 404."""
    now = now or timezone.now()
    if via not in ErasureRequest.Via.values:
        raise ValueError(f"Unknown erasure channel {via!r}.")
    from ..signals import persona_erasing

    user = audit.user if audit is not None else None
    with db.atomic():
        persona = persona_lock(company=company, persona_id=persona_id)
        erasure = ErasureRequest.objects.filter(persona=persona).first()
        if erasure is not None and erasure.completed_at is not None:
            return erasure
        if erasure is None:
            erasure = ErasureRequest.objects.create(company=company, persona=persona, requested_via=via,
                                                    requested_by=user, requested_at=now)
        identities = list(persona.identities.all())
        tombstones_add(company_id=company.pk, phone=persona.phone, email=persona.email,
                       external_ids=tuple((i.source_id, i.external_id) for i in identities), now=now)
        persona_erasing.send(sender=persona.__class__, persona=persona, phone=persona.phone)

        forfeited = persona.points_balance
        if forfeited > 0:
            entry_append_locked(persona=persona, delta=-forfeited, kind=PointsEntry.Kind.FORFEIT,
                                idempotency_key=f"erase:{persona.pk}", staff_user=user, reason=FORFEIT_REASON)
            personas_save_derived_locked([persona])
        WalletItem.objects.filter(persona=persona, state=WalletItem.State.AVAILABLE).update(
            state=WalletItem.State.EXPIRED)
        PersonaIdentity.objects.filter(persona=persona).delete()
        ConsentRecord.objects.filter(persona=persona).update(ip=None)

        persona.first_name = persona.last_name = persona.phone = persona.email = ""
        persona.birth_date = None
        persona.custom_traits = {}
        persona.is_member = False
        persona.sms_opt_in = persona.email_opt_in = False
        persona.save(update_fields=["first_name", "last_name", "phone", "email", "birth_date",
                                    "custom_traits", "is_member", "sms_opt_in", "email_opt_in", "updated_at"])
        erasure.completed_at = now
        erasure.points_forfeited = forfeited
        erasure.save(update_fields=["completed_at", "points_forfeited"])
        audit_record(audit=audit, company=company, kind="persona.erased", obj=persona,
                     extra={"via": via, "points_forfeited": forfeited})
    return erasure
