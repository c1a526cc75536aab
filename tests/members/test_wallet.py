"""The customer's rewards and wallet on the loyalty page: buying goes through the POS's own
purchase (one ledger, the same refusals), a form sent twice buys once, and each wallet item
has a code and a QR code that only its holder can open."""

from decimal import Decimal

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.urls import reverse

from loyalty.models import WALLET_CODE_ALPHABET, Offer, PointsEntry, Tier, WalletItem
from loyalty.services import points_adjust
from loyalty.services.offers import wallet_grant
from loyalty.services.redemptions import offer_purchase
from members.selectors import page_settings
from members.sessions import CUSTOMER_COOKIE, customer_session_start
from stores.models import Role
from tests.factories import MembershipFactory, PersonaFactory, RetailStoreFactory

pytestmark = pytest.mark.django_db


def page_on(company):
    """The company's loyalty page is open (it is off until the merchant turns it on)."""
    settings = page_settings(company)
    settings.enabled = True
    settings.save(update_fields=["enabled"])


def signed_in(client, company, persona):
    page_on(company)
    response = HttpResponse()
    customer_session_start(company=company, persona=persona, request=RequestFactory().get("/"),
                           response=response)
    client.cookies[CUSTOMER_COOKIE] = response.cookies[CUSTOMER_COOKIE].value
    return client


def member(company, points, **fields):
    persona = PersonaFactory(company=company, is_member=True, **fields)
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    if points:
        points_adjust(company=company, persona_id=persona.pk, delta=points, staff_user=staff,
                      reason="Welcome")
    persona.refresh_from_db()
    return persona


def ten_off(company, **fields):
    return Offer.objects.create(company=company, name=fields.pop("name", "$10 off"), kind="flat",
                                amount=Decimal("10"), points_cost=fields.pop("points_cost", 100), **fields)


def buy(client, company, offer, token="t-1"):
    return client.post(reverse("members:reward_confirm", args=[company.slug, offer.pk]),
                       {"purchase_token": token})


def test_reward_buy_deducts_points_once_and_puts_a_coded_item_in_the_wallet(client, company):
    # given a member with 250 points, signed in, and a $10-off reward for 100
    persona = member(company, 250)
    offer = ten_off(company)
    signed_in(client, company, persona)
    page = client.get(reverse("members:rewards", args=[company.slug]))
    assert "$10 off" in page.content.decode() and "$10.00 off your order" in page.content.decode()
    confirm = client.get(reverse("members:reward_confirm", args=[company.slug, offer.pk]))
    token = confirm.context["purchase_token"]

    # when they confirm, and the same form is sent again (a double tap)
    first = buy(client, company, offer, token)
    again = buy(client, company, offer, token)

    # then one item, paid once, with a code from the unambiguous alphabet, shown in the wallet
    [item] = WalletItem.objects.filter(persona=persona)
    assert first.status_code == again.status_code == 302 and item.code in first["Location"]
    assert item.source == WalletItem.Source.LOYALTY_PAGE and item.points_paid == 100
    assert len(item.code) == 8 and set(item.code) <= set(WALLET_CODE_ALPHABET)
    persona.refresh_from_db()
    assert persona.points_balance == 150
    assert sum(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True)) == 150
    wallet = client.get(first["Location"]).content.decode()
    assert item.code in wallet and reverse("members:wallet_qr", args=[company.slug, item.code]) in wallet
    qr = client.get(reverse("members:wallet_qr", args=[company.slug, item.code]))
    assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml" and b"<svg" in qr.content

    # and a new form (another tab) buys a second one: that one is intended
    assert buy(client, company, offer, "t-2").status_code == 302
    assert WalletItem.objects.filter(persona=persona).count() == 2


def test_reward_buy_without_enough_points_says_how_many_more_and_charges_nothing(client, company):
    # given a member with 50 points and a reward for 200
    persona = member(company, 50)
    offer = ten_off(company, points_cost=200)
    signed_in(client, company, persona)
    assert "You need 150 more points." in client.get(
        reverse("members:rewards", args=[company.slug])).content.decode()

    # when they post the purchase anyway
    response = buy(client, company, offer)

    # then they are told, and nothing is charged or issued
    assert response.status_code == 409
    assert "You need 150 more points for $10 off." in response.content.decode()
    persona.refresh_from_db()
    assert persona.points_balance == 50 and not WalletItem.objects.filter(persona=persona).exists()


def test_reward_buy_refuses_another_tier_another_company_and_past_the_limit(client, company, other_company):
    # given a Bronze member, a VIP-only offer, an offer held once of a limit of one, another company's
    Tier.objects.create(company=company, name="VIP", threshold=Decimal("1000"))
    persona = member(company, 1000, tier="Bronze")
    vip = ten_off(company, name="VIP $10")
    vip.tiers.set(Tier.objects.filter(name="VIP"))
    once = ten_off(company, name="Once", limit_per_persona=1)
    theirs = ten_off(other_company, name="Theirs")
    signed_in(client, company, persona)
    assert buy(client, company, once, "a").status_code == 302
    names = client.get(reverse("members:rewards", args=[company.slug])).content.decode()
    assert "VIP $10" not in names and "Once" not in names

    # when each is posted
    answers = [buy(client, company, vip, "b"), buy(client, company, once, "c"),
               buy(client, company, theirs, "d")]

    # then each is refused with nothing charged: only the first purchase happened
    assert [a.status_code for a in answers] == [409, 409, 404]
    assert "VIP $10 is for VIP members only." in answers[0].content.decode()
    assert "You already have Once once, its limit." in answers[1].content.decode()
    persona.refresh_from_db()
    assert persona.points_balance == 900 and WalletItem.objects.filter(persona=persona).count() == 1


