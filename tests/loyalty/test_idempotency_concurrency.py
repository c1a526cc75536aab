"""Idempotency-Key on the POS API under concurrency, through a real server on PostgreSQL:
twenty identical requests sent at once with one key do the work once and all get its
answer; refusals are replayed, failures free the key, keys expire after 24 hours."""

import datetime as dt
import threading
from collections import Counter
from decimal import Decimal

import pytest
import requests
import time_machine
from django.conf import settings
from django.test import Client

from loyalty.models import IdempotencyRecord, LoyaltyProgram, Offer, PointsEntry, Redemption, WalletItem
from loyalty.services import idempotency, points_adjust
from loyalty.services.idempotency import idempotency_records_expire
from loyalty.tasks import idempotency_keys_expire
from stores.models import ApiKey, Role
from stores.services import api_key_create
from tests.factories import CompanyFactory, MembershipFactory, PersonaFactory, RetailStoreFactory

API = "/api/pos/v1/"
THREADS = 20


def shop(company, *, points=2500):
    """A program, a $10-off offer for 100 points, a member with `points`, and a POS key."""
    LoyaltyProgram.objects.get_or_create(company=company)
    offer = Offer.objects.create(company=company, name="$10 off", kind="flat", amount=Decimal("10"),
                                 points_cost=100, min_subtotal=Decimal("20"))
    persona = PersonaFactory(company=company, first_name="Dana")
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    points_adjust(company=company, persona_id=persona.pk, delta=points, staff_user=staff, reason="Welcome")
    _, raw = api_key_create(company=company, name="Register 1", level=1)
    headers = {"Authorization": f"Bearer {raw}", "X-Account-UID": str(company.account_uid)}
    return offer, persona, headers


def basket(store):
    return {"store_id": store.pk, "tax_total": "6.30", "items": [
        {"line_id": "1", "sku": "FLO-1", "product": "Blue Dream 3.5g", "brand": "Green Dot",
         "category": "Flower", "quantity": "1", "unit_price": "42.00"}]}


def send_at_once(url, body, headers):
    """THREADS identical POSTs released together by a barrier; (status, json, headers) each."""
    answers, barrier = [None] * THREADS, threading.Barrier(THREADS)

    def send(i):
        barrier.wait()
        response = requests.post(url, json=body, headers=headers, timeout=30)
        answers[i] = (response.status_code, response.json(), response.headers)

    threads = [threading.Thread(target=send, args=(i,)) for i in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def tally(answers):
    """The first answer, and how many were it, a wait-and-retry 409, or anything else."""
    first = next((a for a in answers if a[1].get("code") != "idempotency_in_progress"), answers[0])
    counts = Counter()
    for code, body, headers in answers:
        if (code, body) == first[:2]:
            counts["identical"] += 1
        elif (code, body.get("code"), headers.get("Retry-After")) == (409, "idempotency_in_progress", "1"):
            counts["in_progress"] += 1
        else:
            counts[f"other {code} {body.get('code')}"] += 1
    return first, counts


def ledger_matches(persona):
    persona.refresh_from_db()
    ledger = PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True)
    return sum(ledger) == persona.points_balance


@pytest.mark.django_db(transaction=True)
def test_idempotency_claim_twenty_purchases_at_once_buy_one_wallet_item(live_server):
    # given a member with points for 25 purchases and one Idempotency-Key
    offer, persona, headers = shop(CompanyFactory())
    headers = {**headers, "Idempotency-Key": "buy-1"}

    # when 20 identical purchases are sent at the same moment
    answers = send_at_once(f"{live_server.url}{API}offers/purchase",
                           {"persona_id": persona.pk, "offer_id": offer.pk}, headers)

    # then one wallet item is bought, points are taken once, and every answer is the first
    first, counts = tally(answers)
    items = WalletItem.objects.filter(persona=persona).count()
    consistent = ledger_matches(persona)
    print(f"\noffers/purchase x{THREADS}, one key: successes={sum(a[0] == 201 for a in answers)} "
          f"identical={counts['identical']} in_progress={counts['in_progress']} wallet_items={items} "
          f"balance={persona.points_balance} ledger_sum==balance={consistent} all={dict(counts)}")
    assert first[0] == 201 and first[1]["points_balance"] == 2400
    assert counts["identical"] + counts["in_progress"] == THREADS, counts
    assert items == 1 and persona.points_balance == 2400 and consistent


