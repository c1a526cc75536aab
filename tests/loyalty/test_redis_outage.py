"""Redis (the shared cache and the Celery broker) stops while registers are selling: a real
web server keeps answering the POS fast, nothing is counted twice or lost, and when Redis
is back the stamps are read again and the webhooks that could not be queued are sent."""

import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from decimal import Decimal
from pathlib import Path

import pytest
import redis
import requests

from loyalty.models import LoyaltyProgram, Offer, PointsEntry, Prompt, WebhookDelivery
from loyalty.services import points_adjust
from loyalty.services.webhooks import webhook_endpoint_create
from stores.models import Role
from stores.services import api_key_create
from tests.childdb import database_url
from tests.factories import MembershipFactory, PersonaFactory

ROOT = Path(__file__).resolve().parents[2]
API = "/api/pos/v1/"
BACKOFF = 2  # REDIS_BACKOFF_SECONDS of the server under test
FAST = 1.0  # what a POS call may take with Redis stopped

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.skipif(not shutil.which("redis-server"), reason="needs the redis-server binary"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class OwnRedis:
    """A redis-server of this test's own, stopped and started again with its data."""

    def __init__(self, folder: Path):
        self.port, self.folder, self.process = free_port(), folder, None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.folder),
             "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_for(lambda: redis.Redis(port=self.port).ping(), what="redis-server")

    def stop(self) -> None:
        with contextlib.suppress(redis.ConnectionError):  # it answers nothing as it goes
            redis.Redis(port=self.port).shutdown(save=True)
        self.process.wait(timeout=10)


def wait_for(check, *, what: str, seconds: float = 30):
    deadline = time.monotonic() + seconds
    while True:
        try:
            result = check()
            if result:
                return result
        except (OSError, redis.RedisError, requests.RequestException):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} not ready after {seconds} s")
        time.sleep(0.1)


def stop(process: subprocess.Popen) -> str:
    process.terminate()
    try:
        _, err = process.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        _, err = process.communicate()
    return (err or b"").decode(errors="replace")[-3000:]


@pytest.fixture
def own_redis(tmp_path):
    server = OwnRedis(tmp_path)
    server.start()
    yield server
    if server.process.poll() is None:
        server.stop()


@pytest.fixture
def shop(company, store, local_server, outbound_allow):
    """A program, a $10-off offer for 100 points, a member with 250 points, a prompt on any
    basket over $10, a POS key and a webhook receiver subscribed to points.changed."""
    LoyaltyProgram.objects.get_or_create(company=company)
    offer = Offer.objects.create(company=company, name="$10 off", kind="flat", amount=Decimal("10"),
                                 points_cost=100, min_subtotal=Decimal("20"))
    persona = PersonaFactory(company=company, first_name="Dana", phone="+13035550150")
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    points_adjust(company=company, persona_id=persona.pk, delta=250, staff_user=staff, reason="Welcome")
    prompt = Prompt.objects.create(company=company, name="Grinder", condition="basket_total_over",
                                   value="10", message="Offer a grinder")
    _, raw = api_key_create(company=company, name="Register 1", level=1)
    receiver = local_server()
    allowed = outbound_allow(receiver.url())
    webhook_endpoint_create(company=company, url=receiver.url("/pos"), events=["points.changed"])
    headers = {"Authorization": f"Bearer {raw}", "X-Account-UID": str(company.account_uid),
               "Accept": "application/json"}
    return {"offer": offer, "persona": persona, "prompt": prompt, "headers": headers,
            "receiver": receiver, "allowed": allowed}


def env_for(redis_url: str, **extra) -> dict:
    return os.environ | {"DATABASE_URL": database_url(), "REDIS_URL": redis_url,
                         "REDIS_BACKOFF_SECONDS": str(BACKOFF), "PYTHONPATH": str(ROOT)} | extra


