"""Scale-out, measured: two web nodes, two Celery workers and one beat on one PostgreSQL
and one Redis.

    .venv/bin/python -m config.launcher exec -- .venv/bin/python bench/scale_out.py [--seconds 20]

Needs DATABASE_URL and REDIS_URL (the launcher sets both). It creates its own database,
<name>_scaleout, on DATABASE_URL's server (dropped first if left over, dropped again at
the end unless --keep), migrates it, and starts on this machine, each in its own process
group: two gunicorn web nodes (--web-workers sync workers each, DEBUG off) on two ports,
two Celery workers (`-n scale1@…`, `-n scale2@…`, --concurrency each, task events on) and
one beat. The client side drives the two ports alternately: that is the round-robin.
Workers get SYNC_LEASE_SECONDS=5 and CELERY_VISIBILITY_TIMEOUT=10, so a killed worker's
sync is seen dead, and its task handed out again, within seconds. The Celery queue on
REDIS_URL is purged first: use a Redis database no other deployment's workers share.

  (a) contention: 50 `redeem` calls at once, alternating between the two nodes, on one
      customer whose 100 points pay for 10 of them → exactly 10 are 201, 40 are 409, the
      balance ends at 0 and the ledger sums to 0;
  (b) nightly syncs: 20 folder connections, each with a small report file; their nightly
      beat entry (`connection_sync_scheduled`) is sent for all 20 at once → each
      connection has exactly one run, succeeded, its task run once (the workers' task
      events say which worker ran it), its file's sales in once, and the runs spread
      over both workers;
  (d) lookup throughput: --clients concurrent POS clients doing `lookup` with a 5-item
      basket for --seconds against one node, then the same clients spread over both;
  (c) a worker killed mid-sync: a --kill-rows report is synced; once the run has staged
      half of it, the worker running it gets SIGKILL on its whole process group → the
      task comes again to the other worker, the run ends succeeded and the file's sales
      are in exactly once (checked in the database). Up to --recover-seconds are allowed.

Last line: web_nodes=2 workers=2 contention_ok=… syncs_once=… kill_recovered=…
lookup_rps_1=… lookup_rps_2=… scale=…   (scale = lookup_rps_2 / lookup_rps_1)
"""

import argparse
import ast
import collections
import contextlib
import datetime as dt
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

WEB_NODES = 2
WORKERS = 2
SYNC_CONNECTIONS = 20
CONTENDERS = 50
LEASE_SECONDS = "5"
VISIBILITY_TIMEOUT = "10"
HEADER = "ReceiptId,customerId,TransactionDate,Location,FirstName,ProductName,LineTotal,LineTax,PaymentMethod"


