"""The POS counter flow through the HTTP API, as a POS developer would drive it."""

import datetime as dt
import threading
from decimal import Decimal

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.utils import timezone

from loyalty.models import LoyaltyProgram, Offer, PointsEntry, Redemption, Transaction
from loyalty.services import points_adjust
from stores.models import Role
from stores.services import api_key_create, api_key_revoke
from tests.factories import CompanyFactory, MembershipFactory, PersonaFactory, RetailStoreFactory

API = "/api/pos/v1/"


def pos_client(api_key_raw: str, company) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {api_key_raw}", HTTP_X_ACCOUNT_UID=str(company.account_uid))


@pytest.fixture
def counter(company, store):
    """A company with a program, a $10-off offer for 100 points, a member with 250 points."""
    LoyaltyProgram.objects.get_or_create(company=company)
    offer = Offer.objects.create(company=company, name="$10 off", kind="flat", amount=Decimal("10"),
                                 points_cost=100, min_subtotal=Decimal("20"))
    persona = PersonaFactory(company=company, first_name="Dana", phone="+13035550150")
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    points_adjust(company=company, persona_id=persona.pk, delta=250, staff_user=staff, reason="Welcome")
    key, raw = api_key_create(company=company, name="Register 1", level=1)
    return pos_client(raw, company), offer, persona


def basket(store, *, subtotal="42.00"):
    return {"store_id": store.pk, "tax_total": "6.30", "items": [
        {"line_id": "1", "sku": "FLO-1", "product": "Blue Dream 3.5g", "brand": "Green Dot",
         "category": "Flower", "quantity": "1", "unit_price": subtotal}]}


def post(client, path, body, **headers):
    return client.post(API + path, body, content_type="application/json", **headers)


def balance(persona):
    persona.refresh_from_db()
    return persona.points_balance


def test_lookup_by_phone_returns_balance_and_the_rewards_that_apply_to_the_basket(counter, store):
    client, offer, persona = counter
    response = post(client, "lookup", {"phone": "(303) 555-0150", "basket": basket(store)})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert body["persona"]["id"] == persona.pk and body["points_balance"] == 250
    assert [(r["offer_id"], r["discount"], r["points_cost"]) for r in body["rewards"]] == [
        (offer.pk, "10.00", 100)]
    small = post(client, "lookup", {"phone": "3035550150", "basket": basket(store, subtotal="5.00")})
    assert small.json()["rewards"] == []  # under the offer's minimum subtotal


def test_lookup_with_several_matches_is_a_409_with_masked_candidates(counter, company):
    client, _, persona = counter
    PersonaFactory(company=company, first_name="Dan", phone=persona.phone)
    response = post(client, "lookup", {"phone": persona.phone})
    assert response.status_code == 409
    candidates = response.json()["candidates"]
    assert len(candidates) == 2 and all(c["phone_last4"] == "0150" for c in candidates)
    assert "Dana" not in response.content.decode()


def test_another_companys_persona_offer_and_redemption_are_404(counter, store):
    client, _, _ = counter
    other = CompanyFactory()
    stranger = PersonaFactory(company=other)
    foreign_offer = Offer.objects.create(company=other, name="x", kind="flat", amount=1, points_cost=1)
    assert post(client, "lookup", {"persona_id": stranger.pk}).status_code == 404
    assert client.get(f"{API}personas/{stranger.pk}/balance").status_code == 404
    response = post(client, "redeem", {"persona_id": stranger.pk, "cart_id": "c1",
                                       "offer_id": foreign_offer.pk, "basket": basket(store)})
    assert response.status_code == 404
    purchase = {"persona_id": stranger.pk, "offer_id": foreign_offer.pk}
    assert post(client, "offers/purchase", purchase).status_code == 404


