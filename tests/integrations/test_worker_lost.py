"""A Celery worker killed in the middle of a sync: the broker hands the task out again and
the run is resumed, every row of the file imported exactly once. The database dropping
its connections under a sync: the run fails (or is queued again), nothing of the file
stays. Real worker and command processes, on the test Redis, each test on a queue of its own."""

import datetime as dt
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from types import SimpleNamespace

import psycopg
import pytest
from django.conf import settings
from django.core.cache import cache
from django.db import connection as db_connection
from django.db.models import Count, Sum

from config.celery import app as celery_app
from integrations.models import ImportedFile, SyncRun
from integrations.services.sync import progress_key, sync_run_create
from integrations.tasks import connection_sync, sync_runs_interrupt_lapsed_all
from loyalty.models import LineItem, Persona, PointsEntry, Transaction
from tests.childdb import database_url

from .test_sync_lease import HEADER, ROOT

ROWS = 40_000
FINISHED = ("succeeded", "completed_with_errors", "failed")

# The worker, with everything it sends (a sync's follow-up refreshes too) on the test's own
# queue, and its own keys for unacknowledged messages: a worker of a parallel test restores
# only its own.
WORKER = """
import sys
from config.celery import app
queue = sys.argv[1]
app.conf.task_default_queue = queue
app.conf.broker_transport_options = {
    **app.conf.broker_transport_options, "unacked_key": f"{queue}:unacked",
    "unacked_index_key": f"{queue}:unacked_index", "unacked_mutex_key": f"{queue}:unacked_mutex",
    # Look for messages past the visibility timeout every second, not every 100 s.
    "unacked_restore_interval": 1, "unacked_restore_throttle": 1}
app.worker_main(["worker", "--pool=prefork", "--concurrency=1", "-Q", queue,
                 "--loglevel=WARNING", "--without-gossip", "--without-mingle", "--without-heartbeat"])
"""


@pytest.fixture
def big_report(store, reports_dir):
    day = f"{dt.date.today() - dt.timedelta(days=3):%m/%d/%Y} 10:15 AM"
    with (reports_dir / "day1.csv").open("w") as out:
        out.write(HEADER + "\n")
        for i in range(ROWS):
            out.write(f"R{i},C{i % 5000},{day},{store.name},Ana,Gummies,10.00,0,Cash\n")
    return reports_dir / "day1.csv"


@pytest.fixture
def worker_queue(tmp_path):
    """Start workers on a queue of this test's own; each is killed at the end if still up."""
    queue = f"test-worker-lost-{uuid.uuid4().hex[:12]}"
    started = []

    def start() -> subprocess.Popen:
        env = os.environ | {
            "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
            "REPORTS_ROOT": str(settings.REPORTS_ROOT),
            "SYNC_LEASE_SECONDS": "3", "CELERY_VISIBILITY_TIMEOUT": "5",
        }
        log = (tmp_path / f"worker{len(started)}.log").open("wb")
        worker = subprocess.Popen([sys.executable, "-c", WORKER, queue], cwd=ROOT, env=env,
                                  stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        started.append(worker)
        return worker

    start.queue = queue
    start.logs = lambda: "\n".join(p.read_text() for p in sorted(tmp_path.glob("worker*.log")))
    yield start
    for worker in started:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGKILL)
            worker.wait(10)
    # A killed worker's database session lives on until PostgreSQL notices, mid-statement and
    # holding its locks: end them, or emptying the test database after the test waits on them
    # (or deadlocks with them). Only this test's children use this test database.
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with celery_app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete(queue, f"{queue}:unacked", f"{queue}:unacked_index", f"{queue}:unacked_mutex")