def say(message: str) -> None:
    print(message, flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


# --- the database and the processes ---------------------------------------------------------

def database_with_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


def database_recreate(server_url: str, name: str, *, drop_only: bool = False) -> None:
    """Drop (and create) `name` on the server `server_url` points at."""
    import psycopg

    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop_only:
            conn.execute(f'CREATE DATABASE "{name}"')


class Fleet:
    """The processes this bench starts, each in its own process group, logging to a file."""

    def __init__(self, logs: Path, env: dict):
        self.logs, self.env = logs, env
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str, argv: list[str]) -> subprocess.Popen:
        with open(self.logs / f"{name}.log", "ab") as log:
            proc = subprocess.Popen(argv, cwd=BASE_DIR, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        self.procs[name] = proc
        return proc

    def kill(self, name: str) -> None:
        """SIGKILL to the whole group: the worker's main process and its pool children."""
        proc = self.procs[name]
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 15
        for proc in self.procs.values():
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def web_node_start(fleet: Fleet, name: str, port: int, workers: int) -> None:
    fleet.start(name, [sys.executable, "-m", "gunicorn", "config.wsgi", "-w", str(workers),
                       "-b", f"127.0.0.1:{port}", "--log-level", "warning"])
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if fleet.procs[name].poll() is not None:
            raise SystemExit(f"{name} exited:\n{fleet.log(name)[-2000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/healthz")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:  # not listening yet, or workers still booting
            time.sleep(0.2)
    raise SystemExit(f"{name} did not start")


class TaskEvents:
    """The workers' task events (workers run with -E), as they come: which worker received,
    started and finished which task, and with which arguments."""

    def __init__(self, app):
        self.app = app
        self.lock = threading.Lock()
        self.events: list[dict] = []
        self.receiver = None
        self.thread = threading.Thread(target=self._capture, name="task-events", daemon=True)

    def _capture(self) -> None:
        # A consumer on Redis also hands out again deliveries older than the visibility
        # timeout; this one must not, so that (c) measures what the workers do.
        never = {"visibility_timeout": 10**9}
        with self.app.connection_for_read(transport_options=never) as conn:
            self.receiver = self.app.events.Receiver(conn, handlers={"*": self._on_event})
            self.receiver.capture(limit=None, timeout=None, wakeup=False)

    def _on_event(self, event: dict) -> None:
        with self.lock:
            self.events.append(event)

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        if self.receiver is not None:
            self.receiver.should_stop = True
        self.thread.join(5)

    def of(self, kind: str) -> list[dict]:
        with self.lock:
            return [e for e in self.events if e.get("type") == kind]

    def hosts_seen(self) -> set[str]:
        return {e["hostname"] for e in self.of("worker-heartbeat") + self.of("worker-online")}

    def sync_task_runs(self) -> dict[str, int]:
        """connection_sync task id → the run id it was sent for."""
        runs = {}
        for event in self.of("task-received"):
            if event.get("name") == "integrations.tasks.connection_sync":
                args = ast.literal_eval(event.get("args") or "()")
                if args:
                    runs[event["uuid"]] = int(args[0])
        return runs

    def hosts_of(self, kind: str, task_id: str) -> list[str]:
        return [e["hostname"] for e in self.of(kind) if e.get("uuid") == task_id]


def short(hostname: str) -> str:
    return hostname.split("@", 1)[0]


# --- (a) contention ---------------------------------------------------------------------------

def post(conn: http.client.HTTPConnection, path: str, body: dict, headers: dict) -> tuple[int, bytes]:
    conn.request("POST", path, body=json.dumps(body), headers={**headers, "Content-Type": "application/json"})
    response = conn.getresponse()
    return response.status, response.read()


def contention(ports: list[int], headers: dict, company, store) -> bool:
    from django.contrib.auth import get_user_model

    from loyalty.models import Offer, Persona, PointsEntry, Redemption
    from loyalty.services import points_adjust
    from stores.models import Membership, Role

    offer = Offer.objects.create(company=company, name="5 off for 10", kind="flat", amount=5, points_cost=10)
    persona = Persona.objects.create(company=company, first_name="Contended", last_name="Customer")
    staff = get_user_model().objects.create(username=f"scale-{uuid.uuid4().hex[:8]}")
    Membership.objects.create(user=staff, company=company, role=Role.ADMIN)
    points_adjust(company=company, persona_id=persona.pk, delta=100, staff_user=staff, reason="Bench")
    basket = {"store_id": store.pk, "tax_total": "6.30", "items": [
        {"sku": "FLO-1", "product": "Blue Dream 3.5g", "brand": "Green Dot", "category": "Flower",
         "quantity": "1", "unit_price": "42.00"}]}
    barrier = threading.Barrier(CONTENDERS)
    codes: list[int] = [0] * CONTENDERS

    def redeem(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ports[n % len(ports)], timeout=60)
        body = {"persona_id": persona.pk, "cart_id": f"CART-{n}", "offer_id": offer.pk, "basket": basket}
        barrier.wait()
        codes[n], _ = post(conn, "/api/pos/v1/redeem", body, headers)
        conn.close()

    threads = [threading.Thread(target=redeem, args=(n,)) for n in range(CONTENDERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    persona.refresh_from_db()
    ledger = sum(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True))
    redemptions = Redemption.objects.filter(persona=persona).count()
    counts = collections.Counter(codes)
    ok = (counts[201], counts[409], persona.points_balance, ledger, redemptions) == (10, 40, 0, 0, 10)
    say(f"(a) {CONTENDERS} redeems over {len(ports)} nodes on 100 points, 10 each: "
        f"statuses {dict(sorted(counts.items()))}, balance {persona.points_balance}, ledger sum {ledger}, "
        f"redemptions {redemptions} -> {'ok' if ok else 'WRONG'}")
    return ok


# --- (b) and (c) syncs ------------------------------------------------------------------------

def report_write(path: Path, *, prefix: str, rows: int, location: str) -> None:
    day = f"{dt.date.today() - dt.timedelta(days=2):%m/%d/%Y} 10:15 AM"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as out:
        out.write(HEADER + "\n")
        for i in range(rows):
            out.write(f"{prefix}-R{i},{prefix}-C{i % 97},{day},{location},Ana,Gummies,10.00,0,Cash\n")


def runs_settled(connection_ids: list[int], timeout: float) -> bool:
    from integrations.models import SyncRun

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        runs = SyncRun.objects.filter(connection_id__in=connection_ids)
        if (runs.values("connection_id").distinct().count() == len(connection_ids)
                and not runs.filter(state__in=[SyncRun.State.QUEUED, SyncRun.State.RUNNING]).exists()):
            return True
        time.sleep(0.25)
    return False


def nightly_syncs(company, store, events: TaskEvents, rows: int) -> bool:
    from django.conf import settings

    from integrations.models import ImportedFile, SyncRun
    from integrations.services.connections import connection_create
    from integrations.tasks import connection_sync_scheduled
    from loyalty.models import Transaction

    connections = []
    for n in range(SYNC_CONNECTIONS):
        folder = f"nightly-{n:02d}"
        report_write(Path(settings.REPORTS_ROOT) / company.slug / folder / "day.csv",
                     prefix=f"N{n:02d}", rows=rows, location=store.name)
        connections.append(connection_create(company=company, name=f"Nightly {n:02d}", provider="folder",
                                             settings={"path": folder}, credentials={}))
    ids = [c.pk for c in connections]
    started = time.monotonic()
    for connection_id in ids:  # what beat sends when the 20 nightly entries fall due together
        connection_sync_scheduled.delay(connection_id)
    settled = runs_settled(ids, timeout=120)
    elapsed = time.monotonic() - started
    time.sleep(1.5)  # the last task-succeeded events are on their way

    task_of_run = {run: task for task, run in events.sync_task_runs().items()}
    ran_on = collections.Counter()
    problems = []
    for connection in connections:
        runs = list(SyncRun.objects.filter(connection=connection))
        if len(runs) != 1:
            problems.append(f"{connection.name}: {len(runs)} runs")
            continue
        run = runs[0]
        sales = Transaction.objects.filter(source=connection.source).count()
        files = list(ImportedFile.objects.filter(connection=connection)
                     .values_list("rows_accepted", flat=True))
        task = task_of_run.get(run.pk)
        started_on = events.hosts_of("task-started", task) if task else []
        succeeded_on = events.hosts_of("task-succeeded", task) if task else []
        if (run.state, run.attempts, sales, files) != ("succeeded", 1, rows, [rows]):
            problems.append(f"{connection.name}: run {run.state} attempts {run.attempts}, "
                            f"{sales} sales, files {files}")
        if len(started_on) != 1 or len(succeeded_on) != 1:
            problems.append(f"{connection.name}: task started on {started_on}, succeeded on {succeeded_on}")
        else:
            ran_on[short(succeeded_on[0])] += 1
    spread = len(ran_on) == WORKERS
    ok = settled and not problems and spread
    say(f"(b) {SYNC_CONNECTIONS} nightly syncs of {rows} rows sent at once: "
        f"{'settled' if settled else 'NOT settled'} in {elapsed:.1f} s, ran on "
        f"{', '.join(f'{h}={c}' for h, c in sorted(ran_on.items())) or 'nothing seen'} -> "
        f"{'ok' if ok else 'WRONG'}")
    for problem in problems[:10]:
        say(f"    {problem}")
    return ok


def killed_mid_sync(company, store, events: TaskEvents, fleet: Fleet, rows: int,
                    recover_seconds: float) -> bool:
    from django.conf import settings
    from django.core.cache import cache

    from integrations.models import ImportedFile, SyncRun
    from integrations.services.connections import connection_create
    from integrations.services.sync import progress_key, sync_run_create
    from integrations.tasks import connection_sync
    from loyalty.models import Transaction

    report_write(Path(settings.REPORTS_ROOT) / company.slug / "big" / "day.csv", prefix="K", rows=rows,
                 location=store.name)
    connection = connection_create(company=company, name="Killed mid-sync", provider="folder",
                                   settings={"path": "big"}, credentials={})
    run = sync_run_create(connection=connection, trigger=SyncRun.Trigger.MANUAL)
    cache.delete(progress_key(run.pk))  # a run of an earlier bench database had this id too
    task_id = connection_sync.delay(run.pk).id

    deadline = time.monotonic() + 120
    victim = None
    while time.monotonic() < deadline:
        received = events.hosts_of("task-received", task_id)
        staged = cache.get(progress_key(run.pk)) or 0
        run.refresh_from_db()
        if received and run.state == SyncRun.State.RUNNING and staged >= rows // 2:
            victim = short(received[0])
            break
        time.sleep(0.05)
    if victim is None or run.state != SyncRun.State.RUNNING:
        say(f"(c) could not catch the sync mid-file (run {run.state}, worker {victim}) -> WRONG")
        return False
    fleet.kill(victim)
    killed_at = time.monotonic()
    say(f"(c) {victim} killed (SIGKILL to its process group) with {cache.get(progress_key(run.pk))} "
        f"of {rows} rows staged")

    finals = {SyncRun.State.SUCCEEDED, SyncRun.State.COMPLETED_WITH_ERRORS, SyncRun.State.FAILED,
              SyncRun.State.INTERRUPTED}
    while time.monotonic() - killed_at < recover_seconds:
        run.refresh_from_db()
        if run.state in finals:
            break
        time.sleep(0.5)
    recovered_in = time.monotonic() - killed_at
    time.sleep(1.5)  # the survivor's task events
    run.refresh_from_db()
    sales = Transaction.objects.filter(source=connection.source).count()
    distinct = Transaction.objects.filter(source=connection.source).values("external_id").distinct().count()
    files = list(ImportedFile.objects.filter(connection=connection).values_list("rows_accepted", flat=True))
    runs = SyncRun.objects.filter(connection=connection).count()
    started_on = [short(h) for h in events.hosts_of("task-started", task_id)]
    survivor_ran = any(h != victim for h in started_on)
    ok = (run.state == SyncRun.State.SUCCEEDED and sales == distinct == rows and files == [rows]
          and runs == 1 and survivor_ran)
    say(f"(c) after {recovered_in:.0f} s: run {run.state} (attempts {run.attempts}), task started on "
        f"{started_on}, {sales} sales ({distinct} distinct) of {rows}, imported files {files}, "
        f"runs {runs} -> {'recovered' if ok else 'NOT recovered'}")
    if run.error:
        say(f"    run error: {run.error}")
    return ok


# --- (d) lookup throughput --------------------------------------------------------------------

def drive_lookups(ports: list[int], headers: dict, body_for, clients: int, seconds: float) -> int:
    """`clients` threads, client n on ports[n % len(ports)], calling lookup until the time is
    up; returns how many answered 200."""
    done = [0] * clients
    errors: list[str] = []
    stop = time.monotonic() + seconds

    def client(n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", ports[n % len(ports)], timeout=30)
        rng = random.Random(n)
        while time.monotonic() < stop:
            status, payload = post(conn, "/api/pos/v1/lookup", body_for(rng), headers)
            if status != 200:
                errors.append(f"lookup: {status} {payload[:300]!r}")
                return
            done[n] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise SystemExit(errors[0])
    return sum(done)


# --- main -------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20, help="each lookup phase of (d)")
    parser.add_argument("--personas", type=int, default=50_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--web-workers", type=int, default=2, help="gunicorn sync workers per web node")
    parser.add_argument("--concurrency", type=int, default=2, help="processes per Celery worker")
    parser.add_argument("--sync-rows", type=int, default=200, help="rows of each nightly report in (b)")
    parser.add_argument("--kill-rows", type=int, default=100_000, help="rows of the report synced in (c)")
    parser.add_argument("--recover-seconds", type=float, default=180)
    parser.add_argument("--keep", action="store_true", help="leave the database and the logs")
    args = parser.parse_args()

    for name in ("DATABASE_URL", "REDIS_URL"):
        if not os.environ.get(name):
            raise SystemExit(f"{name} is not set: run this under `python -m config.launcher exec --`.")
    signal.signal(signal.SIGTERM, raise_interrupt)
    server_url = os.environ["DATABASE_URL"]
    db_name = f"{urlsplit(server_url).path.lstrip('/')}_scaleout"
    database_recreate(server_url, db_name)
    tmp = Path(tempfile.mkdtemp(prefix="scale-out-"))
    (tmp / "reports").mkdir()
    from cryptography.fernet import Fernet

    os.environ.update({
        "DATABASE_URL": database_with_name(server_url, db_name), "DJANGO_SETTINGS_MODULE": "config.settings",
        "DEBUG": "0", "SECRET_KEY": uuid.uuid4().hex * 2,
        "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(),
        "ALLOWED_HOSTS": "127.0.0.1", "SECURE_SSL_REDIRECT": "0",  # plain http on the loopback
        "REPORTS_ROOT": str(tmp / "reports"), "PYTHONPATH": str(BASE_DIR),
        "SYNC_LEASE_SECONDS": LEASE_SECONDS, "CELERY_VISIBILITY_TIMEOUT": VISIBILITY_TIMEOUT,
    })
    os.environ.pop("FIELD_ENCRYPTION_KEYS", None)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from bench.pos_load import BASKET_ITEMS, seed
    from config.celery import app

    fleet = Fleet(tmp, dict(os.environ))
    events = TaskEvents(app)
    results = {}
    try:
        say(f"database {db_name}; logs in {tmp}")
        call_command("migrate", verbosity=0)
        app.control.purge()
        with app.connection_for_write() as conn:  # deliveries a killed worker of an earlier run left
            conn.default_channel.client.delete("unacked", "unacked_index")
        company, store, raw = seed(args.personas)
        headers = {"Authorization": f"Bearer {raw}", "X-Account-UID": str(company.account_uid)}

        ports = [free_port() for _ in range(WEB_NODES)]
        for n, port in enumerate(ports, start=1):
            web_node_start(fleet, f"web{n}", port, args.web_workers)
        events.start()
        for n in range(1, WORKERS + 1):
            fleet.start(f"scale{n}", [sys.executable, "-m", "celery", "-A", "config", "worker",
                                      "-n", f"scale{n}@%h", "--concurrency", str(args.concurrency),
                                      "-l", "info", "-E"])
        fleet.start("beat", [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", "info",
                             "--schedule", str(tmp / "celerybeat-schedule")])
        deadline = time.monotonic() + 60
        while {short(h) for h in events.hosts_seen()} != {f"scale{n}" for n in range(1, WORKERS + 1)}:
            if time.monotonic() > deadline:
                raise SystemExit("the workers did not come online:\n" + fleet.log("scale1")[-2000:])
            time.sleep(0.2)
        say(f"{WEB_NODES} web nodes ({args.web_workers} workers each) on ports {ports}, {WORKERS} Celery "
            f"workers (concurrency {args.concurrency}), beat; {os.cpu_count()} CPU cores on this machine")

        results["contention_ok"] = contention(ports, headers, company, store)
        results["syncs_once"] = nightly_syncs(company, store, events, args.sync_rows)

        def lookup_body(rng):
            return {"phone": f"+1303{2000000 + rng.randint(1, args.personas):07d}",
                    "basket": {"store_id": store.pk, "tax_total": "20.00", "items": BASKET_ITEMS}}

        drive_lookups(ports, headers, lookup_body, args.clients, 2)  # warm both nodes up
        rps1 = drive_lookups(ports[:1], headers, lookup_body, args.clients, args.seconds) / args.seconds
        rps2 = drive_lookups(ports, headers, lookup_body, args.clients, args.seconds) / args.seconds
        say(f"(d) {args.clients} clients, {args.seconds:g} s each: one node {rps1:.0f} lookups/s, "
            f"two nodes {rps2:.0f} lookups/s")

        results["kill_recovered"] = killed_mid_sync(company, store, events, fleet, args.kill_rows,
                                                    args.recover_seconds)
    except KeyboardInterrupt:
        say("interrupted")
        raise SystemExit(130) from None
    finally:
        events.stop()
        fleet.stop_all()
        connections.close_all()
        if not args.keep:
            database_recreate(server_url, db_name, drop_only=True)
            shutil.rmtree(tmp, ignore_errors=True)

    say(f"web_nodes={WEB_NODES} workers={WORKERS} contention_ok={results['contention_ok']} "
        f"syncs_once={results['syncs_once']} kill_recovered={results['kill_recovered']} "
        f"lookup_rps_1={rps1:.0f} lookup_rps_2={rps2:.0f} scale={rps2 / rps1:.2f}")


if __name__ == "__main__":
    main()
