"""Sync runs end to end: S3 against moto's server, OneDrive against the fake Microsoft Graph,
the Folder provider on a temp directory. What a run counts, what a deleted file does to its
data and points, how a run fails, who may start one, and what another company can reach."""

import datetime as dt
import hashlib
import io
import json
import socket
from decimal import Decimal

import pytest
from django.core.management import CommandError, call_command
from django.db import connection as db_connection
from django.http import Http404

from integrations import selectors
from integrations.models import Connection, ImportedFile, SyncRun
from integrations.providers.folder import FolderProvider
from integrations.services.connections import connection_create, connection_freeze, connection_update
from integrations.services.sync import (
    SyncFailed,
    imported_file_purge,
    sync_run_create,
    sync_run_execute,
)
from integrations.signals import sync_completed
from integrations.tasks import MAX_ATTEMPTS, connection_sync, connection_sync_scheduled
from loyalty.models import LineItem, Payment, Persona, PersonaIdentity, PointsEntry, Transaction
from loyalty.services import points_adjust
from stores.errors import DomainError
from tests.integrations.streams import BreaksOff

from . import graph_fake
from . import s3_server as s3
from .graph_fake import onedrive_settings
from .s3_server import FAKE_KEY_ID, FAKE_SECRET

# pytest finds fixtures by name in the test module (an assignment keeps ruff's F811 quiet).
s3_server = s3.s3_server
s3_bucket = s3.s3_bucket
graph_server = graph_fake.graph_server

HEADER = "ReceiptId,customerId,TransactionDate,Location,FirstName,ProductName,LineTotal,LineTax,PaymentMethod"
ONEDRIVE_HEADER = "TransactionID,Patient Number,Transaction Date,Location,First Name,Product,Total,Tax"
ONEDRIVE_FOLDER = "POS Reports/Daily"


def us(days_ago: int = 3, clock: str = "10:15 AM") -> str:
    return f"{dt.date.today() - dt.timedelta(days=days_ago):%m/%d/%Y} {clock}"


def persona_of(connection, customer_id: str) -> Persona:
    return PersonaIdentity.objects.get(source=connection.source, external_id=customer_id).persona


def ledger(persona) -> list[tuple[str, int, int]]:
    return list(PointsEntry.objects.filter(persona=persona).order_by("id")
                .values_list("kind", "delta", "balance_after"))


def receipts(connection) -> set[str]:
    return set(Transaction.objects.filter(source=connection.source).values_list("external_id", flat=True))


def counts(run) -> dict:
    names = ("files_seen", "files_imported", "files_skipped", "files_rejected", "files_removed",
             "rows_accepted", "rows_rejected", "rows_too_old")
    return {name: getattr(run, name) for name in names}


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def completed():
    """Every sync_completed signal sent during the test, as (connection, run) pairs."""
    sent = []

    def receiver(sender, connection, run, **kwargs):
        sent.append((connection, run))

    sync_completed.connect(receiver, dispatch_uid="test-sync-completed")
    yield sent
    sync_completed.disconnect(dispatch_uid="test-sync-completed")


# --- S3 -------------------------------------------------------------------------------------------


@pytest.fixture
def s3_connection(company, store, s3_bucket):
    endpoint, bucket, client = s3_bucket
    connection = connection_create(
        company=company, name="S3 reports", provider="s3",
        settings={"bucket": bucket, "prefix": "daily/", "endpoint_url": endpoint, "region": "us-east-1"},
        credentials={"access_key_id": FAKE_KEY_ID, "secret_access_key": FAKE_SECRET})

    def put(key: str, text: str):
        client.put_object(Bucket=bucket, Key=key, Body=text.encode())

    def delete(key: str):
        client.delete_object(Bucket=bucket, Key=key)

    connection.put, connection.delete = put, delete
    return connection