@pytest.fixture
def web_on():
    """`web_on(redis_url)`: gunicorn serving the app, one worker process, on that Redis;
    returns the POS API's URL."""
    processes = []

    def start(redis_url: str) -> str:
        port = free_port()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--threads", "4", "--timeout", "60"],
            cwd=ROOT, env=env_for(redis_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        url = f"http://127.0.0.1:{port}{API}"
        # Unauthenticated: an answer without touching Redis.
        wait_for(lambda: requests.get(url + "ping", timeout=2).status_code in (401, 403), what="gunicorn")
        return url

    yield start
    for process in processes:
        print(stop(process))


@pytest.fixture
def web(own_redis, shop, web_on):
    return web_on(own_redis.url)


def timed_post(url, body, headers):
    started = time.monotonic()
    response = requests.post(url, json=body, headers=headers, timeout=15, stream=True)
    try:
        response.content  # noqa: B018 - read now, inside the timing
    except requests.RequestException:
        response._content = b"(the body broke off)"  # a crashed answer: its status still tells
    return response, time.monotonic() - started


def manage_py(own_redis, code: str, **extra) -> dict:
    """Run `code` in a fresh manage.py shell on the test's Redis; it prints one JSON line."""
    done = subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=ROOT, timeout=120,
                          env=env_for(own_redis.url, **extra), capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_redis_stopped_pos_answers_fast_loses_nothing_and_resumes(own_redis, shop, web, store):
    headers, persona, offer, prompt = shop["headers"], shop["persona"], shop["offer"], shop["prompt"]
    basket = {"store_id": store.pk, "tax_total": "6.30", "items": [
        {"line_id": "1", "sku": "FLO-1", "product": "Blue Dream 3.5g", "brand": "Green Dot",
         "category": "Flower", "quantity": "1", "unit_price": "42.00"}]}
    lookup = {"phone": "3035550150", "basket": basket}

    # given a register that looked a customer up while Redis was there (the prompt fired once,
    # counted in Redis a second later)
    response, _ = timed_post(web + "lookup", lookup, headers)
    assert response.status_code == 200 and [p["id"] for p in response.json()["prompts"]] == [prompt.pk]
    time.sleep(1.5)

    # when Redis stops
    own_redis.stop()

    # then lookups, a redeem and a sale answer, each fast
    timings = {}
    for i in range(3):
        response, timings[f"lookup {i}"] = timed_post(web + "lookup", lookup, headers)
        assert response.status_code == 200, response.text
        assert response.json()["points_balance"] == 250
    response, timings["redeem"] = timed_post(web + "redeem", {
        "persona_id": persona.pk, "cart_id": "R-1", "offer_id": offer.pk, "basket": basket}, headers)
    assert response.status_code == 201, response.text
    redemption_id = response.json()["redemption_id"]
    response, timings["sale"] = timed_post(web + "send_transaction", {
        "transaction_id": "R-1", "store_id": store.pk, "persona_id": persona.pk, "status": "closed",
        "subtotal": "42.00", "tax_total": "6.30",
        "items": [{"line_id": "1", "product": "Blue Dream 3.5g", "quantity": "1", "unit_price": "42.00"}],
        "payments": [{"method": "cash", "amount": "38.30"}],
        "discounts": [{"redemption_id": redemption_id, "amount": "10.00"}]}, headers)
    print("\nRedis stopped: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()))
    assert response.status_code == 201, response.text
    assert response.json()["points_earned"] == 32
    assert all(t < FAST for t in timings.values()), timings

    # and the points ledger is right: 250 - 100 redeemed + 32 earned
    persona.refresh_from_db()
    ledger = list(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True))
    assert persona.points_balance == 182 and sum(ledger) == 182 and sorted(ledger) == [-100, 32, 250]

    # and the three firings Redis could not take are counted in the database (a second later)
    wait_for(lambda: Prompt.objects.get(pk=prompt.pk).times_fired == 3, what="firings in the database",
             seconds=10)

    # and the points.changed deliveries wait, pending and never attempted
    deliveries = list(WebhookDelivery.objects.filter(endpoint__company=persona.company))
    assert len(deliveries) == 2  # the redeem's and the sale's
    assert {(d.state, d.attempts) for d in deliveries} == {(WebhookDelivery.State.PENDING, 0)}

    # when Redis is back (and the back-off is over), with a Celery worker on it
    own_redis.start()
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "--pool", "solo", "--loglevel", "warning",
         "--without-heartbeat", "--without-gossip", "--without-mingle"],
        cwd=ROOT, env=env_for(own_redis.url, OUTBOUND_ALLOW_HOSTS=shop["allowed"]),
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        time.sleep(BACKOFF + 0.5)
        response, took = timed_post(web + "lookup", lookup, headers)
        assert response.status_code == 200 and took < FAST, (response.text, took)
        assert response.json()["points_balance"] == 182

        # then the same server queues again: a new sale's delivery is sent at once
        response, _ = timed_post(web + "send_transaction", {
            "transaction_id": "R-2", "store_id": store.pk, "persona_id": persona.pk, "status": "closed",
            "subtotal": "20.00", "items": [{"line_id": "1", "product": "Papers", "quantity": "1",
                                            "unit_price": "20.00"}]}, headers)
        assert response.status_code == 201 and response.json()["points_earned"] == 20, response.text
        after = WebhookDelivery.objects.exclude(pk__in=[d.pk for d in deliveries]).get()
        wait_for(lambda: WebhookDelivery.objects.get(pk=after.pk).state == WebhookDelivery.State.DELIVERED,
                 what="the new sale's delivery", seconds=30)
        assert WebhookDelivery.objects.filter(  # those of the outage were never queued
            pk__in=[d.pk for d in deliveries], state=WebhookDelivery.State.PENDING, attempts=0).count() == 2
        time.sleep(1.5)  # the fifth firing reaches Redis

        # when the beat's sweep and flush run, and the rules change in another process
        Prompt.objects.filter(pk=prompt.pk).update(message="Offer a grinder, 20% off")
        moved = manage_py(own_redis, (
            "import json\n"
            "from loyalty.catalog import catalog_changed\n"
            "from loyalty.tasks import prompt_firings_flush, webhook_deliveries_requeue\n"
            f"catalog_changed({persona.company_id})\n"
            "print(json.dumps({'requeued': webhook_deliveries_requeue(),\n"
            "                  'flushed': prompt_firings_flush()}))\n"),
            WEBHOOK_REQUEUE_AFTER_SECONDS="0")

        # then every firing is counted once: 1 before, 3 during, 1 after the outage
        assert moved == {"requeued": 2, "flushed": 2}
        assert Prompt.objects.get(pk=prompt.pk).times_fired == 5

        # and each delivery of the outage is sent, once
        wait_for(lambda: WebhookDelivery.objects.filter(
            pk__in=[d.pk for d in deliveries], state=WebhookDelivery.State.DELIVERED).count() == 2,
            what="the outage's webhook deliveries", seconds=30)
    finally:
        print(stop(worker))
    assert shop["receiver"].requests == [("POST", "/pos")] * 3
    assert set(WebhookDelivery.objects.values_list("attempts", flat=True)) == {1}
    persona.refresh_from_db()
    ledger = list(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True))
    assert persona.points_balance == 202 and sum(ledger) == 202

    # and the server reads the stamps again: the changed prompt shows within a second or two
    wait_for(lambda: requests.post(web + "lookup", json=lookup, headers=headers, timeout=5).json()[
        "prompts"][0]["message"] == "Offer a grinder, 20% off", what="the new rules", seconds=5)


