"""A return sent again with another refund amount: its reversal of the original sale's
points follows the new amount, and the answer says how much it took back in all."""


import pytest
from django.db.models import Sum
from django.test import Client

from loyalty.models import LoyaltyProgram, PointsEntry, Transaction
from stores.services import api_key_create
from tests.factories import PersonaFactory

API = "/api/pos/v1/"


@pytest.fixture
def register(company, store):
    """A program that reverses returns, one point a dollar, and a customer who bought $100."""
    LoyaltyProgram.objects.update_or_create(company=company, defaults={"refund_policy": "reverse"})
    persona = PersonaFactory(company=company)
    _, raw = api_key_create(company=company, name="Register 1", level=1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_ACCOUNT_UID=str(company.account_uid))
    sale = send(client, store, persona, "S-1", "100.00")
    assert sale.status_code == 201 and sale.json()["points_balance"] == 100
    return client, persona


def send(client, store, persona, transaction_id, amount, *, original="", status="closed"):
    return client.post(API + "send_transaction", {
        "transaction_id": transaction_id, "store_id": store.pk, "persona_id": persona.pk,
        "subtotal": amount, "status": status, "original_transaction_id": original,
        "items": [{"product": "Vape", "quantity": "1", "unit_price": amount}]},
        content_type="application/json")


def ledger(persona):
    persona.refresh_from_db()
    entries = PointsEntry.objects.filter(persona=persona)
    assert (entries.aggregate(s=Sum("delta"))["s"] or 0) == persona.points_balance
    assert not entries.filter(balance_after__lt=0).exists()
    return persona.points_balance


def test_send_transaction_return_amended_up_reverses_the_new_amount_in_all(register, store):
    client, persona = register
    # given a $40 return of the $100 sale
    first = send(client, store, persona, "S-1-R", "40.00", original="S-1")
    assert first.status_code == 201 and first.json()["points_reversed"] == 40
    assert ledger(persona) == 60

    # when the register sends it again as a $60 return
    amended = send(client, store, persona, "S-1-R", "60.00", original="S-1")

    # then 60 points are reversed in all, and the answer says so
    assert amended.status_code == 200, amended.json()
    assert amended.json()["points_reversed"] == 60 and amended.json()["points_balance"] == 40
    assert ledger(persona) == 40
    original = Transaction.objects.get(external_id=f"{store.pk}/S-1")
    assert sorted(original.points_entries.values_list("kind", "delta")) == [
        ("earn", 100), ("reverse", -40), ("reverse", -20)]


def test_send_transaction_return_amended_down_gives_the_difference_back(register, store):
    client, persona = register
    # given a $60 return of the $100 sale
    assert send(client, store, persona, "S-1-R", "60.00", original="S-1").json()["points_reversed"] == 60
    assert ledger(persona) == 40

    # when it is sent again as a $40 return
    amended = send(client, store, persona, "S-1-R", "40.00", original="S-1")

    # then 20 points come back: 40 reversed in all
    assert amended.status_code == 200, amended.json()
    assert amended.json()["points_reversed"] == 40 and amended.json()["points_balance"] == 60
    assert ledger(persona) == 60


def test_send_transaction_return_resent_unchanged_writes_nothing(register, store):
    client, persona = register
    # given a $40 return
    send(client, store, persona, "S-1-R", "40.00", original="S-1")
    entries = PointsEntry.objects.filter(persona=persona).count()

    # when it is sent again as it was
    again = send(client, store, persona, "S-1-R", "40.00", original="S-1")

    # then nothing more is written and the answer is the same total
    assert again.status_code == 200 and again.json()["points_reversed"] == 40
    assert PointsEntry.objects.filter(persona=persona).count() == entries
    assert ledger(persona) == 60


def test_send_transaction_returns_never_reverse_more_than_the_sale_earned(register, store):
    client, persona = register
    # given two returns of the same $100 sale, $70 then $50
    assert send(client, store, persona, "S-1-R1", "70.00", original="S-1").json()["points_reversed"] == 70
    second = send(client, store, persona, "S-1-R2", "50.00", original="S-1")
    assert second.json()["points_reversed"] == 30  # only 30 of the sale's points were left

    # when the first is amended down to $20
    assert send(client, store, persona, "S-1-R1", "20.00", original="S-1").json()["points_reversed"] == 20

    # then the second, sent again, can now take back its full 50; never more than 100 in all
    assert send(client, store, persona, "S-1-R2", "50.00", original="S-1").json()["points_reversed"] == 50
    assert ledger(persona) == 30


def test_send_transaction_return_voided_gives_its_reversal_back(register, store):
    client, persona = register
    # given a $40 return
    send(client, store, persona, "S-1-R", "40.00", original="S-1")

    # when the register voids it
    voided = send(client, store, persona, "S-1-R", "40.00", original="S-1", status="voided")

    # then the 40 points come back
    assert voided.status_code == 200 and voided.json()["points_reversed"] == 0
    assert ledger(persona) == 100


def test_send_transaction_sale_answers_points_reversed_zero(register, store):
    client, persona = register
    # when a sale that is not a return is sent, then it reversed nothing
    assert send(client, store, persona, "S-2", "10.00").json()["points_reversed"] == 0


@pytest.mark.parametrize("headers", [{}, {"HTTP_IDEMPOTENCY_KEY": "retry-of-S-1"}])
def test_original_sale_resent_after_its_return_does_not_earn_the_reversed_points_again(
        register, store, headers):
    client, persona = register
    # given the $100 sale (100 points) and a $40 return that took 40 back
    assert send(client, store, persona, "S-1-R", "40.00", original="S-1").json()["points_reversed"] == 40
    assert ledger(persona) == 60
    # when the register sends the original sale again, unchanged (a retry; its own key or none)
    again = client.post(API + "send_transaction", {
        "transaction_id": "S-1", "store_id": store.pk, "persona_id": persona.pk, "subtotal": "100.00",
        "status": "closed", "items": [{"product": "Vape", "quantity": "1", "unit_price": "100.00"}]},
        content_type="application/json", **headers)
    # then it is accepted, and the balance stays the sale's points less what the return reversed
    assert again.status_code in (200, 201), again.json()
    assert again.json()["points_balance"] == 60
    assert ledger(persona) == 60
    original = Transaction.objects.get(external_id=f"{store.pk}/S-1")
    assert sorted(original.points_entries.values_list("kind", "delta")) == [("earn", 100), ("reverse", -40)]
    # and the return, sent again too, still takes back 40 in all
    assert send(client, store, persona, "S-1-R", "40.00", original="S-1").json()["points_reversed"] == 40
    assert ledger(persona) == 60