def test_s3_sync_imports_and_a_deleted_object_takes_its_data_and_points_with_it(
        s3_connection, run_sync, store, admin_user, company):
    day1_text = (f"{HEADER}\n"
                 f"R1,C1,{us(4)},{store.name},Ana,Gummies,30.00,2.40,Cash\n"
                 f"R2,C2,{us(4)},{store.name},Bo,Vape,12.00,0.96,Card\n")
    s3_connection.put("daily/day1.csv", day1_text)
    s3_connection.put("daily/day2.csv", f"{HEADER}\nR3,C1,{us(3)},{store.name},Ana,Flower,8.00,0.64,Cash\n")
    s3_connection.put("weekly/summary.csv", f"{HEADER}\nR9,C9,{us(3)},{store.name},Zed,X,99.00,0,Cash\n")

    first = run_sync(s3_connection)

    assert first.state == "succeeded", first.error
    assert counts(first) == {"files_seen": 2, "files_imported": 2, "files_skipped": 0, "files_rejected": 0,
                             "files_removed": 0, "rows_accepted": 3, "rows_rejected": 0, "rows_too_old": 0}
    assert receipts(s3_connection) == {"R1", "R2", "R3"}
    ana, bo = persona_of(s3_connection, "C1"), persona_of(s3_connection, "C2")
    assert (ana.points_balance, bo.points_balance) == (38, 12)
    assert ana.sourced_from == s3_connection.source
    day1 = ImportedFile.objects.get(key="daily/day1.csv")
    assert day1.etag == hashlib.md5(day1_text.encode()).hexdigest()  # S3's own etag of a simple upload
    assert day1.content_hash == hashlib.sha256(day1_text.encode()).hexdigest()

    # Ana spends 30 of her 38 points; then the merchant deletes day1.csv from the bucket.
    points_adjust(company=company, persona_id=ana.pk, delta=-30, staff_user=admin_user, reason="Redeemed")
    s3_connection.delete("daily/day1.csv")

    second = run_sync(s3_connection)

    assert (second.state, second.files_seen, second.files_skipped, second.files_removed) == (
        "succeeded", 1, 1, 1)
    assert receipts(s3_connection) == {"R3"}
    assert not LineItem.objects.filter(transaction__external_id__in=["R1", "R2"]).exists()
    assert Payment.objects.count() == 1
    day1 = ImportedFile.objects.get(key="daily/day1.csv")
    assert (day1.state, day1.removed_at is not None, day1.purged_at is not None, day1.last_run_id) == (
        "purged", True, True, second.pk)
    ana.refresh_from_db()
    bo.refresh_from_db()
    # Ana had 8 left: the reversal of R1's 30 stops at zero instead of going below it.
    assert ledger(ana)[-1] == ("reverse", -8, 0)
    assert ana.points_balance == 0 and ana.lifetime_points >= 0
    assert ledger(bo) == [("earn", 12, 12), ("reverse", -12, 0)]
    assert bo.points_balance == 0
    reversal = PointsEntry.objects.filter(persona=bo, kind="reverse").get()
    assert reversal.reason == "daily/day1.csv was deleted from the source"
    assert not PointsEntry.objects.filter(balance_after__lt=0).exists()
    # The customers stay; only the sales (and what they earned) go.
    assert Persona.objects.count() == 2

    third = run_sync(s3_connection)
    assert (third.files_removed, third.files_skipped) == (0, 1)


def test_s3_unchanged_object_is_skipped_and_a_re_uploaded_changed_one_replaces_its_data(
        s3_connection, run_sync, store):
    s3_connection.put("daily/day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,Gummies,10.00,0,Cash\n")
    run_sync(s3_connection)
    assert run_sync(s3_connection).files_skipped == 1

    s3_connection.put("daily/day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,Gummies,14.00,0,Cash\n")
    run = run_sync(s3_connection)

    assert (run.files_imported, run.files_skipped) == (1, 0)
    assert Transaction.objects.get().subtotal == Decimal("14.00")
    assert [(k, d) for k, d, _ in ledger(persona_of(s3_connection, "C1"))] == [("earn", 10), ("earn", 4)]


