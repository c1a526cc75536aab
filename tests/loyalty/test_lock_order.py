"""A sale closing a lock while the POS unlocks it: whichever goes first, the other is
refused cleanly (never a 500, never the discount given and the points returned)."""

import threading
import time
from decimal import Decimal

import pytest
from django.db import connection as db_connection
from django.db.models import Sum
from django.test import Client

from loyalty.models import Offer, PointsEntry, Redemption, Transaction
from loyalty.services import points_adjust
from loyalty.services import pos as pos_service
from stores.models import API_BURST_MAX, API_RATE_MAX, Role
from stores.services import api_key_create
from tests.factories import CompanyFactory, MembershipFactory, PersonaFactory, RetailStoreFactory

API = "/api/pos/v1/"
pytestmark = pytest.mark.django_db(transaction=True)


class Counter:
    """A company with a $5-off offer for 100 points and a member with `points` points."""

    def __init__(self, points=250):
        self.company = CompanyFactory()
        self.store = RetailStoreFactory(company=self.company)
        self.offer = Offer.objects.create(company=self.company, name="$5 off", kind="flat",
                                          amount=Decimal("5"), points_cost=100)
        self.persona = PersonaFactory(company=self.company)
        staff = MembershipFactory(company=self.company, role=Role.ADMIN).user
        points_adjust(company=self.company, persona_id=self.persona.pk, delta=points, staff_user=staff,
                      reason="Welcome")
        _, self.raw = api_key_create(company=self.company, name="Register 1", level=1,
                                     rate_per_second=API_RATE_MAX, burst=API_BURST_MAX)  # limits not binding

    def client(self):
        # A 500 comes back as a response, so a thread can report it.
        return Client(HTTP_AUTHORIZATION=f"Bearer {self.raw}", raise_request_exception=False,
                      HTTP_X_ACCOUNT_UID=str(self.company.account_uid))

    def post(self, path, body, client=None):
        return (client or self.client()).post(API + path, body, content_type="application/json")

    def lock(self, cart_id):
        response = self.post("lock", {
            "persona_id": self.persona.pk, "cart_id": cart_id, "offer_id": self.offer.pk,
            "basket": {"store_id": self.store.pk, "items": [
                {"product": "Pre-roll", "quantity": "1", "unit_price": "30.00"}]}})
        assert response.status_code == 201, response.content
        return response.json()["redemption_id"]

    def sale(self, cart_id, redemption_id):
        return {"transaction_id": cart_id, "store_id": self.store.pk, "persona_id": self.persona.pk,
                "subtotal": "30.00",
                "items": [{"product": "Pre-roll", "quantity": "1", "unit_price": "30.00"}],
                "discounts": [{"redemption_id": redemption_id, "amount": "5.00"}]}

    def balance(self):
        self.persona.refresh_from_db()
        return self.persona.points_balance

    def ledger_consistent(self):
        self.persona.refresh_from_db()
        entries = PointsEntry.objects.filter(persona=self.persona)
        total = entries.aggregate(s=Sum("delta"))["s"] or 0
        return total == self.persona.points_balance and not entries.filter(balance_after__lt=0).exists()


def in_thread(work):
    """Run `work` in a thread of its own (its own database connection)."""
    box = {}

    def target():
        try:
            box["result"] = work()
        except BaseException as exc:  # reported to the test, not lost in the thread
            box["error"] = exc
        finally:
            db_connection.close()

    thread = threading.Thread(target=target)
    thread.start()
    return thread, box


def waiting_for_a_lock(timeout=10):
    """Wait until another connection of this test database waits on a row lock."""
    deadline = time.monotonic() + timeout
    with db_connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                           "AND wait_event_type = 'Lock'")
            if cursor.fetchone()[0]:
                return True
            time.sleep(0.01)
    return False


def pause_sale(monkeypatch, *, before_persona_lock: bool):
    """Stop the sale's first persona lock (just before it, or just after it) until released."""
    reached, go = threading.Event(), threading.Event()
    real = pos_service.personas_lock
    calls = []

    def paused(**kwargs):
        calls.append(1)
        if len(calls) == 1 and before_persona_lock:
            reached.set()
            go.wait(10)
        locked = real(**kwargs)
        if len(calls) == 1 and not before_persona_lock:
            reached.set()
            go.wait(10)
        return locked

    monkeypatch.setattr(pos_service, "personas_lock", paused)
    return reached, go


