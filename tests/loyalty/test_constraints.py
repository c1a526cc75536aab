"""The database itself refuses impossible rows, whatever code writes them."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.utils import timezone

from loyalty.models import LineItem, Payment, Persona, PersonaMerge, PointsEntry, Transaction
from tests.factories import PersonaFactory, SourceFactory


def refused(fn):
    with pytest.raises(IntegrityError), transaction.atomic():
        fn()


def test_persona_balance_cannot_go_negative(company):
    persona = PersonaFactory(company=company)
    refused(lambda: Persona.objects.filter(pk=persona.pk).update(points_balance=-1))


def test_persona_member_needs_enrolled_at(company):
    persona = PersonaFactory(company=company)
    refused(lambda: Persona.objects.filter(pk=persona.pk).update(enrolled_at=None))


def test_transaction_amounts_and_uniqueness(company):
    source = SourceFactory(company=company)
    fields = {"company": company, "source": source, "occurred_at": timezone.now(),
              "subtotal": Decimal("1"), "total": Decimal("1")}
    txn = Transaction.objects.create(external_id="A", **fields)
    refused(lambda: Transaction.objects.create(external_id="A", **fields))
    refused(lambda: Transaction.objects.create(external_id="B", **{**fields,
                                                                   "total": Decimal("-1")}))
    refused(lambda: LineItem.objects.create(transaction=txn, line_no=1, product="x",
                                            quantity=1, unit_price=Decimal("-2"),
                                            total=Decimal("0")))
    refused(lambda: Payment.objects.create(transaction=txn, method="Cash",
                                           amount=Decimal("-1")))


def test_points_entry_rules(company, admin_user):
    persona = PersonaFactory(company=company)
    base = {"company": company, "persona": persona, "balance_after": 5}
    refused(lambda: PointsEntry.objects.create(delta=0, kind="earn", idempotency_key="a",
                                               **base))
    refused(lambda: PointsEntry.objects.create(delta=5, kind="adjust", idempotency_key="b",
                                               **base))  # no staff, no reason
    PointsEntry.objects.create(delta=5, kind="earn", idempotency_key="c", **base)
    refused(lambda: PointsEntry.objects.create(delta=5, kind="earn", idempotency_key="c",
                                               **base))
    refused(lambda: PointsEntry.objects.create(
        delta=-10, kind="redeem", idempotency_key="d", **{**base, "balance_after": -5}))


def test_a_persona_is_merged_once_and_never_into_itself(company):
    survivor = PersonaFactory(company=company)
    merge = {"company": company, "persona": survivor, "reason": "Test"}
    PersonaMerge.objects.create(merged_persona_id=survivor.pk + 1000, **merge)
    refused(lambda: PersonaMerge.objects.create(merged_persona_id=survivor.pk + 1000, **merge))
    refused(lambda: PersonaMerge.objects.create(merged_persona_id=survivor.pk, **merge))