def test_s3_object_deleted_re_uploaded_broken_and_deleted_again_counts_each_removal(
        s3_connection, run_sync, store):
    s3_connection.put("daily/day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,Gummies,10.00,0,Cash\n")
    run_sync(s3_connection)
    s3_connection.delete("daily/day1.csv")
    assert run_sync(s3_connection).files_removed == 1

    s3_connection.put("daily/day1.csv", "ReceiptId,TransactionDate\nR1,01/01/2026\n")
    back = run_sync(s3_connection)
    f = ImportedFile.objects.get()
    assert (back.files_rejected, f.state, f.removed_at) == (1, "rejected", None)

    s3_connection.delete("daily/day1.csv")
    gone = run_sync(s3_connection)
    f.refresh_from_db()
    assert (gone.files_removed, f.state, f.removed_at is not None) == (1, "purged", True)


def test_unreachable_s3_endpoint_fails_the_run_as_retryable(company, store, completed, outbound_allow):
    endpoint_url = closed_port_url()
    outbound_allow(endpoint_url)
    connection = connection_create(
        company=company, name="Down", provider="s3",
        settings={"bucket": "reports", "endpoint_url": endpoint_url, "region": "us-east-1"},
        credentials={"access_key_id": FAKE_KEY_ID, "secret_access_key": FAKE_SECRET})
    run = sync_run_create(connection=connection, trigger=SyncRun.Trigger.MANUAL)

    with pytest.raises(SyncFailed) as caught:
        sync_run_execute(run_id=run.pk)

    assert caught.value.retryable is True
    assert "Cannot connect to http://127.0.0.1:" in caught.value.message
    run.refresh_from_db()
    assert (run.state, run.error, run.finished_at is not None) == ("failed", caught.value.message, True)
    connection.refresh_from_db()
    assert connection.last_synced_at is None
    assert completed == []


# --- OneDrive -------------------------------------------------------------------------------------


@pytest.fixture
def onedrive_connection(company, store, graph_server):
    settings, credentials = onedrive_settings(graph_server, ONEDRIVE_FOLDER)
    graph_server.make_folder(ONEDRIVE_FOLDER)
    return connection_create(company=company, name="OneDrive reports", provider="onedrive",
                             settings=settings, credentials=credentials)


def test_onedrive_deleted_file_keeps_its_data_until_support_purges_it(
        onedrive_connection, graph_server, run_sync, store):
    graph_server.put_file(ONEDRIVE_FOLDER, "day1.csv", (
        f"{ONEDRIVE_HEADER}\n"
        f"T1,P-100,{us(4)},{store.name},Ana,Gummies,$25.00,2.00\n"
        f"T2,P-200,{us(4)},{store.name},Bo,Vape,$40.00,3.20\n"
    ).encode())
    graph_server.put_file(ONEDRIVE_FOLDER, "day2.csv",
                          f"{ONEDRIVE_HEADER}\nT3,P-100,{us(3)},{store.name},Ana,Flower,$5.00,0\n".encode())

    first = run_sync(onedrive_connection)

    assert (first.state, first.files_imported, first.rows_accepted) == ("succeeded", 2, 3), first.error
    ana = persona_of(onedrive_connection, "P-100")
    assert ana.points_balance == 30
    assert receipts(onedrive_connection) == {"T1", "T2", "T3"}

    graph_server.delete_file(ONEDRIVE_FOLDER, "day1.csv")
    second = run_sync(onedrive_connection)

    assert (second.files_removed, second.files_skipped) == (1, 1)
    day1 = ImportedFile.objects.get(key=f"{ONEDRIVE_FOLDER}/day1.csv")
    assert (day1.state, day1.removed_at is not None, day1.purged_at) == ("removed", True, None)
    assert receipts(onedrive_connection) == {"T1", "T2", "T3"}
    ana.refresh_from_db()
    assert ana.points_balance == 30
    assert not PointsEntry.objects.filter(kind="reverse").exists()
    assert run_sync(onedrive_connection).files_removed == 0  # counted once

    removed = imported_file_purge(imported_file=day1)

    assert removed == 2
    assert receipts(onedrive_connection) == {"T3"}
    day1.refresh_from_db()
    assert (day1.state, day1.purged_at is not None) == ("purged", True)
    ana.refresh_from_db()
    bo = persona_of(onedrive_connection, "P-200")
    assert ana.points_balance == 5 and bo.points_balance == 0
    assert [(k, d) for k, d, _ in ledger(bo)] == [("earn", 40), ("reverse", -40)]
    assert PointsEntry.objects.get(persona=ana, kind="reverse").reason == \
        f"Data of {ONEDRIVE_FOLDER}/day1.csv removed on request"
    with pytest.raises(DomainError) as again:
        imported_file_purge(imported_file=day1)
    assert again.value.code == "already_purged"


