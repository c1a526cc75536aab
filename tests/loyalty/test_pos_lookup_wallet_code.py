"""The POS looks a customer up by the code of a wallet item (typed, or scanned off the QR
code on their loyalty page) and gets that item back as `scanned`."""

import datetime as dt

import pytest
from django.test import Client
from django.utils import timezone

from loyalty.models import Offer, WalletItem
from loyalty.services.redemptions import offer_purchase
from tests.factories import PersonaFactory
from tests.loyalty.test_pos_api import API, basket, counter, pos_client, post  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def test_lookup_by_wallet_code_finds_the_holder_with_the_item_applicable(counter, company, store):  # noqa: F811
    # given a member who bought $10 off into their wallet
    client, offer, persona = counter
    item = offer_purchase(company=company, persona_id=persona.pk, offer_id=offer.pk)

    # when the POS sends the code as a customer might show it (lower case, with a dash)
    code = f"{item.code[:4].lower()}-{item.code[4:]}"
    response = post(client, "lookup", {"wallet_code": code, "basket": basket(store)})

    # then it finds them, with the item in the wallet and scanned, applicable to the basket
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["persona"]["id"] == persona.pk and body["points_balance"] == 150
    assert body["scanned"] == {"wallet_item_id": item.pk, "offer_id": offer.pk, "name": "$10 off",
                               "code": item.code, "state": "available", "applicable": True, "reason": ""}
    assert [w["code"] for w in body["wallet"]] == [item.code]


def test_lookup_by_wallet_code_of_a_used_item_finds_the_customer_not_the_reward(counter, company, store):  # noqa: F811
    # given an item already used
    client, offer, persona = counter
    item = offer_purchase(company=company, persona_id=persona.pk, offer_id=offer.pk)
    WalletItem.objects.filter(pk=item.pk).update(state=WalletItem.State.USED)

    # when its code is scanned
    body = post(client, "lookup", {"wallet_code": item.code}).json()

    # then the customer is found, the item shown but not applicable, and not in the wallet
    assert body["persona"]["id"] == persona.pk
    assert body["scanned"]["state"] == "used" and body["scanned"]["applicable"] is False
    assert "already used" in body["scanned"]["reason"] and body["wallet"] == []


def test_lookup_by_wallet_code_of_another_company_is_a_404(counter, company, other_company):  # noqa: F811
    # given a code held in another company
    client, offer, persona = counter
    theirs = Offer.objects.create(company=other_company, name="Theirs", kind="flat", amount=5, points_cost=0)
    far = offer_purchase(company=other_company, persona_id=PersonaFactory(company=other_company).pk,
                         offer_id=theirs.pk)

    # when our POS sends it, and a code nobody has
    answers = [post(client, "lookup", {"wallet_code": far.code}),
               post(client, "lookup", {"wallet_code": "ZZZZ2222"})]

    # then both are a plain 404 not_found, with no data
    for response in answers:
        assert response.status_code == 404 and response.json()["code"] == "not_found"
        assert "persona" not in response.json()


def test_lookup_refuses_a_wallet_code_with_a_phone(counter):  # noqa: F811
    client, _, persona = counter
    response = post(client, "lookup", {"wallet_code": "ABCD2345", "phone": persona.phone})
    assert response.status_code == 400


def test_schema_lists_wallet_code_on_lookup():
    schema = Client().get("/api/schema/", {"format": "json"}).json()
    lookup = schema["components"]["schemas"]["Lookup"]
    assert "wallet_code" in lookup["properties"] and ["wallet_code"] in lookup["x-one-of-required"]
    assert "scanned" in schema["components"]["schemas"]["LookupResponse"]["properties"]
    operation = schema["paths"]["/api/pos/v1/lookup"]["post"]
    assert "wallet_code" in operation["description"]


def test_lookup_by_wallet_code_of_an_ended_offer_is_not_applicable(counter, company):  # noqa: F811
    # given an item whose offer has since ended
    client, _, persona = counter
    ended = Offer.objects.create(company=company, name="Summer $5", kind="flat", amount=5, points_cost=0,
                                 starts_at=timezone.now() - dt.timedelta(days=30),
                                 ends_at=timezone.now() - dt.timedelta(days=1))
    item = WalletItem.objects.create(company=company, persona=persona, offer=ended)

    # when its code is scanned, then the customer is found and the item is not applicable
    body = post(client, "lookup", {"wallet_code": item.code}).json()
    assert body["persona"]["id"] == persona.pk
    assert body["scanned"]["applicable"] is False and "expired" in body["scanned"]["reason"]
