"""POS lookup under load, against a trivial authenticated endpoint in the same run.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/pos_load.py [--seconds 30]

Seeds 100,000 personas (with phones) in a throw-away company, a few offers and POS
prompts, and an API key; starts the app under gunicorn (4 sync workers, DEBUG off); then
20 concurrent clients call `lookup` by phone with a 5-item basket for --seconds, and the
same clients call `ping` (authenticated, no work) for --seconds as the baseline. The
company is removed at the end. The key's rate limit and usage counting are on, its rate set
to the highest a key may have so that they are checked and counted but never refuse.

Last line: lookup_p50_ms=… lookup_p99_ms=… lookup_rps=… baseline_rps=… ratio=…
(ratio = lookup_rps / baseline_rps).
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

import requests  # noqa: E402
from cryptography.fernet import Fernet  # noqa: E402
from django.db import connection  # noqa: E402

from loyalty.models import Offer, Prompt  # noqa: E402
from stores.models import API_BURST_MAX, API_RATE_MAX  # noqa: E402
from stores.services import api_key_create, company_create, store_create  # noqa: E402

BASE_DIR = Path(__file__).resolve().parent.parent
CLIENTS = 20

SEED_SQL = """
INSERT INTO loyalty_persona (company_id, first_name, last_name, phone, email, market, is_member, enrolled_at,
    sms_opt_in, email_opt_in, favourite_store_id, sourced_from_id, custom_traits, points_balance,
    lifetime_points, tier, last_purchase_at, created_at, updated_at)
SELECT %(company)s, 'First' || i, 'Last' || (i %% 1000), '+1303' || lpad((2000000 + i)::text, 7, '0'),
       'p' || i || '@example.com', 'CO', true, now(), false, false, NULL, NULL, '{}'::jsonb,
       (i * 37) %% 5000, (i * 37) %% 5000 + 100, '', NULL, now(), now()