def test_redis_that_accepts_but_never_answers_costs_one_timeout_not_a_hang(shop, web_on, store):
    # given a "Redis" that takes connections and never answers (a hung server, a dead peer)
    mute = socket.socket()
    mute.bind(("127.0.0.1", 0))
    mute.listen(64)  # the kernel completes the connections; nobody ever reads or writes
    try:
        web = web_on(f"redis://127.0.0.1:{mute.getsockname()[1]}/0")
        headers, persona = shop["headers"], shop["persona"]
        basket = {"store_id": store.pk, "items": [
            {"line_id": "1", "product": "Blue Dream 3.5g", "quantity": "1", "unit_price": "42.00"}]}

        # when the POS looks a customer up, then sells
        timings = {}
        for i in range(3):
            response, timings[f"lookup {i}"] = timed_post(web + "lookup", {"persona_id": persona.pk,
                                                                           "basket": basket}, headers)
            assert response.status_code == 200, (timings, response.text[:300])
        response, timings["sale"] = timed_post(web + "send_transaction", {
            "transaction_id": "M-1", "store_id": store.pk, "persona_id": persona.pk, "status": "closed",
            "subtotal": "42.00", "items": basket["items"]}, headers)
        print("\nRedis mute: " + ", ".join(f"{k} {v * 1000:.0f} ms" for k, v in timings.items()))

        # then each answers within a second: one call waits out REDIS_SOCKET_TIMEOUT, the
        # rest skip Redis for the back-off
        assert response.status_code == 201 and response.json()["points_earned"] == 42, response.text
        assert all(t < FAST for t in timings.values()), timings
        persona.refresh_from_db()
        assert persona.points_balance == 292
        assert WebhookDelivery.objects.get().state == WebhookDelivery.State.PENDING
    finally:
        mute.close()