def test_reward_store_only_offer_says_where(client, company):
    downtown = RetailStoreFactory(company=company, name="Downtown")
    offer = ten_off(company)
    offer.stores.set([downtown])
    signed_in(client, company, member(company, 500))
    page = client.get(reverse("members:rewards", args=[company.slug])).content.decode()
    assert "$10.00 off your order, at Downtown only" in page


def test_wallet_qr_of_another_customers_item_is_a_404(client, company, other_company):
    # given two customers of this company and one of another, each holding an item
    offer = ten_off(company)
    mine, theirs = member(company, 500), member(company, 500)
    elsewhere = member(other_company, 500)
    mine_item = offer_purchase(company=company, persona_id=mine.pk, offer_id=offer.pk)
    their_item = offer_purchase(company=company, persona_id=theirs.pk, offer_id=offer.pk)
    far_item = offer_purchase(company=other_company, persona_id=elsewhere.pk,
                              offer_id=ten_off(other_company).pk)
    signed_in(client, company, mine)

    # then only their own item's QR opens
    def qr(slug, code):
        return client.get(reverse("members:wallet_qr", args=[slug, code])).status_code
    assert qr(company.slug, mine_item.code) == 200
    assert qr(company.slug, their_item.code) == 404
    assert qr(company.slug, far_item.code) == 404
    assert qr(other_company.slug, far_item.code) in (302, 404)  # not signed in there


def test_wallet_lists_used_items_apart_and_every_new_item_gets_a_code(client, company):
    # given an item bought at the POS, one granted by staff (then used)
    persona = member(company, 500)
    offer = ten_off(company)
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    bought = offer_purchase(company=company, persona_id=persona.pk, offer_id=offer.pk)
    granted = wallet_grant(company=company, persona_id=persona.pk, offer_id=offer.pk, staff_user=staff)
    WalletItem.objects.filter(pk=granted.pk).update(state="used")

    # then both have codes and sources, and the wallet shows the used one apart
    assert bought.source == "pos" and granted.source == "staff" and bought.code != granted.code
    page = signed_in(client, company, persona).get(reverse("members:wallet", args=[company.slug]))
    available, past = page.context["wallet"].available, page.context["wallet"].past
    assert [i.pk for i in available] == [bought.pk] and [i.pk for i in past] == [granted.pk]
    assert "Used or expired" in page.content.decode()


def test_rewards_page_needs_a_signed_in_customer(client, company):
    response = client.get(reverse("members:rewards", args=[company.slug]))
    assert response.status_code in (302, 404)


def test_persona_card_marks_items_bought_on_the_loyalty_page_with_their_code(client, admin_client, company):
    # given an item bought on the loyalty page and one at the POS
    persona = member(company, 500)
    offer = ten_off(company)
    buy(signed_in(client, company, persona), company, offer, "t-1")
    at_pos = offer_purchase(company=company, persona_id=persona.pk, offer_id=offer.pk)
    online = WalletItem.objects.get(persona=persona, source="loyalty_page")

    # when staff open the persona card
    page = admin_client.get(reverse("persona_detail", args=[persona.pk])).content.decode()

    # then both codes show, and the loyalty page's purchase says so
    assert online.code in page and at_pos.code in page
    assert page.count("Bought on the loyalty page") == 1


def test_wallet_shows_an_item_whose_offer_ended_as_expired(client, company):
    import datetime as dt

    from django.utils import timezone

    # given an item whose offer ended yesterday
    persona = member(company, 0)
    ended = ten_off(company, name="Summer", points_cost=0, starts_at=timezone.now() - dt.timedelta(days=9),
                    ends_at=timezone.now() - dt.timedelta(days=1))
    WalletItem.objects.create(company=company, persona=persona, offer=ended)

    # then the wallet lists it apart, as expired, without a QR code
    page = signed_in(client, company, persona).get(reverse("members:wallet", args=[company.slug]))
    assert page.context["wallet"].available == [] and page.context["wallet"].past[0].shown_state == "Expired"
    assert 'data-testid="wallet-qr"' not in page.content.decode()


def test_wallet_item_code_taken_draws_another(company):
    # given an item, and a new one drawn with the same code
    persona, offer = member(company, 0), ten_off(company, points_cost=0)
    first = WalletItem.objects.create(company=company, persona=persona, offer=offer)
    second = WalletItem(company=company, persona=persona, offer=offer, code=first.code)

    # when it is saved, then it gets a code of its own
    second.save()
    assert second.pk and second.code != first.code and len(second.code) == 8
