"""Earning rules, returns and the wallet, through the services a POS call ends up in."""

from decimal import Decimal

import pytest
from django.db import connection
from django.utils import timezone

from loyalty.models import LoyaltyProgram, Offer, PointsEntry, Tier, WalletItem
from loyalty.services import TransactionData, points_adjust, transaction_record
from loyalty.services.personas import source_get_or_create
from loyalty.services.points_bulk import points_sync_for_transactions
from loyalty.services.pos import PosTransaction, pos_transaction_send
from loyalty.services.redemptions import Basket, offer_purchase, redemption_apply, redemption_reinstate
from loyalty.services.transactions import LineItemData
from stores.models import Role
from tests.factories import MembershipFactory, PersonaFactory


def sale(store, persona, ext, subtotal):
    return TransactionData(external_id=ext, occurred_at=timezone.now(), subtotal=Decimal(subtotal),
                           total=Decimal(subtotal), store_id=store.pk, persona_id=persona.pk)


def test_a_tier_multiplies_what_a_sale_earns_and_the_bulk_path_agrees(company, store):
    Tier.objects.create(company=company, name="Gold", threshold=0, earn_multiplier=Decimal("1.5"))
    persona = PersonaFactory(company=company, tier="Gold")
    source = source_get_or_create(company=company, kind="pos_api")
    txn, _ = transaction_record(company=company, source=source, data=sale(store, persona, "T1", "33.00"))
    persona.refresh_from_db()
    assert persona.points_balance == 49  # floor(33 × 1.5)
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE some_txns AS SELECT %s::bigint AS id", [txn.pk])
    assert points_sync_for_transactions(company=company, table="some_txns") == 0  # same target


def test_rounding_to_nearest(company, store):
    LoyaltyProgram.objects.update_or_create(company=company, defaults={"rounding": "nearest",
                                                                       "points_per_unit": Decimal("0.1")})
    persona = PersonaFactory(company=company)
    source = source_get_or_create(company=company, kind="pos_api")
    transaction_record(company=company, source=source, data=sale(store, persona, "R1", "35.00"))
    persona.refresh_from_db()
    assert persona.points_balance == 4  # 3.5 rounds up


@pytest.mark.parametrize(("policy", "after_return"), [("keep", 100), ("reverse", 60)])
def test_a_return_follows_the_refund_policy(company, store, policy, after_return):
    LoyaltyProgram.objects.update_or_create(company=company, defaults={"refund_policy": policy})
    persona = PersonaFactory(company=company)
    item = LineItemData(product="Vape", quantity=Decimal("1"), unit_price=Decimal("100"),
                        total=Decimal("100"))
    pos_transaction_send(company=company, data=PosTransaction(
        transaction_id="S-1", store_id=store.pk, subtotal=Decimal("100"), persona_id=persona.pk,
        items=[item]))
    persona.refresh_from_db()
    assert persona.points_balance == 100
    pos_transaction_send(company=company, data=PosTransaction(
        transaction_id="S-1-R", store_id=store.pk, subtotal=Decimal("40"), persona_id=persona.pk,
        original_transaction_id="S-1", items=[item]))
    persona.refresh_from_db()
    assert persona.points_balance == after_return
    # Sending the return again changes nothing.
    pos_transaction_send(company=company, data=PosTransaction(
        transaction_id="S-1-R", store_id=store.pk, subtotal=Decimal("40"), persona_id=persona.pk,
        original_transaction_id="S-1", items=[item]))
    persona.refresh_from_db()
    assert persona.points_balance == after_return


def test_a_wallet_item_bought_with_points_redeems_for_free_and_comes_back_on_reinstate(company, store):
    persona = PersonaFactory(company=company)
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    points_adjust(company=company, persona_id=persona.pk, delta=300, staff_user=staff, reason="Seed")
    offer = Offer.objects.create(company=company, name="Free pre-roll", kind="flat", amount=Decimal("12"),
                                 points_cost=120, limit_per_persona=1)
    item = offer_purchase(company=company, persona_id=persona.pk, offer_id=offer.pk)
    persona.refresh_from_db()
    assert persona.points_balance == 180 and item.state == WalletItem.State.AVAILABLE
    with pytest.raises(Exception, match="limit"):
        offer_purchase(company=company, persona_id=persona.pk, offer_id=offer.pk)
    redemption = redemption_apply(company=company, persona_id=persona.pk, cart_id="W-1",
                                  basket=Basket(subtotal=Decimal("30"), store_id=store.pk),
                                  wallet_item_id=item.pk)
    item.refresh_from_db()
    persona.refresh_from_db()
    assert (redemption.points, redemption.discount_amount) == (0, Decimal("12.00"))
    assert item.state == WalletItem.State.USED and persona.points_balance == 180
    redemption_reinstate(company=company, redemption_id=redemption.pk)
    item.refresh_from_db()
    assert item.state == WalletItem.State.AVAILABLE
    assert sum(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True)) == 180


def test_enrolment_gives_the_signup_bonus_once(company):
    from loyalty.services import persona_enroll

    LoyaltyProgram.objects.update_or_create(company=company, defaults={"signup_bonus": 50})
    persona = PersonaFactory(company=company, is_member=False, enrolled_at=None)
    persona_enroll(company=company, persona_id=persona.pk)
    persona_enroll(company=company, persona_id=persona.pk)
    persona.refresh_from_db()
    assert (persona.is_member, persona.points_balance) == (True, 50)


def test_points_of_inactive_customers_expire_and_active_ones_keep_theirs(company):
    import datetime as dt

    from loyalty.services.points import points_expire

    LoyaltyProgram.objects.update_or_create(company=company, defaults={"expiry_months": 6})
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    idle, active = PersonaFactory(company=company), PersonaFactory(company=company)
    for persona in (idle, active):
        points_adjust(company=company, persona_id=persona.pk, delta=80, staff_user=staff, reason="Seed")
    PointsEntry.objects.filter(persona=idle).update(created_at=timezone.now() - dt.timedelta(days=200))
    assert points_expire(company=company) == 1
    idle.refresh_from_db()
    active.refresh_from_db()
    assert (idle.points_balance, active.points_balance) == (0, 80)
    assert PointsEntry.objects.get(persona=idle, kind="expire").delta == -80
    assert points_expire(company=company) == 0


def test_a_customer_created_as_a_member_gets_the_signup_bonus(company):
    from loyalty.services import persona_create

    LoyaltyProgram.objects.update_or_create(company=company, defaults={"signup_bonus": 25})
    source = source_get_or_create(company=company, kind="pos_api")
    member = persona_create(company=company, source=source, first_name="Ana", enrolled_at=timezone.now())
    guest = persona_create(company=company, source=source, first_name="Bo")
    member.refresh_from_db()
    guest.refresh_from_db()
    assert (member.points_balance, guest.points_balance) == (25, 0)