def test_redeem_deducts_at_once_one_discount_per_order_and_reinstate_gives_back(counter, store):
    client, offer, persona = counter
    response = post(client, "redeem", {"persona_id": persona.pk, "cart_id": "CART-1", "offer_id": offer.pk,
                                       "basket": basket(store)})
    assert response.status_code == 201, response.json()
    assert response.json()["discount_amount"] == "10.00" and balance(persona) == 150
    again = post(client, "redeem", {"persona_id": persona.pk, "cart_id": "CART-1", "offer_id": offer.pk,
                                    "basket": basket(store)})
    assert again.status_code == 409 and again.json()["code"] == "one_discount_per_order"
    assert balance(persona) == 150
    back = post(client, "reinstate", {"redemption_id": response.json()["redemption_id"]})
    assert back.status_code == 200 and back.json()["state"] == "reinstated"
    assert balance(persona) == 250
    assert post(client, "reinstate", {"redemption_id": response.json()["redemption_id"]}).status_code == 200
    assert balance(persona) == 250  # reinstating twice gives back once


def test_lock_expires_and_the_points_come_back_on_read(counter, store):
    client, offer, persona = counter
    lock = post(client, "lock", {"persona_id": persona.pk, "cart_id": "WEB-9", "offer_id": offer.pk,
                                 "basket": basket(store)})
    assert lock.status_code == 201 and lock.json()["state"] == "locked"
    assert balance(persona) == 150
    # an hour back: PostgreSQL's now() is when the test's transaction began, seconds ago
    # on a busy machine
    Redemption.objects.filter(pk=lock.json()["redemption_id"]).update(
        locked_until=timezone.now() - dt.timedelta(hours=1))
    read = client.get(f"{API}personas/{persona.pk}/balance").json()
    assert read["points_balance"] == 250 and read["points_locked"] == 0
    assert Redemption.objects.get(pk=lock.json()["redemption_id"]).state == "expired"


def test_a_lookup_releases_an_overdue_lock_and_shows_the_points_back(counter, store):
    client, offer, persona = counter
    lock = post(client, "lock", {"persona_id": persona.pk, "cart_id": "WEB-10", "offer_id": offer.pk,
                                 "basket": basket(store)})
    assert post(client, "lookup", {"phone": persona.phone}).json()["points_balance"] == 150
    # before the test's transaction began: PostgreSQL's now() is that moment
    Redemption.objects.filter(pk=lock.json()["redemption_id"]).update(
        locked_until=timezone.now() - dt.timedelta(hours=1))
    found = post(client, "lookup", {"phone": persona.phone, "basket": basket(store)}).json()
    assert found["points_balance"] == 250
    assert Redemption.objects.get(pk=lock.json()["redemption_id"]).state == "expired"


def test_a_lookup_leaves_out_an_offer_held_up_to_its_per_customer_limit(counter, store):
    client, offer, persona = counter
    Offer.objects.filter(pk=offer.pk).update(limit_per_persona=1)
    # the rules are cached per process: a change goes through the service's version bump
    from loyalty.catalog import catalog_changed

    catalog_changed(persona.company_id)
    offers = lambda: [r["offer_id"] for r in post(  # noqa: E731
        client, "lookup", {"persona_id": persona.pk, "basket": basket(store)}).json()["rewards"]]
    assert offers() == [offer.pk]
    assert post(client, "redeem", {"persona_id": persona.pk, "cart_id": "LIM-1", "offer_id": offer.pk,
                                   "basket": basket(store)}).status_code == 201
    assert offers() == []  # held once: the limit is reached
    other = PersonaFactory(company=persona.company)
    points_adjust(company=persona.company, persona_id=other.pk, delta=150,
                  staff_user=MembershipFactory(company=persona.company, role=Role.ADMIN).user, reason="x")
    other_offers = [r["offer_id"] for r in post(
        client, "lookup", {"persona_id": other.pk, "basket": basket(store)}).json()["rewards"]]
    assert other_offers == [offer.pk]  # another customer's limit is their own


