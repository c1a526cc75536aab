"""One customer known twice becomes one persona, with one balance."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Sum
from django.utils import timezone

from analytics.services import rollup_refresh
from loyalty.models import (
    Offer,
    Persona,
    PersonaIdentity,
    PersonaMerge,
    PointsEntry,
    Redemption,
    Tier,
    Transaction,
    WalletItem,
    WebhookDelivery,
)
from loyalty.services import TransactionData, points_adjust, transaction_record
from loyalty.services.personas import persona_merge, source_get_or_create
from loyalty.services.redemptions import (
    Basket,
    BasketItem,
    offer_purchase,
    redemption_apply,
    redemption_reinstate,
)
from loyalty.services.webhooks import webhook_endpoint_create
from stores.errors import DomainError
from stores.models import Role
from tests.factories import MembershipFactory, PersonaFactory, RetailStoreFactory
from waitingroom.models import QueueEntry
from waitingroom.services import queue_check_in

pytestmark = pytest.mark.django_db


def sale(store, persona, ext, subtotal, *, days_ago=0):
    return TransactionData(external_id=ext, occurred_at=timezone.now() - dt.timedelta(days=days_ago),
                           subtotal=Decimal(subtotal), total=Decimal(subtotal), store_id=store.pk,
                           persona_id=persona.pk)


@pytest.fixture
def pos(company):
    return source_get_or_create(company=company, kind="pos_api")


@pytest.fixture
def staff(company):
    return MembershipFactory(company=company, role=Role.ADMIN).user


def ledger_is_whole(persona: Persona) -> None:
    """The balance is the sum of the ledger, and each entry's balance-after is the running
    sum up to it."""
    entries = list(PointsEntry.objects.filter(persona=persona).order_by("id"))
    running = 0
    for entry in entries:
        running += entry.delta
        assert entry.balance_after == running >= 0
    assert running == persona.points_balance


def test_sales_points_and_rewards_of_both_add_up_on_the_survivor(company, store, pos, staff):
    sam = PersonaFactory(company=company, first_name="Sam", email="")
    samuel = PersonaFactory(company=company, first_name="Samuel", email="sam@example.com", sms_opt_in=True)
    transaction_record(company=company, source=pos, data=sale(store, sam, "T-1", "120.00", days_ago=3))
    transaction_record(company=company, source=pos, data=sale(store, samuel, "T-2", "80.00", days_ago=2))
    points_adjust(company=company, persona_id=samuel.pk, delta=100, staff_user=staff, reason="Goodwill")
    offer = Offer.objects.create(company=company, name="$5 off", kind="flat", amount=Decimal("5"),
                                 points_cost=50)
    held = offer_purchase(company=company, persona_id=samuel.pk, offer_id=offer.pk)  # 180 -> 130
    basket = Basket(items=[BasketItem(product="Gummies", unit_price=Decimal("20"))])
    applied = redemption_apply(company=company, persona_id=samuel.pk, cart_id="CART-9", basket=basket,
                               offer_id=offer.pk)  # 130 -> 80

    survivor = persona_merge(company=company, survivor_id=sam.pk, duplicate_id=samuel.pk, reason="Test")

    assert not Persona.objects.filter(pk=samuel.pk).exists()
    assert survivor.points_balance == 120 + 80
    assert survivor.lifetime_points == 120 + 80 + 100
    ledger_is_whole(survivor)
    assert set(Transaction.objects.filter(company=company).values_list("persona_id", flat=True)) == {sam.pk}
    assert WalletItem.objects.get(pk=held.pk).persona_id == sam.pk
    assert Redemption.objects.get(pk=applied.pk).persona_id == sam.pk
    # The name on the survivor stays; what it lacked comes from the duplicate.
    assert (survivor.first_name, survivor.email, survivor.sms_opt_in) == ("Sam", "sam@example.com", True)

    # The reward the duplicate redeemed gives its points back to the survivor.
    redemption_reinstate(company=company, redemption_id=applied.pk)
    survivor.refresh_from_db()
    assert survivor.points_balance == 250
    ledger_is_whole(survivor)

    # A POS resending the duplicate's sale, now under the survivor, earns nothing twice.
    transaction_record(company=company, source=pos, data=sale(store, survivor, "T-2", "80.00", days_ago=2))
    survivor.refresh_from_db()
    assert survivor.points_balance == 250
    assert PointsEntry.objects.filter(persona=survivor).aggregate(s=Sum("delta"))["s"] == 250


def test_identities_enrolment_and_tier_follow_the_merge(company, store, pos):
    Tier.objects.create(company=company, name="Gold", threshold=150)
    cova = source_get_or_create(company=company, kind="cova", name="Cova")
    early = timezone.now() - dt.timedelta(days=400)
    sam = PersonaFactory(company=company, is_member=False, enrolled_at=None)
    samuel = PersonaFactory(company=company, enrolled_at=early)
    PersonaIdentity.objects.create(company=company, persona=samuel, source=cova, external_id="C-2")
    for persona, ext in ((sam, "T-1"), (samuel, "T-2")):
        transaction_record(company=company, source=pos, data=sale(store, persona, ext, "100.00"))
    sam.refresh_from_db()
    assert sam.tier == "" and sam.points_balance == 0  # not a member: earned nothing

    survivor = persona_merge(company=company, survivor_id=sam.pk, duplicate_id=samuel.pk, reason="Test")

    assert survivor.is_member and survivor.enrolled_at == early
    assert survivor.points_balance == 100 and survivor.tier == ""  # 100 < 150
    assert PersonaIdentity.objects.get(source=cova, external_id="C-2").persona_id == sam.pk

    PersonaFactory(company=company)  # someone else, untouched
    third = PersonaFactory(company=company)
    transaction_record(company=company, source=pos, data=sale(store, third, "T-3", "60.00"))
    survivor = persona_merge(company=company, survivor_id=sam.pk, duplicate_id=third.pk, reason="Test")
    assert survivor.points_balance == 160 and survivor.tier == "Gold"
    assert Persona.objects.get(pk=sam.pk).tier == "Gold"

    # The survivor merged in turn: the record of who went where follows it.
    last = PersonaFactory(company=company)
    persona_merge(company=company, survivor_id=last.pk, duplicate_id=sam.pk, reason="Cleanup")
    assert sorted(PersonaMerge.objects.filter(persona=last).values_list(
        "merged_persona_id", "points_moved", "sales_moved", "reason")) == sorted([
            (samuel.pk, 100, 1, "Test"), (third.pk, 60, 1, "Test"), (sam.pk, 160, 3, "Cleanup")])


def test_the_pos_is_told_which_persona_went_and_where(company):
    webhook_endpoint_create(company=company, url="https://pos.example.com/hooks", events=["persona.updated"])
    sam, samuel = PersonaFactory(company=company), PersonaFactory(company=company)

    persona_merge(company=company, survivor_id=sam.pk, duplicate_id=samuel.pk, reason="Test")

    [delivery] = WebhookDelivery.objects.filter(event="persona.updated")
    assert delivery.payload["persona_id"] == sam.pk
    assert (delivery.payload["change"], delivery.payload["merged_persona_id"]) == ("merged", samuel.pk)


def test_another_companys_persona_or_the_same_one_is_refused(company, other_company, pos):
    ours = PersonaFactory(company=company)
    theirs = PersonaFactory(company=other_company)

    with pytest.raises(DomainError, match="belong to this company"):
        persona_merge(company=company, survivor_id=ours.pk, duplicate_id=theirs.pk, reason="Test")
    with pytest.raises(DomainError, match="into itself"):
        persona_merge(company=company, survivor_id=ours.pk, duplicate_id=ours.pk, reason="Test")

    assert Persona.objects.filter(pk__in=[ours.pk, theirs.pk]).count() == 2


def test_places_in_line_follow_and_one_place_per_store_stays(company):
    downtown = RetailStoreFactory(company=company, opt_in_queue_enabled=True)
    uptown = RetailStoreFactory(company=company, opt_in_queue_enabled=True)
    first = queue_check_in(store=downtown, phone="3035550181", first_name="Sam")
    second = queue_check_in(store=downtown, phone="3035550182", first_name="Samuel")
    elsewhere = queue_check_in(store=uptown, phone="3035550182", first_name="Samuel")

    persona_merge(company=company, survivor_id=first.persona_id, duplicate_id=second.persona_id,
                  reason="Test")

    assert set(QueueEntry.objects.values_list("pk", "persona_id")) == {
        (first.pk, first.persona_id), (elsewhere.pk, first.persona_id)}


def test_analytics_count_one_customer_after_the_merge(company, store, pos):
    sam = PersonaFactory(company=company)
    samuel = PersonaFactory(company=company)
    transaction_record(company=company, source=pos, data=sale(store, sam, "T-1", "50.00", days_ago=5))
    transaction_record(company=company, source=pos, data=sale(store, samuel, "T-2", "50.00", days_ago=1))
    rollup_refresh(company=company)

    persona_merge(company=company, survivor_id=sam.pk, duplicate_id=samuel.pk, reason="Test")
    rollup_refresh(company=company)

    with connection.cursor() as cursor:
        cursor.execute("SELECT persona_id, (SELECT count(*) FROM unnest(order_days)) FROM analytics_customer "
                       "WHERE company_id = %s", [company.pk])
        assert cursor.fetchall() == [(sam.pk, 2)]  # two separate days, one customer
