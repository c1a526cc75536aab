"""A campaign to a million customers: queueing it, and sending through the Twilio fake.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/campaign.py [--personas N] [--send M]

Seeds, set-wise (generate_series), a throw-away company with N customers (default
1,000,000; 90% with SMS consent, a few under age, duplicate numbers and bad numbers) in a
static audience, and an SMS campaign to it with a 10% holdout and a tracked link. Then:

- queue: `campaign_send` (every member checked for consent, age, contact, duplicates and
  the frequency cap; the holdout drawn; one row per member written), timed; the baseline
  is a bare INSERT … SELECT of the same number of rows into a table of the same shape in
  the same run (queue_ratio = baseline / queue: 1.0 would be the cost of writing the rows);
- send: M messages (default 50,000) by `campaign_send_batch` in P worker processes (the
  send loop of the Celery task: claim, recheck consent, merge fields, tracked links, the
  `twilio` library's Messages API call, the outcome written back) to the Twilio fake run
  as its own process; the baseline is as many bare POSTs to the fake, as many at once, on
  one aiohttp session (the transport the twilio library's asyncio client uses), in the same
  run (send_ratio = send_rate / raw_rate).

Peak RSS is the largest of this process and the sending processes. The company is removed
at the end. Last line:
  recipients=… queue_s=… send_rate=… peak_rss_mb=… queue_ratio=… raw_rate=… send_ratio=…
Targets: queue_s < 60 at 1M, send_rate >= 2000 messages/s, peak RSS flat.
"""

import argparse
import datetime as dt
import multiprocessing
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.db import connection  # noqa: E402

from bench.common import bench_company  # noqa: E402

