from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal

from django.db import IntegrityError
from django.db import transaction as db

from ..bounds import MONEY_MAX, MONEY_PLACES, QUANTITY_MAX, QUANTITY_PLACES, number_problem
from ..errors import InvalidTransaction
from ..locks import personas_lock
from ..models import LineItem, LoyaltyProgram, Payment, PointsEntry, Source, Transaction
from ..selectors import loyalty_program_get
from .points import (
    earning_key,
    earning_target,
    entry_build_locked,
    personas_save_derived_locked,
    points_sync_for_transaction_locked,
)


@dataclass
class LineItemData:
    product: str
    quantity: Decimal
    unit_price: Decimal
    total: Decimal
    sku: str = ""
    brand: str = ""
    category: str = ""
    discount: Decimal = Decimal("0")
    tax: Decimal = Decimal("0")
    tax_included: bool = False


@dataclass
class PaymentData:
    method: str
    amount: Decimal


@dataclass
class TransactionData:
    """A sale as any source describes it, before it is recorded."""

    external_id: str
    occurred_at: datetime
    subtotal: Decimal
    total: Decimal
    store_id: int | None = None
    persona_id: int | None = None
    discount_total: Decimal = Decimal("0")
    tax_total: Decimal = Decimal("0")
    channel: str = Transaction.Channel.IN_STORE
    fulfillment: str = Transaction.Fulfillment.IN_STORE
    status: str = Transaction.Status.COMPLETED
    employee: str = ""
    line_items: list[LineItemData] = field(default_factory=list)
    payments: list[PaymentData] = field(default_factory=list)


def _money(value, path: str) -> Decimal:
    problem = number_problem(value, max_value=MONEY_MAX, places=MONEY_PLACES)
    if problem:
        raise InvalidTransaction(f"{path}: {problem}.", extra={"field": path})
    return Decimal(str(value))


def _quantity(value, path: str) -> Decimal:
    problem = number_problem(value, max_value=QUANTITY_MAX, places=QUANTITY_PLACES)
    if problem:
        raise InvalidTransaction(f"{path}: {problem}.", extra={"field": path})
    return Decimal(str(value))


def transaction_data_validate(data: TransactionData) -> None:
    """Refuse what the database would refuse, with the path of the bad field."""
    if not str(data.external_id or "").strip():
        raise InvalidTransaction("external_id: a transaction needs its id.",
                                 extra={"field": "external_id"})
    if data.occurred_at is None or data.occurred_at.tzinfo is None:
        raise InvalidTransaction("occurred_at: needs a date and time with a time zone.",
                                 extra={"field": "occurred_at"})
    for name in ("subtotal", "discount_total", "tax_total", "total"):
        setattr(data, name, _money(getattr(data, name), name))
    for choice_field, choices in (("channel", Transaction.Channel),
                                  ("fulfillment", Transaction.Fulfillment),
                                  ("status", Transaction.Status)):
        if getattr(data, choice_field) not in choices.values:
            raise InvalidTransaction(
                f"{choice_field}: '{getattr(data, choice_field)}' is not one of "
                f"{', '.join(choices.values)}.", extra={"field": choice_field})
    for i, line in enumerate(data.line_items):
        path = f"line_items[{i}]"
        if not str(line.product or "").strip():
            raise InvalidTransaction(f"{path}.product: a line needs a product name.",
                                     extra={"field": f"{path}.product"})
        line.quantity = _quantity(line.quantity, f"{path}.quantity")
        for name in ("unit_price", "discount", "tax", "total"):
            setattr(line, name, _money(getattr(line, name), f"{path}.{name}"))
    for i, payment in enumerate(data.payments):
        payment.amount = _money(payment.amount, f"payments[{i}].amount")


