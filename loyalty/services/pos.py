"""What a POS sends at the end of a sale: the transaction, the discounts it carries, voids
and returns. Built on transaction_record_atomic so a resend never awards twice."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_FLOOR, Decimal

from django.db import transaction as db
from django.db.models import Q
from django.utils import timezone

from stores.errors import DomainError

from ..catalog import catalog_for
from ..locks import personas_lock
from ..models import LoyaltyProgram, PointsEntry, Redemption, Source, Transaction
from ..selectors import loyalty_program_get
from ..signals import sales_changed
from .personas import source_get_or_create
from .points import entry_append_locked, personas_save_derived_locked
from .program import tiers_recompute
from .redemptions import redemptions_close_for_transaction_locked
from .transactions import (
    LineItemData,
    PaymentData,
    TransactionData,
    transaction_data_validate,
    transaction_record_atomic,
)


@dataclass
class PosTransaction:
    transaction_id: str
    store_id: int
    subtotal: Decimal
    tax_total: Decimal = Decimal("0")
    status: str = "closed"  # closed | voided
    persona_id: int | None = None
    channel: str = Transaction.Channel.IN_STORE
    fulfillment: str = Transaction.Fulfillment.IN_STORE
    employee: str = ""
    opened_at: dt.datetime | None = None
    modified_at: dt.datetime | None = None
    items: list[LineItemData] = field(default_factory=list)
    payments: list[PaymentData] = field(default_factory=list)
    redemption_ids: list[int] = field(default_factory=list)
    discount_total: Decimal = Decimal("0")
    original_transaction_id: str = ""  # set on a return


def external_id(store_id: int, transaction_id: str) -> str:
    # A POS's transaction ids are unique per store, not per company.
    return f"{store_id}/{transaction_id}"


def pos_source(company) -> Source:
    return source_get_or_create(company=company, kind=Source.Kind.POS_API)


def pos_transaction_send(*, company, data: PosTransaction) -> tuple[Transaction, bool]:
    """Record (or update) a POS transaction, close the locks and redemptions it carries,
    and apply the refund policy to a return. Returns (transaction, created)."""
    if not company.stores.filter(pk=data.store_id).exists():
        raise DomainError(f"store_id: no store {data.store_id} in this company.", code="not_found",
                          extra={"field": "store_id"})
    if data.status not in ("closed", "voided"):
        raise DomainError("status: 'closed' or 'voided'.", extra={"field": "status"})
    source = pos_source(company)
    is_return = bool(data.original_transaction_id)
    status = (Transaction.Status.VOIDED if data.status == "voided"
              else Transaction.Status.REFUNDED if is_return else Transaction.Status.COMPLETED)
    total = max(Decimal("0"), data.subtotal - data.discount_total) + data.tax_total
    record = TransactionData(
        external_id=external_id(data.store_id, data.transaction_id),
        occurred_at=data.modified_at or data.opened_at or timezone.now(),
        subtotal=data.subtotal, total=total, store_id=data.store_id, persona_id=data.persona_id,
        discount_total=data.discount_total, tax_total=data.tax_total, channel=data.channel,
        fulfillment=data.fulfillment, status=status, employee=data.employee,
        line_items=data.items, payments=data.payments,
    )
    transaction_data_validate(record)
    original = None
    if is_return:
        original = Transaction.objects.filter(
            company=company, source=source,
            external_id=external_id(data.store_id, data.original_transaction_id)).first()
        if original is None:
            raise DomainError(f"original_transaction_id: no transaction "
                              f"'{data.original_transaction_id}' at store {data.store_id}.",
                              code="not_found", extra={"field": "original_transaction_id"})
    with db.atomic(durable=True):
        # Everyone whose balance this can move, locked first, in pk order.
        redemption_owners = list(Redemption.objects.filter(company=company, pk__in=data.redemption_ids)
                                 .values_list("persona_id", flat=True))
        cart_owners = list(Redemption.objects.filter(company=company, cart_id=data.transaction_id)
                           .values_list("persona_id", flat=True))
        personas = personas_lock(company=company, persona_ids=[
            data.persona_id, *redemption_owners, *cart_owners, original.persona_id if original else None])
        program = loyalty_program_get(company=company)
        txn, created = transaction_record_atomic(company=company, source=source, data=record,
                                                 program=program)
        # Recording saved its own copies of these rows; read them again before moving
        # more points (the rows stay locked: same database transaction).
        personas = personas_lock(company=company, persona_ids=[*personas, txn.persona_id])
        if is_return and program.refund_policy == "reverse" and original.persona_id in personas:
            # A return earns nothing by itself; the policy decides about the original's points.
            # Sent again with another amount, its reversal follows the new amount.
            _reverse_for_return(original, txn, program, personas[original.persona_id])
        redemptions_close_for_transaction_locked(company=company, transaction=txn,
                                                 redemption_ids=data.redemption_ids, personas=personas)
        personas_save_derived_locked(personas.values())
        if catalog_for(company).tiers:  # a sale can move its customer up a tier
            tiers_recompute(company=company, persona_ids=list(personas))
        sales_changed.send(sender=Transaction, company_id=company.pk)  # analytics refresh on commit
    return txn, created


def _reverse_for_return(original: Transaction, refund: Transaction, program: LoyaltyProgram,
                        persona) -> None:
    """Bring what `refund` reversed of the original's points to what its amount takes back
    now: never more than the original earned (net of other returns) nor than the balance
    holds; a voided return takes back nothing. Each change is one more entry."""
    so_far = return_entries(refund).filter(persona=persona)
    reversed_so_far = -sum(so_far.values_list("delta", flat=True))
    earned = sum(original.points_entries.filter(
        persona=persona, kind__in=(PointsEntry.Kind.EARN, PointsEntry.Kind.REVERSE))
        .values_list("delta", flat=True)) + reversed_so_far  # what is left besides this return
    if refund.status == Transaction.Status.VOIDED:
        target = 0
    else:
        base = refund.total if program.earn_on == LoyaltyProgram.EarnOn.POST_TAX else max(
            Decimal("0"), refund.subtotal - refund.discount_total)
        points = int((base * program.points_per_unit).to_integral_value(rounding=ROUND_FLOOR))
        target = max(0, min(points, earned))
    delta = reversed_so_far - target  # negative: take more back; positive: give some back
    delta = max(delta, -persona.points_balance)  # points already spent stay spent
    if delta == 0:
        return
    count = so_far.count()
    entry_append_locked(persona=persona, delta=delta, kind=PointsEntry.Kind.REVERSE,
                        transaction=original,
                        idempotency_key=f"return:{refund.pk}" + (f":{count}" if count else ""),
                        reason=f"Returned in {refund.external_id}" if delta < 0
                        else f"Return {refund.external_id} amended")


def return_entries(refund: Transaction):
    """The ledger entries a return wrote against its original sale."""
    key = f"return:{refund.pk}"
    return PointsEntry.objects.filter(Q(idempotency_key=key) | Q(idempotency_key__startswith=f"{key}:"))


def return_points_reversed(refund: Transaction) -> int:
    """How many of the original sale's points a return took back, in all."""
    return -sum(return_entries(refund).values_list("delta", flat=True))
