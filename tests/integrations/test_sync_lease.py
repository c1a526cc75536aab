"""A running sync holds a lease its worker renews; a run whose worker died (killed, lost)
is marked interrupted and no longer blocks the next sync."""

import datetime as dt
import io
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import pytest
import time_machine
from django.conf import settings
from django.core.cache import cache
from django.core.management import call_command
from django.db import connections as db_connections
from django.urls import reverse
from django.utils import timezone

from integrations.models import ImportedFile, SyncRun
from integrations.services.connections import connection_create
from integrations.services.sync import (
    RESUME_ATTEMPTS_MAX,
    SyncRunHeld,
    progress_key,
    sync_run_create,
    sync_run_execute,
    sync_runs_interrupt_lapsed,
)
from integrations.tasks import connection_sync_scheduled, sync_runs_interrupt_lapsed_all
from loyalty.models import Transaction
from stores.models import AuditEvent
from tests.childdb import database_url

ROOT = Path(__file__).resolve().parents[2]
HEADER = "ReceiptId,customerId,TransactionDate,Location,FirstName,ProductName,LineTotal,LineTax,PaymentMethod"
ROWS = 200_000


def started_and_left(run: SyncRun, *, file: str, lease_left: dt.timedelta) -> SyncRun:
    """A run a worker took and then stopped renewing: what a killed worker leaves behind
    (the subprocess test below does it for real)."""
    now = timezone.now()
    SyncRun.objects.filter(pk=run.pk).update(state=SyncRun.State.RUNNING, started_at=now, attempts=1,
                                             current_file=file, lease_expires_at=now + lease_left)
    return SyncRun.objects.get(pk=run.pk)




@pytest.mark.django_db(transaction=True)
def test_import_report_after_a_killed_import_marks_it_interrupted_and_imports_the_whole_file(
        company, store, folder_connection, reports_dir):
    # given a big report in the connection's folder, imported by a real command process
    day = f"{dt.date.today() - dt.timedelta(days=3):%m/%d/%Y} 10:15 AM"
    report = reports_dir / "day1.csv"
    with report.open("w") as out:
        out.write(HEADER + "\n")
        for i in range(ROWS):
            out.write(f"R{i},C{i % 5000},{day},{store.name},Ana,Gummies,10.00,0,Cash\n")
    command = [sys.executable, "manage.py", "import_report", "--company", company.slug,
               "--connection", folder_connection.name, str(report)]
    env = os.environ | {"DATABASE_URL": database_url(), "SYNC_LEASE_SECONDS": "4"}
    worker = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        # when it has staged every row (the run page shows them) and is merging, it is killed
        deadline = time.monotonic() + 120
        run = None
        while time.monotonic() < deadline and worker.poll() is None:
            run = SyncRun.objects.filter(connection=folder_connection).first()
            if run is not None and cache.get(progress_key(run.pk)) == ROWS:
                break
            time.sleep(0.05)
        assert worker.poll() is None, worker.stderr.read().decode()
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stderr.close()
    run.refresh_from_db()
    assert (run.state, run.current_file) == ("running", "day1.csv")  # killed mid-file
    assert not Transaction.objects.exists() and not ImportedFile.objects.exists()
    while timezone.now() <= SyncRun.objects.get(pk=run.pk).lease_expires_at:  # nobody renews it
        time.sleep(0.2)

    # and the command is run again, with no step in between
    output = io.StringIO()
    call_command("import_report", "--company", company.slug, "--connection", folder_connection.name,
                 str(report), stdout=output)

    # then the killed run is interrupted, saying where, and the whole file is in, once
    run.refresh_from_db()
    assert run.state == "interrupted"
    assert "while reading day1.csv; nothing of that file was kept." in run.error
    assert f"Earlier run #{run.pk}: Interrupted: the worker stopped at" in output.getvalue()
    again = SyncRun.objects.exclude(pk=run.pk).get()
    assert (again.state, again.rows_accepted, again.files_imported) == ("succeeded", ROWS, 1)
    assert Transaction.objects.filter(source=folder_connection.source).count() == ROWS
    assert ImportedFile.objects.get().rows_accepted == ROWS


def test_beat_sweep_interrupts_a_lapsed_run_and_leaves_a_live_one(company, store, folder_connection):
    # given a run whose worker stopped at 14:02 Denver time, and a live one of another connection
    other = connection_create(company=company, name="Backfill", provider="folder",
                              settings={"path": "daily"}, credentials={})
    stopped = dt.datetime(2026, 7, 1, 14, 2, tzinfo=dt.timezone(dt.timedelta(hours=-6)))
    with time_machine.travel(stopped, tick=False):
        dead = started_and_left(sync_run_create(connection=folder_connection, trigger="manual"),
                                file="day1.csv", lease_left=dt.timedelta(seconds=90))
    with time_machine.travel(stopped + dt.timedelta(minutes=3), tick=False):
        live = started_and_left(sync_run_create(connection=other, trigger="manual"),
                                file="day2.csv", lease_left=dt.timedelta(seconds=90))

        # when the beat sweep runs
        sync_runs_interrupt_lapsed_all()

    # then the dead run says what happened; the live one runs on
    dead.refresh_from_db()
    live.refresh_from_db()
    assert dead.state == "interrupted"
    assert dead.error == ("Interrupted: the worker stopped at 14:02 while reading day1.csv; "
                          "nothing of that file was kept.")
    assert dead.finished_at == stopped and dead.lease_expires_at is None
    assert (live.state, live.error) == ("running", "")
    assert "sync_runs_interrupt_lapsed_all" in settings.CELERY_BEAT_SCHEDULE["interrupt-lapsed-syncs"]["task"]