@pytest.mark.django_db(transaction=True)
def test_idempotency_claim_twenty_redeems_at_once_all_get_the_first_answer(live_server):
    # given a member, a cart and one Idempotency-Key
    company = CompanyFactory()
    store = RetailStoreFactory(company=company)
    offer, persona, headers = shop(company)
    headers = {**headers, "Idempotency-Key": "redeem-1"}
    body = {"persona_id": persona.pk, "cart_id": "CART-1", "offer_id": offer.pk, "basket": basket(store)}

    # when 20 identical redeems are sent at the same moment
    answers = send_at_once(f"{live_server.url}{API}redeem", body, headers)

    # then one redemption, and no retry is told one_discount_per_order
    first, counts = tally(answers)
    redemptions = Redemption.objects.filter(persona=persona).count()
    consistent = ledger_matches(persona)
    print(f"\nredeem x{THREADS}, one key: successes={sum(a[0] == 201 for a in answers)} "
          f"identical={counts['identical']} in_progress={counts['in_progress']} redemptions={redemptions} "
          f"one_discount_per_order={sum(a[1].get('code') == 'one_discount_per_order' for a in answers)} "
          f"balance={persona.points_balance} ledger_sum==balance={consistent} all={dict(counts)}")
    assert first[0] == 201 and first[1]["discount_amount"] == "10.00"
    assert counts["identical"] + counts["in_progress"] == THREADS, counts
    assert redemptions == 1 and persona.points_balance == 2400 and consistent


# --- one request at a time ------------------------------------------------------------------

@pytest.fixture
def counter(company):
    offer, persona, headers = shop(company, points=50)
    client = Client(raise_request_exception=False, HTTP_AUTHORIZATION=headers["Authorization"],
                    HTTP_X_ACCOUNT_UID=headers["X-Account-UID"])
    return client, offer, persona


def post(client, path, body, key):
    return client.post(API + path, body, content_type="application/json", HTTP_IDEMPOTENCY_KEY=key)


def test_idempotency_claim_a_refusal_is_replayed(counter):
    # given a purchase refused for want of points
    client, offer, persona = counter
    purchase = {"persona_id": persona.pk, "offer_id": offer.pk}
    refused = post(client, "offers/purchase", purchase, "k-4xx")
    assert refused.status_code == 409 and refused.json()["code"] == "insufficient_points"

    # when the customer earns enough and the POS retries with the same key
    points_adjust(company=persona.company, persona_id=persona.pk, delta=500,
                  staff_user=MembershipFactory(company=persona.company).user, reason="Top up")
    retry = post(client, "offers/purchase", purchase, "k-4xx")

    # then the retry gets the first answer and buys nothing
    assert (retry.status_code, retry.json()) == (409, refused.json())
    assert retry["Idempotent-Replayed"] == "true"
    assert not WalletItem.objects.filter(persona=persona).exists()


def test_idempotency_claim_a_failure_frees_the_key_for_a_retry(counter, monkeypatch):
    # given a purchase whose first attempt crashes (the service raises once)
    client, offer, persona = counter
    points_adjust(company=persona.company, persona_id=persona.pk, delta=500,
                  staff_user=MembershipFactory(company=persona.company).user, reason="Top up")
    from loyalty import api
    real = api.offer_purchase
    calls = []

    def crash_once(**kwargs):
        calls.append(kwargs)
        if len(calls) == 1:
            raise RuntimeError("worker crashed")
        return real(**kwargs)

    monkeypatch.setattr(api, "offer_purchase", crash_once)
    purchase = {"persona_id": persona.pk, "offer_id": offer.pk}
    assert post(client, "offers/purchase", purchase, "k-5xx").status_code == 500
    assert not IdempotencyRecord.objects.filter(key="k-5xx").exists()

    # when the POS retries with the same key
    retry = post(client, "offers/purchase", purchase, "k-5xx")

    # then the purchase runs this time, once
    assert retry.status_code == 201 and "Idempotent-Replayed" not in retry
    assert WalletItem.objects.filter(persona=persona).count() == 1 and len(calls) == 2
    again = post(client, "offers/purchase", purchase, "k-5xx")
    assert (again.status_code, again.json()) == (201, retry.json())