def test_onedrive_file_needs_transaction_id_and_patient_number(onedrive_connection, graph_server, run_sync,
                                                               store):
    graph_server.put_file(ONEDRIVE_FOLDER, "export.csv",
                          f"Ticket,Client,Date,Location,Total\nT1,Ana,{us()},{store.name},5.00\n".encode())

    run = run_sync(onedrive_connection)

    f = ImportedFile.objects.get()
    assert (run.files_rejected, f.state) == (1, "rejected")
    assert f.error.startswith(
        "POS Reports/Daily/export.csv is missing the required columns 'TransactionID', 'Patient Number'. "
        "Headers found: 'Ticket', 'Client', 'Date', 'Location', 'Total'.")
    assert Transaction.objects.count() == 0


# --- what a run counts and says -------------------------------------------------------------------


def test_run_counts_every_kind_of_file_and_row(folder_connection, reports_dir, write_report, run_sync, store,
                                               completed):
    write_report("c-unchanged.csv", f"{HEADER}\nR10,C10,{us()},{store.name},Cy,G,1.00,0,Cash\n")
    write_report("d-deleted.csv", f"{HEADER}\nR20,C20,{us()},{store.name},Di,G,1.00,0,Cash\n")
    first = run_sync(folder_connection)
    (reports_dir / "d-deleted.csv").unlink()
    write_report("a-good.csv", (
        f"{HEADER}\n"
        f"R1,C1,{us()},{store.name},Ana,G,1.00,0,Cash\n"
        f"R2,C2,{us()},{store.name},Bo,G,2.00,0,Cash\n"
        f"R3,C3,{us()},{store.name},Cy,G,-3.00,0,Cash\n"
        f"R4,C4,{us(400)},{store.name},Di,G,4.00,0,Cash\n"
    ))
    write_report("b-no-customer-column.csv", f"ReceiptId,TransactionDate,LineTotal\nR5,{us()},1.00\n")
    write_report("e-empty.csv", b"")
    write_report("notes.txt", "not a report")

    run = run_sync(folder_connection)

    assert counts(run) == {"files_seen": 4, "files_imported": 1, "files_skipped": 1, "files_rejected": 2,
                           "files_removed": 1, "rows_accepted": 2, "rows_rejected": 1, "rows_too_old": 1}
    assert (run.state, run.error, run.attempts, run.current_file) == ("completed_with_errors", "", 1, "")
    assert run.started_at <= run.finished_at
    last_runs = dict(ImportedFile.objects.values_list("key", "last_run_id"))
    assert last_runs == {"a-good.csv": run.pk, "b-no-customer-column.csv": run.pk, "e-empty.csv": run.pk,
                         "d-deleted.csv": run.pk, "c-unchanged.csv": first.pk}
    folder_connection.refresh_from_db()
    assert folder_connection.last_synced_at == run.finished_at
    assert [r.pk for _, r in completed] == [first.pk, run.pk]
    assert all(c.pk == folder_connection.pk for c, _ in completed)
    assert completed[1][1].state == "completed_with_errors"


def test_missing_folder_fails_the_run_not_retryable_and_sends_no_signal(
        folder_connection, reports_dir, completed):
    reports_dir.rmdir()
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)

    with pytest.raises(SyncFailed) as caught:
        sync_run_execute(run_id=run.pk)

    assert caught.value.retryable is False
    assert caught.value.message == f"Folder {reports_dir} does not exist."
    run.refresh_from_db()
    assert (run.state, run.error) == ("failed", f"Folder {reports_dir} does not exist.")
    assert completed == []


def big_report(store, rows: int, prefix: str) -> str:
    return HEADER + "\n" + "".join(f"{prefix}{i},{prefix}C{i},{us()},{store.name},N{i},Gummies,10.00,0,Cash\n"
                                   for i in range(rows))


