from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.utils import timezone

from loyalty.errors import InvalidTransaction
from loyalty.models import LoyaltyProgram, PointsEntry, Transaction
from loyalty.services import (
    LineItemData,
    PaymentData,
    TransactionData,
    transaction_record,
    transactions_record_batch,
)
from tests.factories import PersonaFactory, RetailStoreFactory, SourceFactory


@pytest.fixture
def source(company):
    return SourceFactory(company=company)


@pytest.fixture
def persona(company):
    return PersonaFactory(company=company)


def sale(external_id="R-1", *, persona=None, store=None, subtotal="100.00", discount="0",
         tax="15.00", status="completed", occurred_at=None, lines=None):
    subtotal, discount, tax = Decimal(subtotal), Decimal(discount), Decimal(tax)
    return TransactionData(
        external_id=external_id, occurred_at=occurred_at or timezone.now(),
        store_id=store.pk if store else None, persona_id=persona.pk if persona else None,
        subtotal=subtotal, discount_total=discount, tax_total=tax,
        total=subtotal - discount + tax, status=status,
        line_items=lines if lines is not None else [
            LineItemData(product="Blue Dream 3.5g", brand="Green Dot", category="Flower",
                         quantity=Decimal("2"), unit_price=(subtotal / 2).quantize(Decimal("0.01")),
                         total=subtotal)],
        payments=[PaymentData(method="Cash", amount=subtotal - discount + tax)],
    )


def ledger_sum(persona):
    return PointsEntry.objects.filter(persona=persona).aggregate(s=Sum("delta"))["s"] or 0


def test_transaction_record_awards_points_on_pre_tax_amount(company, source, persona, store):
    # given a program of 1 point per dollar on the pre-tax amount
    # when a $100 sale with $10 discount and $13.50 tax is recorded
    txn, created = transaction_record(company=company, source=source, data=sale(
        persona=persona, store=store, discount="10", tax="13.50"))
    # then the persona earns 90 points, once, with the lines and payment stored
    persona.refresh_from_db()
    assert created is True
    assert persona.points_balance == 90 and persona.lifetime_points == 90
    assert ledger_sum(persona) == 90
    assert txn.line_items.count() == 1 and txn.payments.get().amount == Decimal("103.50")
    assert persona.last_purchase_at == txn.occurred_at


def test_transaction_record_same_id_twice_is_one_transaction_and_one_award(
        company, source, persona):
    # given a recorded sale
    transaction_record(company=company, source=source, data=sale(persona=persona))
    # when the same sale is sent again
    txn, created = transaction_record(company=company, source=source, data=sale(persona=persona))
    # then nothing is duplicated
    persona.refresh_from_db()
    assert created is False
    assert Transaction.objects.filter(company=company).count() == 1
    assert txn.line_items.count() == 1 and txn.payments.count() == 1
    assert PointsEntry.objects.filter(persona=persona).count() == 1
    assert persona.points_balance == 100


def test_transaction_record_resend_with_new_amount_moves_points_by_the_difference(
        company, source, persona):
    transaction_record(company=company, source=source, data=sale(persona=persona))
    transaction_record(company=company, source=source,
                       data=sale(persona=persona, subtotal="140.00"))
    transaction_record(company=company, source=source,
                       data=sale(persona=persona, subtotal="120.00"))
    persona.refresh_from_db()
    assert persona.points_balance == 120 == ledger_sum(persona)
    kinds = list(PointsEntry.objects.filter(persona=persona).order_by("id")
                 .values_list("kind", "delta"))
    assert kinds == [("earn", 100), ("earn", 40), ("reverse", -20)]


def test_transaction_record_void_reverses_what_it_earned(company, source, persona):
    transaction_record(company=company, source=source, data=sale(persona=persona))
    transaction_record(company=company, source=source,
                       data=sale(persona=persona, status="voided"))
    persona.refresh_from_db()
    assert persona.points_balance == 0 == ledger_sum(persona)
    assert Transaction.objects.get().status == "voided"


def test_transaction_record_void_after_points_were_spent_stops_at_zero(
        company, source, persona, admin_user):
    from loyalty.services import points_adjust

    transaction_record(company=company, source=source, data=sale(persona=persona))
    points_adjust(company=company, persona_id=persona.pk, delta=-80, staff_user=admin_user,
                  reason="spent")
    transaction_record(company=company, source=source,
                       data=sale(persona=persona, status="voided"))
    persona.refresh_from_db()
    assert persona.points_balance == 0 == ledger_sum(persona)