def wait_until_reading(run: SyncRun, worker: subprocess.Popen, logs) -> None:
    """Until the worker is importing the file: the run page shows rows read."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert worker.poll() is None, logs()
        run.refresh_from_db()
        rows_read = cache.get(progress_key(run.pk)) or 0
        if run.state == "running" and run.current_file == "day1.csv" and rows_read > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the worker never started reading: {run.state}\n{logs()}")


def wait_until_finished(run: SyncRun, logs, *, seconds: float = 90) -> SyncRun:
    # Generous: on a busy two-core machine the resumed import shares it with the other tests.
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        run.refresh_from_db()
        if run.state in FINISHED:
            return run
        time.sleep(0.2)
    raise AssertionError(f"run still {run.state} ({run.error})\n{logs()}")


def assert_imported_once(folder_connection) -> None:
    """Every row of the file in, once: one sale and one line per row, one earn per sale at most."""
    assert Transaction.objects.filter(source=folder_connection.source).count() == ROWS
    assert LineItem.objects.filter(transaction__source=folder_connection.source).count() == ROWS
    per_sale = PointsEntry.objects.filter(transaction__isnull=False).values("transaction_id", "kind") \
        .annotate(n=Count("id")).filter(n__gt=1)
    assert not per_sale.exists()
    ledger = PointsEntry.objects.aggregate(total=Sum("delta"))["total"] or 0
    assert (Persona.objects.aggregate(total=Sum("points_balance"))["total"] or 0) == ledger
    record = ImportedFile.objects.get()
    assert (record.key, record.rows_accepted) == ("day1.csv", ROWS)


@pytest.mark.django_db(transaction=True)
def test_a_killed_worker_s_sync_is_delivered_again_and_resumed_once(folder_connection, big_report,
                                                                     worker_queue):
    # given a sync of a big file taken by a real worker, which is killed whole mid-file
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)
    connection_sync.apply_async((run.pk,), queue=worker_queue.queue)
    first = worker_queue()
    wait_until_reading(run, first, worker_queue.logs)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(10)
    assert not Transaction.objects.exists()  # the file's transaction went with it

    # and the beat sweep marks the run interrupted once its lease lapses
    deadline = time.monotonic() + 10
    while SyncRun.objects.get(pk=run.pk).state != "interrupted" and time.monotonic() < deadline:
        time.sleep(0.2)
        sync_runs_interrupt_lapsed_all()

    # when a fresh worker starts, after the broker's visibility timeout
    worker_queue()
    run = wait_until_finished(run, worker_queue.logs)

    # then the task came back, resumed the run, and the whole file is in, once
    assert run.state == "succeeded", run.error
    assert run.error.startswith("Resumed after the worker was lost: the worker stopped at ")
    assert run.error.endswith(" while reading day1.csv; nothing of that file was kept.")
    assert (run.attempts, run.files_imported, run.rows_accepted) == (2, 1, ROWS)
    assert SyncRun.objects.count() == 1
    assert_imported_once(folder_connection)


@pytest.mark.django_db(transaction=True)
def test_a_killed_pool_process_s_sync_is_taken_over_once_its_lease_lapses(folder_connection, big_report,
                                                                           worker_queue):
    # given a sync of a big file taken by a real worker
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)
    connection_sync.apply_async((run.pk,), queue=worker_queue.queue)
    worker = worker_queue()
    wait_until_reading(run, worker, worker_queue.logs)

    # when only the pool process running it is killed (the worker itself lives on)
    children = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGKILL)

    # then the worker puts the task back at once; it waits out the dead process's lease,
    # takes the run over and imports the whole file, once
    run = wait_until_finished(run, worker_queue.logs)
    assert run.state == "succeeded", run.error
    assert run.error.startswith("Resumed after the worker was lost: the worker stopped at ")
    assert (run.attempts, run.files_imported, run.rows_accepted) == (2, 1, ROWS)
    assert worker.poll() is None
    assert_imported_once(folder_connection)


def database_connections_cut() -> int:
    """What a database restart does to the server's clients: every other connection to the
    test database is ended (pg_terminate_backend). Returns how many."""
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                       "WHERE datname = current_database() AND pid <> pg_backend_pid()")
        return cursor.fetchone()[0]


def wait_until_importing(run_filter, process: subprocess.Popen, logs) -> SyncRun:
    """Until the file's transaction has taken in a good part of its rows: it is open from
    the file's first row to its merge's commit (waiting for the merge itself would race a
    fast one)."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, logs()
        run = run_filter.first()
        if run is not None and (cache.get(progress_key(run.pk)) or 0) >= ROWS // 4:
            return run
        time.sleep(0.02)
    raise AssertionError(f"never got to the file\n{logs()}")


@pytest.mark.django_db(transaction=True)
def test_database_lost_under_a_worker_s_sync_queues_a_retry_and_keeps_nothing(folder_connection, big_report,
                                                                               worker_queue):
    # given a sync taken by a real worker, merging a big file
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)
    connection_sync.apply_async((run.pk,), queue=worker_queue.queue)
    worker = worker_queue()
    wait_until_importing(SyncRun.objects.filter(pk=run.pk), worker, worker_queue.logs)

    # when the database drops every connection
    assert database_connections_cut() >= 1

    # then the worker records the failure on a new connection and queues a retry
    deadline = time.monotonic() + 30
    while SyncRun.objects.get(pk=run.pk).state == "running" and time.monotonic() < deadline:
        time.sleep(0.2)
    run.refresh_from_db()
    assert run.state == "queued", (run.state, run.error, worker_queue.logs())
    assert run.error == ("Failed: the database connection was lost while importing day1.csv; "
                         "nothing of it was kept. Retrying in 60 s (attempt 2).")
    assert not Transaction.objects.exists() and not ImportedFile.objects.exists()
    assert worker.poll() is None