def test_a_file_that_breaks_off_mid_sync_fails_the_run_and_leaves_nothing_of_that_file(
        folder_connection, write_report, run_sync, store, monkeypatch, completed):
    write_report("day1.csv", f"{HEADER}\nA1,AC1,{us()},{store.name},Ana,G,10.00,0,Cash\n")
    write_report("day2.csv", big_report(store, 2000, "B"))
    real_open = FolderProvider.open

    def open_breaking(self, file):  # the network, not our code, lets us down half way through day2
        stream = real_open(self, file)
        return BreaksOff(stream, 80_000) if file.key == "day2.csv" else stream

    monkeypatch.setattr(FolderProvider, "open", open_breaking)
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)

    with pytest.raises(SyncFailed) as caught:
        sync_run_execute(run_id=run.pk)

    assert caught.value.retryable is True
    run.refresh_from_db()
    assert run.state == "failed"
    assert run.error == "Failed while importing day2.csv: [Errno 104] Connection reset by peer"
    assert (run.files_imported, run.rows_accepted) == (1, 1)
    assert receipts(folder_connection) == {"A1"}  # day1 landed whole before day2 started
    assert not PersonaIdentity.objects.filter(external_id__startswith="BC").exists()
    assert not ImportedFile.objects.filter(key="day2.csv").exists()
    assert PointsEntry.objects.count() == 1
    assert completed == []

    monkeypatch.undo()
    later = run_sync(folder_connection)

    assert (later.state, later.files_skipped, later.files_imported, later.rows_accepted) == (
        "succeeded", 1, 1, 2000)
    assert Transaction.objects.filter(source_file="day2.csv").count() == 2000
    assert PointsEntry.objects.count() == 2001
    assert len(completed) == 1


