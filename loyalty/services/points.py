"""The points ledger. Every balance change is one PointsEntry appended under the persona's
row lock, and the persona's balance moves with it in the same database transaction."""

import uuid
from datetime import timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal

from django.db import transaction as db
from django.db.models import Count, Q, Sum
from django.utils import timezone

from stores.audit import AuditContext, audit_record

from ..bounds import POINTS_MAX, POINTS_RANGE_MESSAGE, budtender_limit_message, points_check
from ..errors import InsufficientPoints, InvalidAdjustment, PointsOutOfRange
from ..locks import persona_lock
from ..models import LoyaltyProgram, Persona, PointsEntry, Transaction
from ..selectors import points_adjust_limit, staff_role
from .webhooks import points_changed_emit


def entry_append_locked(*, persona: Persona, delta: int, kind: str, idempotency_key: str,
                        transaction: Transaction | None = None, staff_user=None,
                        reason: str = "") -> PointsEntry:
    """Append one entry. The caller holds `persona`'s row lock (loyalty.locks)."""
    entry = entry_build_locked(persona=persona, delta=delta, kind=kind,
                               idempotency_key=idempotency_key, transaction=transaction,
                               staff_user=staff_user, reason=reason)
    entry.save(force_insert=True)
    return entry


def entry_build_locked(*, persona: Persona, delta: int, kind: str, idempotency_key: str,
                       transaction: Transaction | None = None, staff_user=None,
                       reason: str = "") -> PointsEntry:
    """The entry, unsaved, with the persona's balance moved in memory; for callers that
    insert many entries at once. The caller holds `persona`'s row lock."""
    if persona.points_balance + delta < 0:
        raise InsufficientPoints(
            f"This would take the balance below zero: it is {persona.points_balance} points "
            f"and {abs(delta)} would be removed.",
            extra={"balance": persona.points_balance, "delta": delta},
        )
    lifetime_delta = delta if kind in PointsEntry.LIFETIME_KINDS else 0
    for total, now, added in (("balance", persona.points_balance, delta),
                              ("lifetime points", persona.lifetime_points, lifetime_delta)):
        if now + added > POINTS_MAX:
            raise PointsOutOfRange(
                f"This would take the {total} past {POINTS_MAX:,} points, the most it can hold: "
                f"it is {now:,} points and {added:,} would be added.",
                extra={"field": "delta", "max": POINTS_MAX, total.replace(" ", "_"): now},
            )
    persona.points_balance += delta
    persona.lifetime_points += lifetime_delta
    return PointsEntry(
        company_id=persona.company_id, persona=persona, delta=delta, kind=kind,
        balance_after=persona.points_balance, transaction=transaction, staff_user=staff_user,
        reason=reason, idempotency_key=idempotency_key,
    )


DERIVED_FIELDS = ("points_balance", "lifetime_points", "last_purchase_at")


def personas_save_derived_locked(personas) -> None:
    """Write the ledger-derived fields of locked personas, those that changed, in one
    statement. Every service that appends entries calls this before it commits, so this
    is also where `points.changed` webhooks are emitted (sent only if the caller commits)."""
    changed, points_moved = [], []
    for persona in personas:
        current = tuple(getattr(persona, f) for f in DERIVED_FIELDS)
        loaded = getattr(persona, "_loaded_derived", None)
        if loaded != current:
            changed.append(persona)
            persona._loaded_derived = current
            if loaded is None or loaded[:2] != current[:2]:
                points_moved.append(persona)
    if len(changed) == 1:
        Persona.objects.filter(pk=changed[0].pk).update(
            **{f: getattr(changed[0], f) for f in DERIVED_FIELDS})
    elif changed:
        Persona.objects.bulk_update(changed, DERIVED_FIELDS, batch_size=1000)
    if points_moved:
        points_changed_emit(points_moved)


def earning_target(*, transaction: Transaction, program: LoyaltyProgram,
                   owner: Persona | None) -> int:
    """What `transaction` should have earned its owner, as things stand."""
    earns = owner is not None and transaction.status == Transaction.Status.COMPLETED and (
        owner.is_member or not program.members_only
    )
    if not earns:
        return 0
    multiplier = Decimal("1")
    if owner.tier:  # the tier's earn multiplier, e.g. 1.5 for Gold; tiers come from memory
        from ..catalog import catalog_for

        tier = next((t for t in catalog_for(owner.company_id).tiers if t.name == owner.tier), None)
        multiplier = tier.earn_multiplier if tier else Decimal("1")
    return points_for_amount(program=program, transaction=transaction, multiplier=multiplier)


def earning_key(*, transaction: Transaction, persona_id: int, count: int) -> str:
    # The n-th earn/reverse entry of this transaction for this persona: two writers that
    # both think they are first collide on the unique key instead of awarding twice.
    return f"txn:{transaction.pk}:persona:{persona_id}:{count}"


def points_for_amount(*, program: LoyaltyProgram, transaction: Transaction,
                      multiplier: Decimal = Decimal("1")) -> int:
    if program.earn_on == LoyaltyProgram.EarnOn.POST_TAX:
        base = transaction.total
    else:
        base = max(Decimal("0"), transaction.subtotal - transaction.discount_total)
    rounding = ROUND_HALF_UP if program.rounding == "nearest" else ROUND_FLOOR
    points = int((base * program.points_per_unit * multiplier).to_integral_value(rounding=rounding))
    # A sale too large to earn its points is refused, never recorded with fewer points.
    return points_check(points, field="total" if program.earn_on == LoyaltyProgram.EarnOn.POST_TAX
                        else "subtotal", what="points earned on this amount")