def test_transaction_record_moving_a_sale_to_another_persona_moves_its_points(
        company, source, persona):
    other = PersonaFactory(company=company)
    transaction_record(company=company, source=source, data=sale(persona=persona))
    transaction_record(company=company, source=source, data=sale(persona=other))
    persona.refresh_from_db()
    other.refresh_from_db()
    assert (persona.points_balance, other.points_balance) == (0, 100)
    assert ledger_sum(persona) == 0 and ledger_sum(other) == 100


def test_transaction_record_non_member_earns_nothing_until_program_allows(
        company, source):
    guest = PersonaFactory(company=company, is_member=False, enrolled_at=None)
    transaction_record(company=company, source=source, data=sale("A", persona=guest))
    guest.refresh_from_db()
    assert guest.points_balance == 0
    LoyaltyProgram.objects.filter(company=company).update(members_only=False)
    transaction_record(company=company, source=source, data=sale("B", persona=guest))
    guest.refresh_from_db()
    assert guest.points_balance == 100


def test_transaction_record_post_tax_program(company, source, persona):
    LoyaltyProgram.objects.update_or_create(
        company=company, defaults={"earn_on": "post_tax", "points_per_unit": Decimal("2")})
    transaction_record(company=company, source=source,
                       data=sale(persona=persona, subtotal="10.00", tax="1.25"))
    persona.refresh_from_db()
    assert persona.points_balance == 22  # floor(11.25 * 2)


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: setattr(d, "subtotal", Decimal("-1")), "subtotal"),
    (lambda d: setattr(d, "total", "abc"), "total"),
    (lambda d: setattr(d.line_items[0], "unit_price", Decimal("-5")), "line_items[0].unit_price"),
    (lambda d: setattr(d.payments[0], "amount", Decimal("-5")), "payments[0].amount"),
    (lambda d: setattr(d, "external_id", " "), "external_id"),
    (lambda d: setattr(d, "occurred_at", timezone.now().replace(tzinfo=None)), "occurred_at"),
    (lambda d: setattr(d, "fulfillment", "drone"), "fulfillment"),
])
def test_transaction_record_bad_input_names_the_field_and_writes_nothing(
        company, source, persona, mutate, field):
    data = sale(persona=persona)
    mutate(data)
    with pytest.raises(InvalidTransaction) as exc:
        transaction_record(company=company, source=source, data=data)
    assert exc.value.extra["field"] == field
    assert field in exc.value.message
    assert not Transaction.objects.exists() and not PointsEntry.objects.exists()


def test_transaction_record_refuses_another_companys_store_and_persona(
        company, other_company, source):
    foreign_store = RetailStoreFactory(company=other_company)
    foreign_persona = PersonaFactory(company=other_company)
    with pytest.raises(InvalidTransaction, match="store"):
        transaction_record(company=company, source=source, data=sale(store=foreign_store))
    with pytest.raises(InvalidTransaction, match="persona"):
        transaction_record(company=company, source=source, data=sale(persona=foreign_persona))
    assert not Transaction.objects.exists()
    foreign_persona.refresh_from_db()
    assert foreign_persona.points_balance == 0


def test_transactions_record_batch_matches_one_by_one(company, source, store):
    # given the same sales recorded in a batch and one by one for two look-alike personas
    a, b = PersonaFactory(company=company), PersonaFactory(company=company)
    base = timezone.now() - timedelta(days=3)
    specs = [("1", "50.00", "completed"), ("2", "30.00", "voided"), ("3", "19.99", "completed")]

    def sales(persona, prefix):
        return [sale(f"{prefix}{i}", persona=persona, store=store, subtotal=amount, status=st,
                     occurred_at=base + timedelta(hours=n))
                for n, (i, amount, st) in enumerate(specs)]

    transactions_record_batch(company=company, source=source, items=sales(a, "A"))
    for data in sales(b, "B"):
        transaction_record(company=company, source=source, data=data)
    a.refresh_from_db()
    b.refresh_from_db()
    # then both end in the same place
    assert (a.points_balance, a.lifetime_points, a.last_purchase_at) == (
        b.points_balance, b.lifetime_points, b.last_purchase_at)
    assert a.points_balance == 69 == ledger_sum(a)
    # and a batch sent again changes nothing
    transactions_record_batch(company=company, source=source, items=sales(a, "A"))
    a.refresh_from_db()
    assert a.points_balance == 69 and PointsEntry.objects.filter(persona=a).count() == 2
    assert Transaction.objects.filter(external_id__startswith="A").count() == 3


def test_transactions_record_batch_bad_row_says_which_and_writes_nothing(
        company, source, persona):
    items = [sale("ok", persona=persona), sale("bad", persona=persona, subtotal="-3")]
    with pytest.raises(InvalidTransaction) as exc:
        transactions_record_batch(company=company, source=source, items=items)
    assert exc.value.extra["index"] == 1 and "[1] subtotal" in exc.value.message
    assert not Transaction.objects.exists()
