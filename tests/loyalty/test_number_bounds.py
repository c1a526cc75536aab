"""Every number the POS API accepts fits its column and every value derived from it;
past a bound the answer is a 400 naming the field, never a 500 or a quiet change."""

from decimal import Decimal

import pytest
from django.db import DataError, connection, transaction

from loyalty.bounds import POINTS_MAX
from loyalty.models import LineItem, LoyaltyProgram, Offer, Persona, PointsEntry, Transaction
from stores.services import api_key_create
from tests.factories import PersonaFactory
from tests.loyalty.test_pos_api import pos_client, post

BIG = "9999999999.99"


@pytest.fixture
def register(company, store):
    LoyaltyProgram.objects.get_or_create(company=company)
    persona = PersonaFactory(company=company, is_member=True)
    _, raw = api_key_create(company=company, name="Register 1", level=1)
    return pos_client(raw, company), persona


def sale(store, persona, *, txn="B-1", subtotal="10.00", tax="0", items=None, discounts=()):
    return {"transaction_id": txn, "store_id": store.pk, "persona_id": persona.pk, "subtotal": subtotal,
            "tax_total": tax, "discounts": list(discounts),
            "items": items or [{"product": "Gummies", "quantity": "1", "unit_price": subtotal}]}


def refused(response, field):
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "out_of_range" and body["field"] == field, body
    assert not Transaction.objects.exists() and not PointsEntry.objects.exists()
    return body


def test_send_transaction_whose_points_pass_the_limit_is_refused_naming_subtotal(register, store):
    # given a member and a sale that would earn 4,294,967,396 points (past 2**32)
    client, persona = register
    # when the POS sends it
    response = post(client, "send_transaction", sale(store, persona, subtotal="4294967396.00"))
    # then it is a 400 naming the subtotal, and no points wrap around to 100
    body = refused(response, "subtotal")
    assert f"{POINTS_MAX:,}" in body["detail"]
    persona.refresh_from_db()
    assert persona.points_balance == 0


def test_send_transaction_just_within_the_points_limit_earns_them_all(register, store):
    # given a sale that earns exactly the most points a sale may earn
    client, persona = register
    # when it is sent
    response = post(client, "send_transaction", sale(store, persona, subtotal=f"{POINTS_MAX}.00"))
    # then every point is on the ledger, in a 64-bit column
    assert response.status_code == 201, response.content
    assert response.json()["points_earned"] == POINTS_MAX
    persona.refresh_from_db()
    assert persona.points_balance == persona.lifetime_points == POINTS_MAX


def test_send_transaction_subtotal_plus_tax_past_the_column_is_refused(register, store):
    client, persona = register
    # when the subtotal is the largest amount and tax comes on top
    response = post(client, "send_transaction", sale(store, persona, subtotal=BIG, tax="7.50"))
    # then the total cannot be stored: a 400 naming tax_total
    refused(response, "tax_total")


def test_send_transaction_quantity_times_price_past_the_column_is_refused(register, store):
    client, persona = register
    items = [{"product": "Gummies", "quantity": "99999999.999", "unit_price": BIG}]
    response = post(client, "send_transaction", sale(store, persona, subtotal="1.00", items=items))
    refused(response, "items[0].quantity")


def test_send_transaction_quantity_past_its_bound_is_a_field_error(register, store):
    client, persona = register
    items = [{"product": "Gummies", "quantity": "999999999.999", "unit_price": "1.00"}]
    response = post(client, "send_transaction", sale(store, persona, subtotal="1.00", items=items))
    assert response.status_code == 400
    assert "quantity" in response.json()["fields"]["items"]["0"]


def test_send_transaction_discounts_summing_past_the_column_are_refused(register, store):
    client, persona = register
    response = post(client, "send_transaction",
                    sale(store, persona, subtotal="1.00", discounts=[{"amount": BIG}] * 20))
    refused(response, "discounts")


def test_send_transaction_largest_amounts_that_fit_are_stored_exactly(register, store, company):
    # given a non-member (earns nothing) and the largest amounts every column holds
    client, _ = register
    stranger = PersonaFactory(company=company, is_member=False)
    LoyaltyProgram.objects.filter(company=company).update(members_only=True)
    items = [{"product": "Gummies", "quantity": "99999999.999", "unit_price": "100.00"}]
    response = post(client, "send_transaction", sale(store, stranger, subtotal=BIG, items=items))
    assert response.status_code == 201, response.content
    txn = Transaction.objects.get()
    assert (txn.subtotal, txn.total) == (Decimal(BIG), Decimal(BIG))
    line = LineItem.objects.get()
    assert (line.quantity, line.total) == (Decimal("99999999.999"), Decimal("9999999999.90"))


def test_raw_cursor_and_orm_round_trip_64_bit_integers_exactly(register):
    # given values past 32 bits
    _, persona = register
    with connection.cursor() as cursor:
        # when bound as parameters: psycopg binds by value (int2/int4/int8/numeric)
        cursor.execute("select %s::bigint, %s", [4294967396, 5_000_000_000])
        # then they come back exactly, never wrapped to 100 or a negative number
        assert cursor.fetchone() == (4294967396, 5_000_000_000)
        # and a 32-bit cast refuses loudly instead of wrapping
        with pytest.raises(DataError, match="out of range"), transaction.atomic():
            cursor.execute("select %s::int", [4294967396])
    # and through the ORM, written, filtered on and read back
    offer = Offer.objects.create(company=persona.company, name="Big", kind="flat", amount=1,
                                 points_cost=5_000_000_000)
    assert Offer.objects.get(points_cost=5_000_000_000).pk == offer.pk
    assert not Offer.objects.filter(points_cost=5_000_000_000 - 2**32).exists()
    assert Persona.objects.filter(pk=persona.pk, points_balance__lt=5_000_000_000).exists()


def test_redeem_with_a_basket_past_the_column_is_refused_naming_it(register, store, company):
    # given a 10%-off offer and a member with the points for it
    client, persona = register
    offer = Offer.objects.create(company=company, name="10% off", kind="percent", amount=10, points_cost=0)
    items = [{"product": "Gummies", "quantity": "99999999.999", "unit_price": BIG}]
    # when the POS redeems it on a basket whose lines add up past any amount column
    response = post(client, "redeem", {"persona_id": persona.pk, "cart_id": "C-1", "offer_id": offer.pk,
                                       "basket": {"store_id": store.pk, "items": items}})
    # then it is a 400 naming the line, not a 500 from the discount's column
    assert response.status_code == 400, response.content
    assert response.json()["field"] == "basket.items[0].quantity"
    # and two lines that each fit but together do not are refused on the total
    items = [{"product": "Gummies", "quantity": "1", "unit_price": BIG}] * 2
    response = post(client, "lookup", {"persona_id": persona.pk,
                                       "basket": {"store_id": store.pk, "items": items}})
    assert response.status_code == 400 and response.json()["field"] == "basket.tax_total", response.content