@pytest.fixture
def own_database():
    """A PostgreSQL server of this test's own (pgserver's binaries), holding a copy of the
    test database, so that it can be restarted under an import without touching the
    server the other tests use."""
    import pgserver
    from pgserver._commands import pg_ctl

    bin_dir = Path(pgserver.__file__).parent / "pginstall" / "bin"
    data = Path(tempfile.mkdtemp(prefix="pg", dir="/tmp"))  # short: the socket lives in it
    server = pgserver.get_server(data, cleanup_mode="delete")
    try:
        url = f"postgresql://postgres@/loyalty?host={data}"
        subprocess.run([bin_dir / "createdb", "-h", str(data), "-U", "postgres", "loyalty"], check=True)
        dump = subprocess.run([bin_dir / "pg_dump", "--no-owner", "--no-privileges", "-d", database_url()],
                              check=True, capture_output=True).stdout
        # A server may mark columns with options of its own that another refuses: not schema.
        dump = b"\n".join(line for line in dump.splitlines() if b"SET (pg_attver=" not in line)
        subprocess.run([bin_dir / "psql", "-q", "-v", "ON_ERROR_STOP=1", "-d", url], input=dump,
                       check=True, capture_output=True)

        def restart() -> None:
            # Immediate: no clean shutdown, like a crash or a failover; pg_ctl reuses the start options.
            pg_ctl(["-w", "-m", "immediate", "restart"], pgdata=data, user=server.system_user, timeout=30)

        def query(sql: str):
            with psycopg.connect(url) as conn:
                return conn.execute(sql).fetchall()

        yield SimpleNamespace(url=url, restart=restart, query=query)
    finally:
        # Stopped here: pgserver knows only the server it started, not the restarted one.
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=data, user=server.system_user, timeout=30)
        server.cleanup()  # removes the folder


@pytest.mark.django_db(transaction=True)
def test_database_restarted_mid_import_fails_the_run_keeps_nothing_and_the_next_run_imports_once(
        company, folder_connection, big_report, own_database, tmp_path):
    # given import_report importing a big file into a database of its own
    def import_report(log: Path) -> subprocess.Popen:
        env = os.environ | {"DATABASE_URL": own_database.url, "SYNC_LEASE_SECONDS": "3"}
        with log.open("wb") as out:
            return subprocess.Popen([sys.executable, "manage.py", "import_report", "--company", company.slug,
                                     "--connection", folder_connection.name, str(big_report)],
                                    cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)

    log = tmp_path / "import.log"
    command = import_report(log)
    try:
        deadline, running = time.monotonic() + 60, []
        while time.monotonic() < deadline:
            assert command.poll() is None, log.read_text()
            running = running or own_database.query(
                "SELECT id FROM integrations_syncrun WHERE state = 'running'")
            if running and (cache.get(progress_key(running[0][0])) or 0) >= ROWS // 4:
                break
            time.sleep(0.05)
        assert running, log.read_text()

        # when the server restarts in the middle of the file
        own_database.restart()
        command.wait(90)
    finally:
        if command.poll() is None:
            command.kill()
            command.wait()

    # then the run failed saying why, nothing of the file is in, and the connection is free
    assert command.returncode != 0
    [(run_id, state, error, lease)] = own_database.query(
        "SELECT id, state, error, lease_expires_at FROM integrations_syncrun")
    assert state == "failed", log.read_text()
    assert error == ("Failed: the database connection was lost while importing day1.csv; "
                     "nothing of it was kept.")
    assert lease is None
    assert own_database.query("SELECT count(*) FROM loyalty_transaction") == [(0,)]
    assert own_database.query("SELECT count(*) FROM integrations_importedfile") == [(0,)]

    # and running it again imports the whole file, once
    again = import_report(tmp_path / "again.log")
    assert again.wait(90) == 0, (tmp_path / "again.log").read_text()
    runs = own_database.query(f"SELECT state, rows_accepted FROM integrations_syncrun WHERE id <> {run_id}")
    assert runs == [("succeeded", ROWS)]
    assert own_database.query("SELECT count(*) FROM loyalty_transaction") == [(ROWS,)]
    assert own_database.query("SELECT count(*) FROM loyalty_lineitem") == [(ROWS,)]
    files = own_database.query("SELECT key, rows_accepted FROM integrations_importedfile")
    assert files == [("day1.csv", ROWS)]