FROM generate_series(1, %(n)s) AS i
"""

BASKET_ITEMS = [
    {"sku": "FLO-1", "product": "Blue Dream 3.5g", "brand": "Green Dot Labs", "category": "Flower",
     "quantity": "1", "unit_price": "35.00"},
    {"sku": "VAP-2", "product": "Elite Cartridge 1g", "brand": "Select", "category": "Vapes",
     "quantity": "1", "unit_price": "48.00"},
    {"sku": "EDI-3", "product": "Sour Gummies 100mg", "brand": "Wana", "category": "Edibles",
     "quantity": "2", "unit_price": "20.00"},
    {"sku": "PRE-4", "product": "Jack Herer 1g", "brand": "Lazercat", "category": "Pre-Rolls",
     "quantity": "3", "unit_price": "12.00"},
    {"sku": "ACC-5", "product": "Rolling Papers", "brand": "RAW", "category": "Accessories",
     "quantity": "1", "unit_price": "3.00"},
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def seed(personas: int):
    suffix = uuid.uuid4().hex[:8]
    company = company_create(name=f"POS bench {suffix}", slug=f"pos-bench-{suffix}",
                             timezone="America/Denver")
    store = store_create(company=company, name="Bench store", state="CO")
    with connection.cursor() as cursor:
        cursor.execute(SEED_SQL, {"company": company.pk, "n": personas})
        cursor.execute("ANALYZE loyalty_persona")
    for i, (kind, amount, cost) in enumerate([("flat", 10, 100), ("percent", 15, 250), ("flat", 5, 40)]):
        Offer.objects.create(company=company, name=f"Offer {i}", kind=kind, amount=amount, points_cost=cost,
                             min_subtotal=20, categories=["Flower", "Vapes"] if i == 1 else [])
    Prompt.objects.create(company=company, name="Warranty", condition="item_price_over", value="45",
                          message="Offer the 1-year battery warranty")
    Prompt.objects.create(company=company, name="Email", condition="missing_birthday", value="",
                          message="Ask for the customer's birthday")
    # Limits on, not binding: one key drives all ~1,000 calls a second, past the default rate.
    _, raw = api_key_create(company=company, name="Bench", level=1, rate_per_second=API_RATE_MAX,
                            burst=API_BURST_MAX)
    return company, store, raw


def cleanup(company) -> None:
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM loyalty_persona WHERE company_id = %s", [company.pk])
    company.delete()


def start_server(port: int) -> subprocess.Popen:
    env = {**os.environ, "DEBUG": "0", "SECRET_KEY": uuid.uuid4().hex * 2,
           "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
           "ALLOWED_HOSTS": "127.0.0.1", "DATABASE_URL": os.environ.get("DATABASE_URL", ""),
           "PYTHONPATH": str(BASE_DIR),
           "SECURE_SSL_REDIRECT": "0"}  # plain http on the loopback; production redirects to https
    if not env["DATABASE_URL"]:
        env.pop("DATABASE_URL")
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "config.wsgi", "-w", "4", "-b", f"127.0.0.1:{port}",
         "--log-level", "warning"], cwd=BASE_DIR, env=env)
    for _ in range(100):
        try:
            requests.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
            return server
        except requests.RequestException:  # not listening yet, or workers still booting
            time.sleep(0.2)
    server.kill()
    raise SystemExit("gunicorn did not start")


def drive(port: int, path: str, headers: dict, body_for, seconds: float) -> list[float]:
    """CLIENTS threads, each on its own keep-alive connection, calling `path` (POST with
    body_for(rng) as JSON, or GET when body_for is None) until the time is up. Plain
    http.client: the load generator shares the machine, so it should cost little."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def client(n: int):
        conn, mine, rng = http.client.HTTPConnection("127.0.0.1", port, timeout=10), [], random.Random(n)
        while time.monotonic() < stop:
            started = time.perf_counter()
            if body_for is None:
                conn.request("GET", path, headers=headers)
            else:
                conn.request("POST", path, body=json.dumps(body_for(rng)),
                             headers={**headers, "Content-Type": "application/json"})
            response = conn.getresponse()
            payload = response.read()
            mine.append(time.perf_counter() - started)
            if response.status != 200:
                errors.append(f"{path}: {response.status} {payload[:300]!r}")
                return
        conn.close()
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(errors[0])
    return latencies


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--personas", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=30)
    args = parser.parse_args()

    company, store, raw = seed(args.personas)
    port = free_port()
    server = start_server(port)
    try:
        headers = {"Authorization": f"Bearer {raw}", "X-Account-UID": str(company.account_uid)}
        base = "/api/pos/v1/"

        def lookup_body(rng):
            return {"phone": f"+1303{2000000 + rng.randint(1, args.personas):07d}",
                    "basket": {"store_id": store.pk, "tax_total": "20.00", "items": BASKET_ITEMS}}

        drive(port, base + "lookup", headers, lookup_body, 2)  # warm the workers up
        lookups = drive(port, base + "lookup", headers, lookup_body, args.seconds)
        pings = drive(port, base + "ping", headers, None, args.seconds)
    finally:
        server.terminate()
        server.wait(10)
        cleanup(company)

    quantiles = statistics.quantiles(lookups, n=100)
    ping_quantiles = statistics.quantiles(pings, n=100)
    lookup_rps, baseline_rps = len(lookups) / args.seconds, len(pings) / args.seconds
    print(f"(baseline ping: p50={ping_quantiles[49] * 1000:.1f} ms p99={ping_quantiles[98] * 1000:.1f} ms)")
    print(f"lookup_p50_ms={quantiles[49] * 1000:.1f} lookup_p99_ms={quantiles[98] * 1000:.1f} "
          f"lookup_rps={lookup_rps:.0f} baseline_rps={baseline_rps:.0f} "
          f"ratio={lookup_rps / baseline_rps:.2f}")

if __name__ == "__main__":
    main()