def test_lock_again_after_a_cart_change_recomputes_then_send_transaction_redeems_it(counter, store):
    client, _, persona = counter
    percent = Offer.objects.create(company=persona.company, name="10% off", kind="percent", amount=10,
                                   points_cost=50)
    first = post(client, "lock", {"persona_id": persona.pk, "cart_id": "T-100", "offer_id": percent.pk,
                                  "basket": basket(store, subtotal="40.00")}).json()
    assert first["discount_amount"] == "4.00"
    second = post(client, "lock", {"persona_id": persona.pk, "cart_id": "T-100", "offer_id": percent.pk,
                                   "basket": basket(store, subtotal="60.00")}).json()
    assert second["redemption_id"] == first["redemption_id"] and second["discount_amount"] == "6.00"
    assert balance(persona) == 200  # held once, not twice
    sent = post(client, "send_transaction", {
        "transaction_id": "T-100", "store_id": store.pk, "persona_id": persona.pk, "status": "closed",
        "subtotal": "60.00", "tax_total": "9.00",
        "items": [{"line_id": "1", "product": "Gummies", "quantity": "2", "unit_price": "30.00"}],
        "payments": [{"method": "cash", "amount": "63.00"}],
        "discounts": [{"redemption_id": first["redemption_id"], "amount": "6.00"}]})
    assert sent.status_code == 201, sent.json()
    assert sent.json()["redemptions"] == [{"redemption_id": first["redemption_id"], "state": "redeemed"}]
    assert sent.json()["points_earned"] == 54  # 60 - 6 discount, pre-tax, 1 point per dollar
    assert balance(persona) == 254


def test_void_reverses_what_the_transaction_earned_and_releases_its_redemption(counter, store):
    client, offer, persona = counter
    redemption = post(client, "redeem", {"persona_id": persona.pk, "cart_id": "V-1", "offer_id": offer.pk,
                                         "basket": basket(store)}).json()
    sale = {"transaction_id": "V-1", "store_id": store.pk, "persona_id": persona.pk, "subtotal": "42.00",
            "items": [{"product": "Blue Dream", "quantity": "1", "unit_price": "42.00"}],
            "discounts": [{"redemption_id": redemption["redemption_id"], "amount": "10.00"}]}
    post(client, "send_transaction", sale)
    assert balance(persona) == 150 + 32
    voided = post(client, "send_transaction", {**sale, "status": "voided"})
    assert voided.status_code == 200 and voided.json()["status"] == "voided"
    assert balance(persona) == 250
    assert Redemption.objects.get(pk=redemption["redemption_id"]).state == "reinstated"
    assert sum(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True)) == 250


def test_negative_amounts_and_bad_fields_are_400_with_field_paths(counter, store):
    client, _, persona = counter
    response = post(client, "send_transaction", {
        "transaction_id": "N-1", "store_id": store.pk, "subtotal": "10.00",
        "items": [{"product": "Gummies", "quantity": "1", "unit_price": "-10.00"}]})
    assert response.status_code == 400
    assert "unit_price" in response.json()["fields"]["items"]["0"]
    assert post(client, "lookup", {}).status_code == 400
    assert post(client, "send_transaction", {"transaction_id": "N-2", "store_id": 999999, "subtotal": "1",
                                             "items": []}).status_code == 404
    assert client.post(API + "lookup", "{not json", content_type="application/json").status_code == 400