PERSONAS_SQL = """
INSERT INTO loyalty_persona (company_id, first_name, last_name, phone, email, birth_date, market,
    is_member, enrolled_at, sms_opt_in, email_opt_in, favourite_store_id, sourced_from_id,
    custom_traits, points_balance, lifetime_points, tier, last_purchase_at, created_at, updated_at)
SELECT %(company)s,
       (ARRAY['Olivia','Liam','Emma','Noah','Ava','Mia','Lucas','Zoe','Ethan','Maya'])[1 + i %% 10],
       (ARRAY['Smith','Garcia','Nguyen','Patel','Brown','Lee','Lopez','Kim','Young','Hall'])
           [1 + (i / 10) %% 10],
       CASE WHEN i %% 500 = 3 THEN '303-555' WHEN i %% 997 = 0 THEN '+13030000001'
            ELSE '+1303' || lpad(i::text, 7, '0') END,
       'person' || i || '@example.com',
       CASE WHEN i %% 400 = 7 THEN current_date - 7000
            ELSE date '1950-01-01' + ((i::bigint * 7919) %% 18000)::int END,
       'CO', true, now(), i %% 10 <> 0, i %% 2 = 0, (%(stores)s::bigint[])[1 + i %% 3], %(source)s,
       '{}'::jsonb, (i * 37) %% 5000, (i * 37) %% 5000 + 100, (ARRAY['','Silver','Gold'])[1 + i %% 3], NULL,
       now(), now()
FROM generate_series(1, %(n)s) AS i
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def seed(n: int):
    from audiences.models import Audience

    company, stores, source, _offer = bench_company(stores=3)
    with connection.cursor() as cursor:
        cursor.execute(PERSONAS_SQL, {"company": company.pk, "stores": stores, "source": source, "n": n})
        audience = Audience.objects.create(company=company, name="Everyone", kind=Audience.Kind.STATIC)
        cursor.execute("INSERT INTO audiences_audiencemember (audience_id, persona_id, added_at) "
                       "SELECT %s, id, now() FROM loyalty_persona WHERE company_id = %s",
                       [audience.pk, company.pk])
        cursor.execute("ANALYZE loyalty_persona")
        cursor.execute("ANALYZE audiences_audiencemember")
    return company, audience


def baseline_insert(n: int) -> float:
    with connection.cursor() as cursor:
        cursor.execute("CREATE TEMP TABLE bench_rows (LIKE campaigns_campaignrecipient INCLUDING ALL)")
        started = time.perf_counter()
        cursor.execute("""INSERT INTO bench_rows (campaign_id, persona_id, "group", "to", time_zone, due_at,
                                                  state, attempts, provider_id, error_code, error)
                          SELECT 0, i, 'send', '+1303' || lpad(i::text, 7, '0'), 'America/Denver', now(),
                                 'pending', 0, '', '', '' FROM generate_series(1, %s) i""", [n])
        took = time.perf_counter() - started
        cursor.execute("DROP TABLE bench_rows")
    return took


def sender(campaign_id: int, messages: int, env: dict, out) -> None:
    os.environ.update(env)
    django.db.connections.close_all()
    from campaigns.services import campaign_send_batch

    sent = 0
    while sent < messages:
        state, _ = campaign_send_batch(campaign_id=campaign_id, budget_seconds=5)
        sent = _sent(campaign_id)
        if state != "more":
            break
    out.put(rss_mb())


def _sent(campaign_id: int) -> int:
    from campaigns.models import CampaignRecipient

    return CampaignRecipient.objects.filter(campaign_id=campaign_id, state="sent").count()


def raw_rate(url: str, account: str, token: str, messages: int, in_flight: int) -> float:
    """Bare POSTs of the same form to the fake, `in_flight` at once, on one aiohttp session
    (the transport of the twilio library's asyncio client): the HTTP exchange alone."""
    import asyncio

    import aiohttp

    async def run() -> float:
        limit = asyncio.Semaphore(in_flight)
        auth = aiohttp.BasicAuth(account, token)
        async with aiohttp.ClientSession() as session:
            async def post(i):
                async with limit:
                    data = {"To": f"+1720{i:07d}", "From": "+13035550100", "Body": "Hi"}
                    async with session.post(f"{url}/2010-04-01/Accounts/{account}/Messages.json", data=data,
                                            auth=auth) as answer:
                        answer.raise_for_status()
                        await answer.read()

            started = time.perf_counter()
            await asyncio.gather(*(post(i) for i in range(messages)))
            return messages / (time.perf_counter() - started)

    return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--personas", type=int, default=1_000_000)
    parser.add_argument("--send", type=int, default=50_000, help="messages to send through the fake")
    parser.add_argument("--processes", type=int, default=2, help="sending processes")
    args = parser.parse_args()

    from campaigns.models import Campaign
    from campaigns.services import SEND_THREADS, campaign_send, messaging_settings_update
    from members.twilio_fake import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_FROM

    port = free_port()
    # The fake posts no status callbacks: nothing here would receive them (in production the
    # web servers do, on other machines), and posting them would take the sender's CPU.
    fake = subprocess.Popen([sys.executable, "-m", "members.twilio_fake", "--host", "127.0.0.1",
                             "--port", str(port), "--no-callbacks"],
                            cwd=settings.BASE_DIR, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    env = {"SMS_PROVIDER": "twilio", "TWILIO_ACCOUNT_SID": DEFAULT_ACCOUNT_SID,
           "TWILIO_AUTH_TOKEN": DEFAULT_AUTH_TOKEN,
           "TWILIO_FROM": DEFAULT_FROM, "TWILIO_API_BASE": url, "OUTBOUND_ALLOW_HOSTS": f"127.0.0.1:{port}"}
    for name, value in env.items():
        setattr(settings, name, [value] if name == "OUTBOUND_ALLOW_HOSTS" else value)
    company = None
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        started = time.perf_counter()
        company, audience = seed(args.personas)
        print(f"seeded personas={args.personas} in {time.perf_counter() - started:.1f}s", flush=True)
        # Any hour: the bench must not depend on the clock.
        messaging_settings_update(company=company, audit=None, send_window_start=dt.time(0),
                                  send_window_end=dt.time(23, 59, 59, 999999))
        campaign = Campaign.objects.create(company=company, name="Bench", channel="sms", audience=audience,
                                           holdout_percent=10,
                                           sms_body="Hi {first_name}, 2x points today at {store}: https://example.com/deals")
        started = time.perf_counter()
        campaign = campaign_send(campaign=campaign, audit=None)
        queue_s = time.perf_counter() - started
        insert_s = baseline_insert(campaign.audience_size)
        print(f"queued recipients={campaign.recipient_count} holdout={campaign.holdout_count} "
              f"excluded={campaign.exclusions} queue_s={queue_s:.2f} insert_s={insert_s:.2f}", flush=True)

        context = multiprocessing.get_context("fork")
        out = context.Queue()
        connection.close()
        # Every process sends until M messages are out in all, as workers on one campaign do.
        started = time.perf_counter()
        procs = [context.Process(target=sender, args=(campaign.pk, args.send, env, out))
                 for i in range(args.processes)]
        [p.start() for p in procs]
        [p.join() for p in procs]
        elapsed = time.perf_counter() - started
        sent = _sent(campaign.pk)
        send_rate = sent / elapsed
        child_rss = max([out.get() for _ in procs] or [0])
        raw = raw_rate(url, DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, min(sent, 10_000) or 1000,
                       SEND_THREADS * args.processes)
        print(f"sent={sent} in {elapsed:.1f}s", flush=True)
        peak = max(rss_mb(), child_rss)
        print(f"recipients={campaign.recipient_count} queue_s={queue_s:.2f} send_rate={send_rate:.0f} "
              f"peak_rss_mb={peak:.0f} queue_ratio={insert_s / queue_s:.3f} raw_rate={raw:.0f} "
              f"send_ratio={send_rate / raw:.2f}", flush=True)
    finally:
        fake.terminate()
        if company is not None:
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM campaigns_campaignrecipient r USING campaigns_campaign c "
                               "WHERE r.campaign_id = c.id AND c.company_id = %s", [company.pk])
                cursor.execute("DELETE FROM audiences_audiencemember m USING audiences_audience a "
                               "WHERE m.audience_id = a.id AND a.company_id = %s", [company.pk])
            Campaign.objects.filter(company=company).delete()
            with connection.cursor() as cursor:
                cursor.execute("DELETE FROM loyalty_persona WHERE company_id = %s", [company.pk])
                cursor.execute("DELETE FROM loyalty_offer WHERE company_id = %s", [company.pk])
                cursor.execute("DELETE FROM loyalty_source WHERE company_id = %s", [company.pk])
            company.delete()


if __name__ == "__main__":
    main()
