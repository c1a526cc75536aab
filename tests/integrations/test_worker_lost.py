"""A Celery worker killed in the middle of a sync: the broker hands the task out again and
the run is resumed, every row of the file imported exactly once. Real worker processes on
the test Redis, each test on a queue of its own."""

import datetime as dt
import os
import signal
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.core.cache import cache
from django.db.models import Count, Sum

from config.celery import app as celery_app
from integrations.models import ImportedFile, SyncRun
from integrations.services.sync import progress_key, sync_run_create
from integrations.tasks import connection_sync, sync_runs_interrupt_lapsed_all
from loyalty.models import LineItem, Persona, PointsEntry, Transaction

from .test_sync_lease import HEADER, ROOT, database_url

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
    with celery_app.connection_for_write() as conn:
        client = conn.default_channel.client
        client.delete(queue, f"{queue}:unacked", f"{queue}:unacked_index", f"{queue}:unacked_mutex")


def wait_until_reading(run: SyncRun, worker: subprocess.Popen, logs) -> None:
    """Until the worker is importing the file: the run page shows rows read."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert worker.poll() is None, logs()
        run.refresh_from_db()
        if run.state == "running" and run.current_file == "day1.csv" and (cache.get(progress_key(run.pk)) or 0) > 0:
            return
        time.sleep(0.05)
    raise AssertionError(f"the worker never started reading: {run.state}\n{logs()}")


def wait_until_finished(run: SyncRun, logs, *, seconds: float = 40) -> SyncRun:
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
