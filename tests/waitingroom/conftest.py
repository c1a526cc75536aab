import datetime as dt
from decimal import Decimal

import pytest

from loyalty.models import Source
from loyalty.services.offers import wallet_grant
from loyalty.services.personas import source_get_or_create
from loyalty.services.transactions import LineItemData, TransactionData, transaction_record
from stores.models import Role
from tests.factories import MembershipFactory, OfferFactory, PersonaFactory, RetailStoreFactory


@pytest.fixture
def queue_store(company):
    return RetailStoreFactory(company=company, name="Denver – Broadway", state="CO",
                              opt_in_queue_enabled=True)


@pytest.fixture
def other_store(company):
    return RetailStoreFactory(company=company, name="Boulder", state="CO", opt_in_queue_enabled=True)


@pytest.fixture
def store_budtender(queue_store):
    """A budtender who works at the Denver store only."""
    membership = MembershipFactory(company=queue_store.company, role=Role.BUDTENDER)
    membership.stores.set([queue_store])
    return membership.user


def sale(persona, store, external_id, when, lines, fulfillment="in_store"):
    source = source_get_or_create(company=persona.company, kind=Source.Kind.POS_API)
    items = [LineItemData(product=product, brand=brand, category=category, quantity=Decimal(qty),
                          unit_price=Decimal(price), total=Decimal(qty) * Decimal(price))
             for product, brand, category, qty, price in lines]
    subtotal = sum((i.total for i in items), Decimal("0"))
    transaction_record(company=persona.company, source=source, data=TransactionData(
        external_id=external_id, occurred_at=when, subtotal=subtotal, total=subtotal,
        store_id=store.pk, persona_id=persona.pk, fulfillment=fulfillment, line_items=items))


@pytest.fixture
def regular(company, queue_store, admin_user):
    """A loyalty member with two past orders and an offer in the wallet."""
    persona = PersonaFactory(company=company, first_name="Rita", last_name="Regular",
                             phone="+13035550123", favourite_store=queue_store)
    now = dt.datetime.now(dt.UTC)
    sale(persona, queue_store, "R-1", now - dt.timedelta(days=20),
         [("Blue Dream 3.5g", "Kind Farms", "Flower", "2", "30.00"),
          ("Sour Gummies", "Wana", "Edibles", "1", "18.00")])
    sale(persona, queue_store, "R-2", now - dt.timedelta(days=3),
         [("Blue Dream 3.5g", "Kind Farms", "Flower", "1", "30.00")], fulfillment="delivery")
    offer = OfferFactory(company=company, name="Free pre-roll", points_cost=0)
    wallet_grant(company=company, persona_id=persona.pk, offer_id=offer.pk, staff_user=admin_user)
    persona.refresh_from_db()
    return persona