def test_a_database_error_mid_merge_fails_the_run_and_a_later_run_imports_the_file_whole(
        folder_connection, write_report, run_sync, store, completed):
    write_report("day1.csv", big_report(store, 20, "R"))
    with db_connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION test_lines_fail() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'canceling statement due to lock timeout'; END $$;
            CREATE TRIGGER test_lines_fail BEFORE INSERT ON loyalty_lineitem
            FOR EACH ROW EXECUTE FUNCTION test_lines_fail();
        """)
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)

    with pytest.raises(SyncFailed):
        sync_run_execute(run_id=run.pk)

    run.refresh_from_db()
    assert run.state == "failed"
    assert run.error.startswith("Failed while importing day1.csv: canceling statement due to lock timeout")
    assert (Persona.objects.count(), Transaction.objects.count(), PointsEntry.objects.count(),
            ImportedFile.objects.count()) == (0, 0, 0, 0)
    assert completed == []

    with db_connection.cursor() as cursor:
        cursor.execute("DROP TRIGGER test_lines_fail ON loyalty_lineitem; DROP FUNCTION test_lines_fail();")
    later = run_sync(folder_connection)

    assert (later.state, later.files_imported, later.rows_accepted) == ("succeeded", 1, 20)
    assert (Persona.objects.count(), Transaction.objects.count(), LineItem.objects.count(),
            PointsEntry.objects.count()) == (20, 20, 20, 20)


def test_the_task_retries_a_retryable_failure_and_gives_up_after_the_last_attempt(
        folder_connection, write_report, store):
    write_report("day1.csv", big_report(store, 3, "R"))
    with db_connection.cursor() as cursor:
        cursor.execute("""
            CREATE FUNCTION test_lines_fail() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN RAISE EXCEPTION 'server closed the connection unexpectedly'; END $$;
            CREATE TRIGGER test_lines_fail BEFORE INSERT ON loyalty_lineitem
            FOR EACH ROW EXECUTE FUNCTION test_lines_fail();
        """)
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.SCHEDULE)

    connection_sync.apply(args=[run.pk])

    run.refresh_from_db()
    assert (run.state, run.attempts) == ("failed", MAX_ATTEMPTS)
    assert "server closed the connection unexpectedly" in run.error
    assert Transaction.objects.count() == 0


def test_a_retried_run_finishes_the_job_and_counts_each_file_once(
        folder_connection, write_report, run_sync, store, completed):
    write_report("day0.csv", big_report(store, 2, "Z"))
    earlier = run_sync(folder_connection)
    write_report("day1.csv", big_report(store, 3, "A"))
    write_report("day2.csv", big_report(store, 4, "B").replace("Gummies", "BOOM"))
    with db_connection.cursor() as cursor:  # the database fails once, on day2's first line
        cursor.execute("""
            CREATE SEQUENCE test_failures;
            CREATE FUNCTION test_fail_once() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF nextval('test_failures') = 1 THEN
                    RAISE EXCEPTION 'terminating connection due to administrator command';
                END IF;
                RETURN NEW;
            END $$;
            CREATE TRIGGER test_fail_once BEFORE INSERT ON loyalty_lineitem
            FOR EACH ROW WHEN (NEW.product = 'BOOM') EXECUTE FUNCTION test_fail_once();
        """)
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.SCHEDULE)

    connection_sync.apply(args=[run.pk])

    run.refresh_from_db()
    assert (run.state, run.attempts, run.error) == ("succeeded", 2, "")
    assert counts(run) == {"files_seen": 3, "files_imported": 2, "files_skipped": 1, "files_rejected": 0,
                           "files_removed": 0, "rows_accepted": 7, "rows_rejected": 0, "rows_too_old": 0}
    assert Transaction.objects.count() == 9 and PointsEntry.objects.count() == 9
    assert [r.pk for _, r in completed] == [earlier.pk, run.pk]


def test_the_task_does_not_retry_what_will_not_pass_by_itself(folder_connection, reports_dir):
    reports_dir.rmdir()
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.SCHEDULE)

    connection_sync.apply(args=[run.pk])

    run.refresh_from_db()
    assert (run.state, run.attempts) == ("failed", 1)
    assert "does not exist" in run.error


# --- who may start a run --------------------------------------------------------------------------


def test_a_second_run_is_refused_while_one_is_queued_or_running(folder_connection, run_sync):
    queued = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)

    with pytest.raises(DomainError) as while_queued:
        sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.SCHEDULE)
    SyncRun.objects.filter(pk=queued.pk).update(state=SyncRun.State.RUNNING,
                                                started_at=dt.datetime.now(dt.UTC))
    with pytest.raises(DomainError) as while_running:
        sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)

    assert (while_queued.value.code, while_queued.value.extra) == ("sync_active", {"run_id": queued.pk})
    assert while_queued.value.message == "A sync of Nightly reports is already queued."
    assert while_running.value.message == "A sync of Nightly reports is already running."
    assert SyncRun.objects.count() == 1
    sync_run_execute(run_id=queued.pk)
    assert sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL).state == "queued"


def test_each_connection_gets_a_nightly_schedule_in_the_companys_time_zone(folder_connection, company):
    task = folder_connection.periodic_task

    assert (task.task, json.loads(task.args), task.enabled) == (
        "integrations.tasks.connection_sync_scheduled", [folder_connection.pk], True)
    assert (task.crontab.hour, task.crontab.minute, str(task.crontab.timezone)) == (
        "2", "0", company.timezone)

    connection_update(connection=folder_connection, name=folder_connection.name,
                      settings=folder_connection.settings, credentials={}, default_store=None,
                      enroll_new_customers=True, sync_time=dt.time(23, 45))
    task.refresh_from_db()
    assert (task.crontab.hour, task.crontab.minute) == ("23", "45")


def test_a_frozen_connection_is_not_synced(folder_connection, write_report, store):
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,G,1.00,0,Cash\n")
    connection_freeze(connection=folder_connection, frozen=True)

    with pytest.raises(DomainError) as caught:
        sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)
    connection_sync_scheduled(folder_connection.pk)

    assert caught.value.code == "frozen"
    assert caught.value.message == "Nightly reports is frozen: unfreeze it to sync."
    assert SyncRun.objects.count() == 0 and Transaction.objects.count() == 0
    folder_connection.periodic_task.refresh_from_db()
    assert folder_connection.periodic_task.enabled is False

    connection_freeze(connection=folder_connection, frozen=False)
    assert sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL).state == "queued"


# --- credentials and tenancy ----------------------------------------------------------------------


def test_credentials_are_stored_encrypted_and_only_their_last_4_are_shown(company, store):
    key_id, secret = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzQ9kEY"
    connection = connection_create(
        company=company, name="Bucket", provider="s3",
        settings={"bucket": "reports", "region": "us-east-1", "unexpected": "dropped"},
        credentials={"access_key_id": key_id, "secret_access_key": secret})

    with db_connection.cursor() as cursor:
        cursor.execute("SELECT credentials_encrypted, credentials_hint::text, settings::text "
                       "FROM integrations_connection WHERE id = %s", [connection.pk])
        stored, hint, settings = cursor.fetchone()
    assert secret not in stored and key_id not in stored and stored
    assert secret not in hint and secret not in settings
    assert Connection.objects.get(pk=connection.pk).credentials_hint == {
        "access_key_id": "…MPLE", "secret_access_key": "…9kEY"}
    assert connection.credentials_plain() == {"access_key_id": key_id, "secret_access_key": secret}
    assert "unexpected" not in Connection.objects.get(pk=connection.pk).settings

    # A blank secret field on the edit form keeps the stored secret.
    connection_update(connection=connection, name="Bucket", settings={"bucket": "reports"},
                      credentials={"access_key_id": "AKIANEWKEY0000000001", "secret_access_key": ""},
                      default_store=None, enroll_new_customers=True)
    assert Connection.objects.get(pk=connection.pk).credentials_plain() == {
        "access_key_id": "AKIANEWKEY0000000001", "secret_access_key": secret}


def test_another_companys_runs_and_files_are_not_reachable(folder_connection, write_report, run_sync,
                                                           store, company, other_company):
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,G,1.00,0,Cash\n")
    run = run_sync(folder_connection)
    imported = ImportedFile.objects.get()

    assert selectors.sync_run_get(company=company, run_id=run.pk) == run
    assert selectors.imported_file_get(company=company, file_id=imported.pk) == imported
    with pytest.raises(Http404):
        selectors.sync_run_get(company=other_company, run_id=run.pk)
    with pytest.raises(Http404):
        selectors.imported_file_get(company=other_company, file_id=imported.pk)
    with pytest.raises(Http404):
        selectors.connection_get(company=other_company, connection_id=folder_connection.pk)


# --- the import_report command --------------------------------------------------------------------


def test_import_report_command_prints_counts_and_row_errors_and_fails_on_a_rejected_file(
        folder_connection, company, store, tmp_path):
    good = tmp_path / "backfill.csv"
    good.write_text(f"{HEADER}\nR1,C1,{us()},{store.name},Ana,G,10.00,0,Cash\n"
                    f"R2,C2,{us()},{store.name},Bo,G,-5.00,0,Cash\n")
    bad = tmp_path / "broken.csv"
    bad.write_text("Date,Total\n2026-01-01,1.00\n")
    out = io.StringIO()

    call_command("import_report", "--company", company.slug, "--connection", "Nightly reports", str(good),
                 stdout=out)

    assert f"{good}: 1 accepted, 1 rejected, 0 older than 12 months skipped, 1 transactions" in out.getvalue()
    assert "  row 3, column 'LineTotal': '-5.00' is negative; report returns as their own receipts" \
        in out.getvalue()
    assert persona_of(folder_connection, "C1").points_balance == 10
    run = SyncRun.objects.get()
    assert (run.trigger, run.state, run.rows_accepted) == ("command", "completed_with_errors", 1)

    again = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command("import_report", "--company", company.slug, "--connection", "Nightly reports", str(good),
                     str(bad), stdout=again)
    assert caught.value.returncode == 1
    assert f"{good}: skipped, already imported as it is" in again.getvalue()
    assert f"{bad}: rejected: broken.csv is missing the required columns 'ReceiptId', 'customerId'" \
        in again.getvalue()
    assert PointsEntry.objects.count() == 1