def transaction_record(*, company, source: Source, data: TransactionData,
                       program: LoyaltyProgram | None = None) -> tuple[Transaction, bool]:
    """Record a sale, or update it when the same (source, external id) comes again.

    Returns (transaction, created). Line items and payments are replaced by what was sent;
    the points it earns are brought in step with the ledger, so a resend never awards
    twice and a void takes its points back.
    """
    transaction_data_validate(data)
    if source.company_id != company.pk:
        raise InvalidTransaction("That source belongs to another company.")
    with db.atomic(durable=True):
        return transaction_record_atomic(company=company, source=source, data=data,
                                         program=program)


def transaction_record_atomic(*, company, source: Source, data: TransactionData,
                              program: LoyaltyProgram | None = None
                              ) -> tuple[Transaction, bool]:
    """The body of transaction_record, for callers that batch several in one transaction
    (a file import). The caller validated `data` and opened the transaction."""
    if data.store_id is not None and not company.stores.filter(pk=data.store_id).exists():
        raise InvalidTransaction(f"store: no store {data.store_id} in this company.",
                                 extra={"field": "store"})
    if program is None:
        program = loyalty_program_get(company=company)
    key = {"company": company, "source": source, "external_id": data.external_id}
    previous = Transaction.objects.filter(**key).values_list("pk", "persona_id").first()
    previous_owner = previous[1] if previous else None
    # Balance changes need the persona rows locked first (old and new owner, pk order).
    personas = personas_lock(company=company, persona_ids=[previous_owner, data.persona_id])
    if data.persona_id is not None and data.persona_id not in personas:
        raise InvalidTransaction(f"persona: no persona {data.persona_id} in this company.",
                                 extra={"field": "persona"})

    values = {
        "store_id": data.store_id, "persona_id": data.persona_id,
        "occurred_at": data.occurred_at, "channel": data.channel,
        "fulfillment": data.fulfillment, "employee": data.employee,
        "subtotal": data.subtotal, "discount_total": data.discount_total,
        "tax_total": data.tax_total, "total": data.total, "status": data.status,
    }
    txn, created = _transaction_upsert(key=key, values=values, exists=previous is not None)
    if not created:
        # Another call may have moved it between our read and our lock: whoever holds
        # points from it must be locked too before the ledger is touched.
        owners = set(txn.points_entries.values_list("persona_id", flat=True)) - set(personas)
        if owners:
            personas.update(personas_lock(company=company, persona_ids=owners))
        txn.line_items.all().delete()
        txn.payments.all().delete()
    LineItem.objects.bulk_create(
        LineItem(transaction=txn, line_no=i + 1, sku=line.sku, product=line.product.strip(),
                 brand=line.brand, category=line.category, quantity=line.quantity,
                 unit_price=line.unit_price, discount=line.discount, tax=line.tax,
                 tax_included=line.tax_included, total=line.total)
        for i, line in enumerate(data.line_items)
    )
    if data.payments:
        Payment.objects.bulk_create(
            Payment(transaction=txn, method=p.method, amount=p.amount) for p in data.payments
        )
    points_sync_for_transaction_locked(transaction=txn, program=program, personas=personas,
                                       new=created)

    _last_purchase_note(txn, personas.get(txn.persona_id))
    personas_save_derived_locked(personas.values())
    return txn, created


def _last_purchase_note(txn: Transaction, owner) -> None:
    if owner is not None and txn.status == Transaction.Status.COMPLETED and (
        owner.last_purchase_at is None or owner.last_purchase_at < txn.occurred_at
    ):
        owner.last_purchase_at = txn.occurred_at


def _store_ids_check(company, items: list[TransactionData]) -> None:
    wanted = {d.store_id for d in items if d.store_id is not None}
    if wanted:
        known = set(company.stores.filter(pk__in=wanted).values_list("pk", flat=True))
        for i, d in enumerate(items):
            if d.store_id is not None and d.store_id not in known:
                raise InvalidTransaction(f"[{i}] store: no store {d.store_id} in this company.",
                                         extra={"field": f"[{i}].store", "index": i})