def test_send_transaction_after_an_unlock_won_the_race_is_refused_and_stores_nothing(monkeypatch):
    # given a $5.00 lock (100 points) and a sale carrying it that has read the lock's customer
    counter = Counter()
    redemption_id = counter.lock("R-1")
    assert counter.balance() == 150
    reached, go = pause_sale(monkeypatch, before_persona_lock=True)
    sale, box = in_thread(lambda: counter.post("send_transaction", counter.sale("R-1", redemption_id)))
    assert reached.wait(10)

    # when the unlock goes through first, then the sale carries on
    unlock = counter.post("unlock", {"redemption_id": redemption_id})
    go.set()
    sale.join(20)

    # then the sale is refused: the points came back, so no discount and nothing stored
    assert unlock.status_code == 200 and unlock.json()["state"] == "unlocked"
    response = box["result"]
    assert response.status_code == 409, response.content
    assert response.json()["code"] == "redemption_released"
    assert response.json()["detail"] == ("The reward was released before the sale closed; "
                                         "look the customer up again.")
    assert counter.balance() == 250
    assert not Transaction.objects.filter(company=counter.company).exists()
    assert Redemption.objects.get(pk=redemption_id).state == "unlocked"
    assert counter.ledger_consistent()


def test_redemption_unlock_while_the_sale_holds_the_customer_is_refused_as_redeemed(monkeypatch):
    # given a $5.00 lock and a sale closing it that holds the customer's row lock
    counter = Counter()
    redemption_id = counter.lock("R-2")
    reached, go = pause_sale(monkeypatch, before_persona_lock=False)
    sale, sale_box = in_thread(lambda: counter.post("send_transaction", counter.sale("R-2", redemption_id)))
    assert reached.wait(10)

    # when the unlock arrives meanwhile (and waits), then the sale finishes
    unlock, unlock_box = in_thread(lambda: counter.post("unlock", {"redemption_id": redemption_id}))
    assert waiting_for_a_lock()
    go.set()
    sale.join(20)
    unlock.join(20)

    # then the sale redeemed the lock and the unlock is refused: no deadlock, no 500
    assert "error" not in sale_box and "error" not in unlock_box
    response = sale_box["result"]
    assert response.status_code == 201, response.content
    assert response.json()["redemptions"] == [{"redemption_id": redemption_id, "state": "redeemed"}]
    refused = unlock_box["result"]
    assert refused.status_code == 409, refused.content
    assert refused.json()["code"] == "wrong_state" and refused.json()["state"] == "redeemed"
    assert Redemption.objects.get(pk=redemption_id).state == "redeemed"
    assert counter.balance() == 150 + 25  # the lock stays spent; the $25.00 after discount earns 25
    assert counter.ledger_consistent()


def test_send_transaction_and_redemption_unlock_raced_200_times_never_deadlock():
    # given a customer with points for every round, and two registers (threads with their
    # own database connections) that each round start together
    counter = Counter(points=50_000)
    runs, sales_won, unlocks_won, failures = 200, 0, 0, []
    start, done = threading.Barrier(3, timeout=60), threading.Barrier(3, timeout=60)
    round_ = {}
    results = {"send": [None] * runs, "unlock": [None] * runs}

    def register(name, call):
        client = counter.client()
        for n in range(runs):
            start.wait()
            try:
                results[name][n] = call(client)
            except Exception as exc:  # reported to the test, not lost in the thread
                results[name][n] = exc
            done.wait()

    def send(client):
        return counter.post("send_transaction", counter.sale(round_["cart_id"], round_["id"]), client)

    def unlock(client):
        return counter.post("unlock", {"redemption_id": round_["id"]}, client)

    t1, box1 = in_thread(lambda: register("send", send))
    t2, box2 = in_thread(lambda: register("unlock", unlock))
    started = time.monotonic()
    for n in range(runs):
        cart_id = f"RACE-{n}"
        round_.update(cart_id=cart_id, id=counter.lock(cart_id))
        # when the sale closing the lock and the unlock of the same lock start together
        start.wait()
        done.wait()
        sold, released = results["send"][n], results["unlock"][n]
        outcome = tuple(getattr(r, "status_code", r) for r in (sold, released))
        state = Redemption.objects.get(pk=round_["id"]).state
        stored = Transaction.objects.filter(company=counter.company,
                                            external_id__endswith=f"/{cart_id}").exists()
        # then exactly one wins, and the other is refused with a 409
        if outcome == (201, 409) and state == "redeemed" and stored:
            sales_won += 1
        elif (outcome == (409, 200) and state == "unlocked" and not stored
              and sold.json()["code"] == "redemption_released"):
            unlocks_won += 1
        else:
            failures.append((n, outcome, state, stored))
    t1.join(30)
    t2.join(30)
    elapsed = time.monotonic() - started
    deadlocks = sum(1 for f in failures if 500 in f[1] or "eadlock" in repr(f[1]))
    print(f"\nlock-order race: runs={runs} sales_won={sales_won} unlocks_won={unlocks_won} "
          f"deadlocks={deadlocks} other_failures={len(failures) - deadlocks} in {elapsed:.1f}s")

    assert "error" not in box1 and "error" not in box2
    assert failures == []
    assert sales_won + unlocks_won == runs
    assert counter.ledger_consistent()
    assert counter.balance() == 50_000 - 100 * sales_won + 25 * sales_won