def test_sync_now_after_a_lapsed_lease_starts_a_new_run(admin_client, folder_connection,
                                                         django_capture_on_commit_callbacks):
    # given a run whose worker died two minutes ago
    dead = started_and_left(sync_run_create(connection=folder_connection, trigger="schedule"),
                            file="day1.csv", lease_left=-dt.timedelta(minutes=2))

    # when staff click Sync now
    with mock.patch("integrations.views.connection_sync.delay") as delay, \
            django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("connection_sync", args=[folder_connection.pk]))

    # then the dead run is interrupted and a new one is queued
    dead.refresh_from_db()
    new = SyncRun.objects.exclude(pk=dead.pk).get()
    assert (dead.state, new.state) == ("interrupted", "queued")
    assert response.url == reverse("sync_run_detail", args=[new.pk])
    delay.assert_called_once_with(new.pk)


def test_sync_now_while_a_run_holds_a_fresh_lease_is_refused(admin_client, folder_connection):
    # given a live run
    live = started_and_left(sync_run_create(connection=folder_connection, trigger="schedule"),
                            file="day1.csv", lease_left=dt.timedelta(seconds=60))

    # when staff click Sync now
    response = admin_client.post(reverse("connection_sync", args=[folder_connection.pk]), follow=True)

    # then it is refused and the run goes on
    assert "already running" in response.content.decode()
    live.refresh_from_db()
    assert live.state == "running" and SyncRun.objects.count() == 1


def test_sync_run_again_on_an_interrupted_run_page(admin_client, admin_user, company, folder_connection,
                                                    django_capture_on_commit_callbacks):
    # given a run interrupted by the sweep
    dead = started_and_left(sync_run_create(connection=folder_connection, trigger="schedule"),
                            file="day1.csv", lease_left=-dt.timedelta(minutes=2))
    sync_runs_interrupt_lapsed_all()

    # when staff open its page and click Run again
    page = admin_client.get(reverse("sync_run_detail", args=[dead.pk])).content.decode()
    with mock.patch("integrations.views.connection_sync.delay") as delay, \
            django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("sync_run_again", args=[dead.pk]))

    # then the page said what happened and offered it; a new run is queued and on the trail
    assert "Interrupted" in page and "while reading day1.csv; nothing of that file was kept." in page
    assert 'data-testid="run-again"' in page
    new = SyncRun.objects.exclude(pk=dead.pk).get()
    assert (new.trigger, new.state) == ("manual", "queued")
    assert response.url == reverse("sync_run_detail", args=[new.pk])
    delay.assert_called_once_with(new.pk)
    event = AuditEvent.objects.get(company_id=company.pk, kind="connection.sync_requested")
    assert (event.actor_id, event.object_id) == (admin_user.pk, folder_connection.pk)
    assert event.extra["sync_run_id"] == new.pk


def test_sync_run_again_is_another_companys_404(admin_client, other_company):
    # given another company's interrupted run
    theirs = connection_create(company=other_company, name="Theirs", provider="folder",
                               settings={"path": "daily"}, credentials={})
    run = started_and_left(sync_run_create(connection=theirs, trigger="manual"),
                           file="x.csv", lease_left=-dt.timedelta(minutes=2))
    # when / then
    assert admin_client.post(reverse("sync_run_again", args=[run.pk])).status_code == 404
    assert SyncRun.objects.count() == 1


def test_connection_sync_scheduled_while_a_run_is_live_records_a_skipped_run(admin_client, folder_connection):
    # given a live run
    started_and_left(sync_run_create(connection=folder_connection, trigger="manual"),
                     file="day1.csv", lease_left=dt.timedelta(seconds=60))

    # when the nightly entry fires
    connection_sync_scheduled(folder_connection.pk)

    # then a skipped run says why, on the connection's page
    skipped = SyncRun.objects.get(state="skipped")
    assert skipped.trigger == "schedule"
    assert skipped.error == "Nightly sync skipped: A sync of Nightly reports is already running."
    page = admin_client.get(reverse("connection_detail", args=[folder_connection.pk])).content.decode()
    assert "Skipped" in page and "Nightly sync skipped: A sync of Nightly reports is already running." in page