def test_idempotency_key_replays_the_first_answer_and_refuses_another_body(counter, store):
    client, offer, persona = counter
    body = {"persona_id": persona.pk, "cart_id": "I-1", "offer_id": offer.pk, "basket": basket(store)}
    first = post(client, "redeem", body, HTTP_IDEMPOTENCY_KEY="k-1")
    replay = post(client, "redeem", body, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == replay.status_code == 201
    assert replay.json() == first.json() and replay["Idempotent-Replayed"] == "true"
    assert balance(persona) == 150
    other = post(client, "redeem", {**body, "cart_id": "I-2"}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"


def test_keys_authenticate_with_the_account_uid_and_respect_their_level(counter, company, store):
    client, _, persona = counter
    push_key, push_raw = api_key_create(company=company, name="Push only", level=0)
    push = pos_client(push_raw, company)
    assert post(push, "lookup", {"persona_id": persona.pk}).status_code == 403
    sale = {"transaction_id": "L0-1", "store_id": store.pk, "subtotal": "5.00",
            "items": [{"product": "Papers", "quantity": "1", "unit_price": "5.00"}]}
    assert post(push, "send_transaction", sale).status_code == 201
    wrong_uid = Client(HTTP_AUTHORIZATION=f"Bearer {push_raw}",
                       HTTP_X_ACCOUNT_UID=str(CompanyFactory().account_uid))
    assert post(wrong_uid, "send_transaction", {**sale, "transaction_id": "L0-2"}).status_code in (401, 403)
    api_key_revoke(api_key=push_key)
    assert post(push, "send_transaction", {**sale, "transaction_id": "L0-3"}).status_code in (401, 403)
    assert Client().post(API + "lookup", {}, content_type="application/json").status_code in (401, 403)


def test_schema_and_docs_are_served(client):
    schema = client.get("/api/schema/")
    assert schema.status_code == 200 and b"/api/pos/v1/send_transaction" in schema.content
    assert client.get("/api/docs/").status_code == 200


# --- concurrency ----------------------------------------------------------------------------

def run_threads(n, work):
    results, barrier = [None] * n, threading.Barrier(n)

    def target(i):
        try:
            barrier.wait()
            results[i] = work(i)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=target, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


@pytest.mark.django_db(transaction=True)
def test_fifty_concurrent_redemptions_on_a_balance_for_ten_let_exactly_ten_through():
    company = CompanyFactory()
    store = RetailStoreFactory(company=company)
    offer = Offer.objects.create(company=company, name="5 off", kind="flat", amount=5, points_cost=10)
    persona = PersonaFactory(company=company)
    staff = MembershipFactory(company=company).user
    points_adjust(company=company, persona_id=persona.pk, delta=100, staff_user=staff, reason="Seed")
    # 50 at once is past a key's default burst (40): this is about the balance, not the rate.
    _, raw = api_key_create(company=company, name="Load", level=1, rate_per_second=1000, burst=1000)

    def redeem(i):
        client = pos_client(raw, company)
        return post(client, "redeem", {"persona_id": persona.pk, "cart_id": f"C-{i}", "offer_id": offer.pk,
                                       "basket": basket(store)}).status_code

    codes = run_threads(50, redeem)
    assert codes.count(201) == 10 and codes.count(409) == 40
    persona.refresh_from_db()
    assert persona.points_balance == 0
    assert sum(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True)) == 0


@pytest.mark.django_db(transaction=True)
def test_the_same_transaction_sent_twenty_times_at_once_is_recorded_and_earns_once():
    company = CompanyFactory()
    store = RetailStoreFactory(company=company)
    persona = PersonaFactory(company=company)
    _, raw = api_key_create(company=company, name="Load", level=1)
    sale = {"transaction_id": "SAME-1", "store_id": store.pk, "persona_id": persona.pk, "subtotal": "80.00",
            "items": [{"product": "Vape", "quantity": "2", "unit_price": "40.00"}]}

    codes = run_threads(20, lambda i: post(pos_client(raw, company), "send_transaction", sale).status_code)
    assert sorted(set(codes)) <= [200, 201] and codes.count(201) == 1
    assert Transaction.objects.filter(company=company).count() == 1
    persona.refresh_from_db()
    assert persona.points_balance == 80
    assert PointsEntry.objects.filter(persona=persona, kind="earn").count() == 1


def test_lookup_by_email_and_by_an_id_in_another_system(counter, company):
    from loyalty.models import PersonaIdentity
    from loyalty.services.personas import source_get_or_create

    client, _, persona = counter
    PersonaIdentity.objects.create(company=company, persona=persona, external_id="COVA-77",
                                   source=source_get_or_create(company=company, kind="cova"))
    assert post(client, "lookup", {"email": persona.email.upper()}).json()["persona"]["id"] == persona.pk
    assert post(client, "lookup", {"external_id": "COVA-77"}).json()["persona"]["id"] == persona.pk
    assert post(client, "lookup", {"external_id": "COVA-78"}).status_code == 404
    assert post(client, "lookup", {"phone": "not a phone"}).status_code == 400


def test_a_phone_in_any_form_finds_the_customer_and_a_wrong_number_says_so(counter):
    client, _, persona = counter
    assert persona.phone == "+13035550150"
    for typed in ("+13035550150", " +13035550150 ", "303-555-0150", "+1 (303) 555 0150"):
        assert post(client, "lookup", {"phone": typed}).json()["persona"]["id"] == persona.pk, typed
    unknown = post(client, "lookup", {"phone": "+13035550199"})
    assert unknown.status_code == 404 and unknown.json()["code"] == "not_found"
    # shaped like a stored number but not a real one (no area code 000): a 400 on the field
    wrong = post(client, "lookup", {"phone": "+10005550150"})
    assert wrong.status_code == 400 and wrong.json()["field"] == "phone"


def test_buying_an_offer_into_the_wallet_then_redeeming_it_costs_points_once(counter, store):
    client, offer, persona = counter
    bought = post(client, "offers/purchase", {"persona_id": persona.pk, "offer_id": offer.pk})
    assert bought.status_code == 201 and bought.json()["points_balance"] == 150
    wallet = post(client, "lookup", {"persona_id": persona.pk, "basket": basket(store)}).json()["wallet"]
    assert [w["wallet_item_id"] for w in wallet] == [bought.json()["wallet_item_id"]]
    used = post(client, "redeem", {"persona_id": persona.pk, "cart_id": "W-1", "basket": basket(store),
                                   "wallet_item_id": bought.json()["wallet_item_id"]})
    assert used.status_code == 201 and used.json()["points"] == 0 and balance(persona) == 150
    poor = Offer.objects.create(company=persona.company, name="Big", kind="flat", amount=50, points_cost=999)
    refused = post(client, "offers/purchase", {"persona_id": persona.pk, "offer_id": poor.pk})
    assert refused.status_code == 409 and refused.json()["code"] == "insufficient_points"
    assert balance(persona) == 150


def test_unlock_gives_points_back_and_wrong_transitions_are_refused(counter, company, store):
    client, offer, persona = counter
    lock = post(client, "lock", {"persona_id": persona.pk, "cart_id": "U-1", "offer_id": offer.pk,
                                 "basket": basket(store)}).json()
    other = PersonaFactory(company=company)
    taken = post(client, "lock", {"persona_id": other.pk, "cart_id": "U-1", "offer_id": offer.pk,
                                  "basket": basket(store)})
    assert taken.status_code == 409  # another customer's lock holds this cart
    assert post(client, "reinstate", {"redemption_id": lock["redemption_id"]}).status_code == 409
    unlocked = post(client, "unlock", {"cart_id": "U-1"})
    assert unlocked.status_code == 200 and unlocked.json()["state"] == "unlocked"
    assert balance(persona) == 250
    foreign = Redemption.objects.create(
        company=CompanyFactory(), persona=PersonaFactory(), offer=offer, cart_id="X", state="redeemed",
        points=1, discount_amount=1)
    assert post(client, "reinstate", {"redemption_id": foreign.pk}).status_code == 404


def test_resending_a_closed_transaction_leaves_its_redemption_and_points_alone(counter, store):
    from loyalty.models import WebhookDelivery
    from loyalty.services.webhooks import webhook_endpoint_create

    client, offer, persona = counter
    webhook_endpoint_create(company=persona.company, url="https://pos.example/hook",
                            events=["redemption.changed"])
    redemption = post(client, "redeem", {"persona_id": persona.pk, "cart_id": "RS-1", "offer_id": offer.pk,
                                         "basket": basket(store)}).json()
    sale = {"transaction_id": "RS-1", "store_id": store.pk, "persona_id": persona.pk, "subtotal": "42.00",
            "items": [{"product": "Blue Dream", "quantity": "1", "unit_price": "42.00"}],
            "discounts": [{"redemption_id": redemption["redemption_id"], "amount": "10.00"}]}
    first = post(client, "send_transaction", sale)
    again = post(client, "send_transaction", sale)
    assert (first.status_code, again.status_code) == (201, 200)
    closed = [{"redemption_id": redemption["redemption_id"], "state": "redeemed"}]
    assert again.json()["redemptions"] == closed
    assert balance(persona) == 150 + 32
    # Redeemed, then closed by the sale: two changes; the resend changed nothing.
    assert [d.payload["state"] for d in WebhookDelivery.objects.order_by("id")] == ["redeemed", "redeemed"]


def test_lookup_shows_the_tier_by_the_last_12_months_spend_in_the_same_queries(counter, company, store):
    from django.test.utils import CaptureQueriesContext

    from loyalty.models import Tier
    from loyalty.services.personas import source_get_or_create
    from loyalty.services.program import tier_create

    client, _, persona = counter
    post(client, "lookup", {"persona_id": persona.pk})  # the key and the rules are read once
    with CaptureQueriesContext(db_connection) as without_tiers:
        post(client, "lookup", {"persona_id": persona.pk})
    source = source_get_or_create(company=company, kind="pos_api")
    now = timezone.now()
    sales = [("a", "180.00", 10, "completed"), ("b", "120.00", 300, "completed"),
             ("old", "400.00", 400, "completed"), ("void", "900.00", 5, "voided")]
    for ref, total, days_ago, status in sales:
        Transaction.objects.create(
            company=company, store=store, persona=persona, source=source, external_id=ref, status=status,
            occurred_at=now - dt.timedelta(days=days_ago), subtotal=Decimal(total), total=Decimal(total))
    tier_create(company=company, name="Silver", threshold=100)
    tier_create(company=company, name="VIP", threshold=500, threshold_kind=Tier.Threshold.SPEND_12M)
    post(client, "lookup", {"persona_id": persona.pk})
    with CaptureQueriesContext(db_connection) as with_tiers:
        body = post(client, "lookup", {"persona_id": persona.pk}).json()
    # 300.00 spent in the last 12 months: the old sale and the void do not count
    assert (body["tier"], body["next_tier"], body["to_next_tier"]) == ("Silver", "VIP", "200.00")
    assert len(with_tiers) == len(without_tiers)


def test_lookup_by_the_id_of_a_merged_away_persona_finds_the_survivor(counter, company, other_company):
    from loyalty.services.personas import persona_merge

    client, _, persona = counter
    duplicate = PersonaFactory(company=company, first_name="Dana B.")
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    points_adjust(company=company, persona_id=duplicate.pk, delta=40, staff_user=staff, reason="Welcome")
    persona_merge(company=company, survivor_id=persona.pk, duplicate_id=duplicate.pk, reason="Test")

    found = post(client, "lookup", {"persona_id": duplicate.pk}).json()
    assert (found["persona"]["id"], found["points_balance"]) == (persona.pk, 290)
    # Another company's merge record is not ours to follow.
    theirs = PersonaFactory(company=other_company)
    gone = PersonaFactory(company=other_company)
    persona_merge(company=other_company, survivor_id=theirs.pk, duplicate_id=gone.pk, reason="Test")
    assert post(client, "lookup", {"persona_id": gone.pk}).status_code == 404