def test_idempotency_claim_key_reused_with_another_body_or_path_is_409(counter, store):
    # given a key used for one purchase
    client, offer, persona = counter
    points_adjust(company=persona.company, persona_id=persona.pk, delta=500,
                  staff_user=MembershipFactory(company=persona.company).user, reason="Top up")
    first = post(client, "offers/purchase", {"persona_id": persona.pk, "offer_id": offer.pk}, "k-1")
    assert first.status_code == 201

    # when it comes again with another body, or on another endpoint
    other = Offer.objects.create(company=persona.company, name="$5 off", kind="flat", amount=5,
                                 points_cost=10)
    body = post(client, "offers/purchase", {"persona_id": persona.pk, "offer_id": other.pk}, "k-1")
    path = post(client, "redeem", {"persona_id": persona.pk, "cart_id": "C-1", "offer_id": offer.pk,
                                   "basket": basket(store)}, "k-1")

    # then both are refused and nothing more is bought
    assert body.status_code == path.status_code == 409
    assert body.json()["code"] == path.json()["code"] == "idempotency_key_reused"
    assert WalletItem.objects.filter(persona=persona).count() == 1
    assert not Redemption.objects.filter(persona=persona).exists()


def test_idempotency_claim_a_key_still_in_progress_is_409_with_retry_after(counter, monkeypatch):
    # given a key reserved a moment ago by a request still running
    client, offer, persona = counter
    api_key = ApiKey.objects.get(company=persona.company)
    purchase = {"persona_id": persona.pk, "offer_id": offer.pk}
    post(client, "offers/purchase", purchase, "k-busy")  # learn the fingerprint the API stores
    record = IdempotencyRecord.objects.get(api_key=api_key, key="k-busy")
    IdempotencyRecord.objects.filter(pk=record.pk).update(state="in_progress", response_status=None,
                                                          response_body=None)
    monkeypatch.setattr(idempotency, "WAIT_SECONDS", 0.3)

    # when a retry comes and the first does not finish within the wait
    busy = post(client, "offers/purchase", purchase, "k-busy")

    # then it is told to retry shortly
    assert busy.status_code == 409 and busy.json()["code"] == "idempotency_in_progress"
    assert busy["Retry-After"] == "1"

    # and a reservation left in progress by a worker that died is taken over after a minute
    with time_machine.travel(dt.timedelta(seconds=61)):
        taken = post(client, "offers/purchase", purchase, "k-busy")
    assert taken.status_code == 409 and taken.json()["code"] == "insufficient_points"
    assert "Idempotent-Replayed" not in taken


def test_idempotency_records_expire_after_24_hours(counter):
    # given a purchase answered with a key at noon
    client, offer, persona = counter
    purchase = {"persona_id": persona.pk, "offer_id": offer.pk}
    noon = dt.datetime(2026, 12, 1, 12, 0, tzinfo=dt.UTC)
    with time_machine.travel(noon, tick=False):
        assert post(client, "offers/purchase", purchase, "k-day").status_code == 409

    # when keys are expired 23 hours later, then at 24 hours
    with time_machine.travel(noon + dt.timedelta(hours=23), tick=False):
        kept = idempotency_records_expire()
    with time_machine.travel(noon + dt.timedelta(hours=24, seconds=1), tick=False):
        removed = idempotency_keys_expire()  # the hourly beat job

    # then the key is kept a day, then removed
    assert (kept, removed) == (0, 1)
    assert not IdempotencyRecord.objects.filter(key="k-day").exists()
    assert settings.CELERY_BEAT_SCHEDULE["expire-idempotency-keys"] == {
        "task": "loyalty.tasks.idempotency_keys_expire", "schedule": 3600.0}