def points_sync_for_transaction_locked(*, transaction: Transaction, program: LoyaltyProgram,
                                       personas: dict[int, Persona],
                                       new: bool = False) -> list[PointsEntry]:
    """Bring what `transaction` earned in the ledger to what it should earn now.

    Called every time a transaction is recorded, so a resend with the same amounts writes
    nothing, a changed amount writes the difference, a void reverses the earning, and a
    transaction moved to another persona moves its points. The caller holds the row locks
    of every persona in `personas` (the old and the new owner).
    """
    target = earning_target(transaction=transaction, program=program,
                            owner=personas.get(transaction.persona_id))

    # What the sale itself earned (its own entries, keyed by earning_key) and what returns
    # of it took back since (entries against it with their own keys): a resend of the sale
    # brings the first to its target, and never gives back what a return reversed.
    own = Q(idempotency_key__startswith=f"txn:{transaction.pk}:")
    so_far = {} if new else {  # a transaction recorded just now has earned nothing yet
        row["persona_id"]: (row["points"], row["returned"] or 0, row["n"])
        for row in PointsEntry.objects.filter(
            transaction=transaction, kind__in=(PointsEntry.Kind.EARN, PointsEntry.Kind.REVERSE)
        ).values("persona_id").annotate(points=Sum("delta"), returned=Sum("delta", filter=~own),
                                        n=Count("id", filter=own))
    }
    entries = []
    for persona_id, owner in personas.items():
        earned, returned, count = so_far.get(persona_id, (0, 0, 0))
        wanted = target if persona_id == transaction.persona_id else 0
        delta = max(wanted + returned, 0) - earned
        if delta < 0:
            # Points already spent cannot be taken back below zero; the rest stays spent.
            delta = max(delta, -owner.points_balance)
        if delta == 0:
            continue
        entries.append(entry_append_locked(
            persona=owner, delta=delta,
            kind=PointsEntry.Kind.EARN if delta > 0 else PointsEntry.Kind.REVERSE,
            transaction=transaction,
            idempotency_key=earning_key(transaction=transaction, persona_id=persona_id,
                                        count=count),
        ))
    return entries


def points_adjust(*, company, persona_id: int, delta: int, staff_user, reason: str,
                  idempotency_key: str | None = None, audit: AuditContext | None = None) -> PointsEntry:
    """Staff add or remove points by hand (returns, goodwill, corrections). Anyone but an
    admin of the company is held to the program's budtender limit."""
    reason = (reason or "").strip()
    if not isinstance(delta, int) or isinstance(delta, bool) or delta == 0:
        raise InvalidAdjustment("Enter a whole number of points other than zero.",
                                extra={"field": "delta"})
    if abs(delta) > POINTS_MAX:
        raise InvalidAdjustment(POINTS_RANGE_MESSAGE, extra={"field": "delta", "max": POINTS_MAX})
    if not reason:
        raise InvalidAdjustment("Say why the points are adjusted.", extra={"field": "reason"})
    if staff_user is None:
        raise InvalidAdjustment("An adjustment needs the staff member who makes it.")
    limit = points_adjust_limit(company=company, role=staff_role(company=company, user=staff_user))
    if limit is not None and abs(delta) > limit:
        raise InvalidAdjustment(budtender_limit_message(limit), extra={"field": "delta", "limit": limit})
    with db.atomic(durable=True):
        persona = persona_lock(company=company, persona_id=persona_id)
        key = f"adjust:{persona.pk}:{idempotency_key or uuid.uuid4().hex}"
        existing = PointsEntry.objects.filter(idempotency_key=key, persona=persona).first()
        if existing:  # the same form submitted twice
            return existing
        balance_before = persona.points_balance
        entry = entry_append_locked(
            persona=persona, delta=delta, kind=PointsEntry.Kind.ADJUST, staff_user=staff_user,
            reason=reason[:300], idempotency_key=key,
        )
        personas_save_derived_locked([persona])
        audit_record(audit=audit, company=company, kind="points.adjusted", obj=persona,
                     changes={"points_balance": [balance_before, persona.points_balance]},
                     extra={"delta": delta, "reason": entry.reason, "points_entry_id": entry.pk})
        return entry


def points_expire(*, company, now=None) -> int:
    """Points of personas with no activity for the program's expiry months run out (the
    daily task). Activity is any ledger entry or purchase. Returns how many personas
    lost their points."""
    program = LoyaltyProgram.objects.filter(company=company).first()
    if program is None or not program.expiry_months:
        return 0
    now = now or timezone.now()
    cutoff = now - timedelta(days=round(program.expiry_months * 30.44))
    idle = (Persona.objects.filter(company=company, points_balance__gt=0)
            .filter(Q(last_purchase_at__isnull=True) | Q(last_purchase_at__lt=cutoff))
            .exclude(points_entries__created_at__gte=cutoff)
            .values_list("pk", flat=True))
    expired = 0
    for persona_id in list(idle):
        with db.atomic():
            persona = persona_lock(company=company, persona_id=persona_id)
            recent = persona.points_entries.filter(created_at__gte=cutoff).exists() or (
                persona.last_purchase_at and persona.last_purchase_at >= cutoff)
            if persona.points_balance <= 0 or recent:  # active again since we looked
                continue
            entry_append_locked(persona=persona, delta=-persona.points_balance, kind=PointsEntry.Kind.EXPIRE,
                                idempotency_key=f"expire:{persona.pk}:{now.date().isoformat()}",
                                reason=f"No activity for {program.expiry_months} months")
            personas_save_derived_locked([persona])
            expired += 1
    return expired