@pytest.mark.django_db(transaction=True)
def test_sync_run_execute_renews_its_lease_through_a_long_file(
        company, store, folder_connection, write_report, run_sync, settings):
    # given a lease much shorter than the import of a big file, and a sweep running all along
    settings.SYNC_LEASE_SECONDS = 0.5  # the import takes a few seconds, even on a fast machine
    day = f"{dt.date.today() - dt.timedelta(days=3):%m/%d/%Y} 10:15 AM"
    write_report("big.csv", HEADER + "\n" + "".join(
        f"R{i},C{i % 500},{day},{store.name},Ana,Gummies,10.00,0,Cash\n" for i in range(30_000)))
    interrupted, done = [], threading.Event()

    def sweep():
        try:
            while not done.is_set():
                interrupted.extend(sync_runs_interrupt_lapsed())
                time.sleep(0.1)
        finally:
            db_connections.close_all()

    sweeper = threading.Thread(target=sweep)
    sweeper.start()
    try:
        # when the file is synced
        started = time.monotonic()
        run = run_sync(folder_connection)
    finally:
        done.set()
        sweeper.join()

    # then the worker kept its lease the whole time: nothing was interrupted
    assert time.monotonic() - started > 2 * settings.SYNC_LEASE_SECONDS  # it outlived its lease
    assert interrupted == []
    assert (run.state, run.rows_accepted) == ("succeeded", 30_000)


# --- a sync task delivered again (its worker was killed, or the broker handed it out twice) --

def one_sale(store) -> str:
    day = f"{dt.date.today() - dt.timedelta(days=3):%m/%d/%Y} 10:15 AM"
    return f"{HEADER}\nR1,C1,{day},{store.name},Ana,Gummies,10.00,0,Cash\n"


def test_a_sync_delivered_again_leaves_a_run_with_a_live_lease_alone(folder_connection, store, write_report):
    # given a run another worker is on
    write_report("day1.csv", one_sale(store))
    live = started_and_left(sync_run_create(connection=folder_connection, trigger="manual"),
                            file="day1.csv", lease_left=dt.timedelta(seconds=60))

    # when its task is delivered again
    with pytest.raises(SyncRunHeld) as held:
        sync_run_execute(run_id=live.pk)

    # then the run is untouched, and the task knows when to look again
    assert SyncRun.objects.get(pk=live.pk).attempts == 1
    assert SyncRun.objects.get(pk=live.pk).current_file == "day1.csv"
    assert 55 < held.value.lapses_in <= 60


def test_a_sync_delivered_again_resumes_its_interrupted_run_unless_a_later_run_replaced_it(
        folder_connection, store, write_report):
    # given two runs interrupted by the sweep, the first replaced by the second ("Run again")
    write_report("day1.csv", one_sale(store))
    first = started_and_left(sync_run_create(connection=folder_connection, trigger="schedule"),
                             file="day1.csv", lease_left=-dt.timedelta(minutes=2))
    sync_runs_interrupt_lapsed_all()
    second = started_and_left(sync_run_create(connection=folder_connection, trigger="manual"),
                              file="day1.csv", lease_left=-dt.timedelta(minutes=2))
    sync_runs_interrupt_lapsed_all()

    # when the tasks of both are delivered again
    sync_run_execute(run_id=first.pk)
    sync_run_execute(run_id=second.pk)

    # then the replaced one stays as it was; the other is resumed, and says so
    first.refresh_from_db()
    second.refresh_from_db()
    assert (first.state, first.attempts) == ("interrupted", 1)
    assert (second.state, second.attempts, second.files_seen) == ("succeeded", 2, 1)
    assert second.error.startswith("Resumed after the worker was lost: the worker stopped at ")
    assert second.error.endswith(" while reading day1.csv; nothing of that file was kept.")


def test_a_sync_delivered_again_after_its_run_finished_does_nothing(folder_connection, store, run_sync,
                                                                    write_report):
    # given a finished run
    write_report("day1.csv", one_sale(store))
    run = run_sync(folder_connection)
    assert (run.state, run.attempts) == ("succeeded", 1)

    # when its task is delivered again (the worker died before acknowledging it)
    sync_run_execute(run_id=run.pk)

    # then nothing changed
    again = SyncRun.objects.get(pk=run.pk)
    assert (again.state, again.attempts, again.finished_at) == ("succeeded", 1, run.finished_at)


def test_a_run_its_workers_keep_dying_on_is_not_resumed_for_ever(folder_connection, store, write_report):
    # given a run interrupted after as many attempts as a run is resumed
    write_report("day1.csv", one_sale(store))
    run = started_and_left(sync_run_create(connection=folder_connection, trigger="schedule"),
                           file="day1.csv", lease_left=-dt.timedelta(minutes=2))
    SyncRun.objects.filter(pk=run.pk).update(attempts=RESUME_ATTEMPTS_MAX)
    sync_runs_interrupt_lapsed_all()

    # when its task is delivered once more
    sync_run_execute(run_id=run.pk)

    # then it stays interrupted, for staff to Run again
    run.refresh_from_db()
    assert (run.state, run.attempts) == ("interrupted", RESUME_ATTEMPTS_MAX)
    assert run.error.startswith("Interrupted: the worker stopped at ")