def transactions_record_batch(*, company, source: Source,
                              items: list[TransactionData]) -> list[Transaction]:
    """Record many sales in one database transaction, set-wise: the same outcome as
    calling transaction_record for each, in a handful of statements. Sales already
    recorded (or repeated within the batch) go through the one-by-one path."""
    for i, data in enumerate(items):
        try:
            transaction_data_validate(data)
        except InvalidTransaction as exc:
            raise InvalidTransaction(f"[{i}] {exc.message}",
                                     extra={**exc.extra, "index": i}) from None
    if source.company_id != company.pk:
        raise InvalidTransaction("That source belongs to another company.")
    _store_ids_check(company, items)
    with db.atomic(durable=True):
        program = loyalty_program_get(company=company)
        ids = [d.external_id for d in items]
        previous = dict(Transaction.objects.filter(company=company, source=source,
                                                   external_id__in=ids)
                        .values_list("external_id", "persona_id"))
        fresh, repeats, seen = [], [], set(previous)
        for data in items:
            (repeats if data.external_id in seen else fresh).append(data)
            seen.add(data.external_id)
        # Every persona this batch can touch, locked once, in pk order.
        personas = personas_lock(company=company, persona_ids=[
            *previous.values(), *(d.persona_id for d in items)])
        for i, data in enumerate(items):
            if data.persona_id is not None and data.persona_id not in personas:
                raise InvalidTransaction(f"[{i}] persona: no persona {data.persona_id} in this "
                                         f"company.", extra={"field": f"[{i}].persona"})

        txns = Transaction.objects.bulk_create([
            Transaction(company=company, source=source, external_id=d.external_id,
                        store_id=d.store_id, persona_id=d.persona_id, occurred_at=d.occurred_at,
                        channel=d.channel, fulfillment=d.fulfillment, employee=d.employee,
                        subtotal=d.subtotal, discount_total=d.discount_total,
                        tax_total=d.tax_total, total=d.total, status=d.status)
            for d in fresh
        ], batch_size=1000)
        LineItem.objects.bulk_create([
            LineItem(transaction=txn, line_no=n + 1, sku=line.sku, product=line.product.strip(),
                     brand=line.brand, category=line.category, quantity=line.quantity,
                     unit_price=line.unit_price, discount=line.discount, tax=line.tax,
                     tax_included=line.tax_included, total=line.total)
            for txn, data in zip(txns, fresh, strict=True)
            for n, line in enumerate(data.line_items)
        ], batch_size=2000)
        Payment.objects.bulk_create([
            Payment(transaction=txn, method=p.method, amount=p.amount)
            for txn, data in zip(txns, fresh, strict=True) for p in data.payments
        ], batch_size=2000)
        entries = []
        for txn in sorted(txns, key=lambda t: (t.occurred_at, t.pk)):
            owner = personas.get(txn.persona_id)
            points = earning_target(transaction=txn, program=program, owner=owner)
            if points:
                entries.append(entry_build_locked(
                    persona=owner, delta=points, kind=PointsEntry.Kind.EARN, transaction=txn,
                    idempotency_key=earning_key(transaction=txn, persona_id=owner.pk, count=0)))
            _last_purchase_note(txn, owner)
        PointsEntry.objects.bulk_create(entries, batch_size=2000)
        personas_save_derived_locked(personas.values())

        recorded = {t.external_id: t for t in txns}
        for data in repeats:
            txn, _ = transaction_record_atomic(company=company, source=source, data=data,
                                               program=program)
            recorded[data.external_id] = txn
        return [recorded[d.external_id] for d in items]


def _transaction_upsert(*, key, values, exists: bool) -> tuple[Transaction, bool]:
    if not exists:
        try:
            with db.atomic():
                return Transaction.objects.create(**key, **values), True
        except IntegrityError:
            pass  # the same id arrived concurrently and won the insert: update that row
    existing = Transaction.objects.select_for_update(of=("self",)).get(**key)
    for name, value in values.items():
        setattr(existing, name, value)
    existing.save()
    return existing, False
