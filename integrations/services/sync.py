"""The one lifecycle of a sync run, for every connector: create, claim (the lease),
progress, attempts, failure mapping, the finishing status and `sync_completed`. The
connector (`integrations.connectors`) does the run's work: for the report sources, list
the files, import what is new or changed and deal with what disappeared; for Cova, its
customers and sales since the watermarks."""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
import zoneinfo
from contextlib import contextmanager

import psycopg
from django.conf import settings
from django.core.cache import cache
from django.db import InterfaceError, OperationalError
from django.db import connection as db_connection
from django.db import connections as db_connections
from django.db import transaction as db
from django.db.models import F, Q
from django.utils import timezone

from stores.audit import AuditContext, audit_record
from stores.errors import DomainError

from ..connectors import connector_class_of
from ..models import Connection, ImportedFile, SyncRun
from ..providers import ProviderError, ReportFile
from ..signals import sync_completed
from .imports import imported_file_data_remove, report_file_import

log = logging.getLogger(__name__)


class SyncFailed(Exception):
    def __init__(self, message: str, *, retryable: bool):
        super().__init__(message)
        self.message = message
        self.retryable = retryable


class SyncRunHeld(Exception):
    """The run's lease is live: a worker is on it. The task delivered again leaves it
    alone and looks again once the lease would have lapsed, in `lapses_in` seconds."""

    def __init__(self, run_id: int, lapses_in: float):
        super().__init__(f"sync run {run_id} is held by a live worker for {lapses_in:.0f} s more")
        self.lapses_in = lapses_in


def progress_key(run_id: int) -> str:
    return f"sync-run:{run_id}:rows"


def sync_run_create(*, connection: Connection, trigger: str, credential=None,
                    audit: AuditContext | None = None) -> SyncRun:
    """A queued run of the connection (of one of its credentials, for a connector that runs
    per credential, such as Cova); refused while frozen or while another run of the same is
    queued or running."""
    if credential is None and connector_class_of(connection).runs_per_credential:
        raise DomainError(f"{connection.name} syncs per credential: sync one of its credentials.",
                          code="credential_needed")
    what = credential.username if credential is not None else connection.name
    frozen = connection.is_frozen or (credential is not None and credential.is_frozen)
    if frozen and trigger != SyncRun.Trigger.COMMAND:
        raise DomainError(f"{what} is frozen: unfreeze it to sync.", code="frozen")
    with db.atomic():
        Connection.objects.select_for_update().get(pk=connection.pk)
        sync_runs_interrupt_lapsed(connection=connection)  # a dead worker's run blocks nothing
        runs = connection.runs if credential is None else credential.runs
        active = runs.filter(state__in=[SyncRun.State.QUEUED, SyncRun.State.RUNNING]).first()
        if active is not None:
            raise DomainError(f"A sync of {what} is already {active.state}.", code="sync_active",
                              extra={"run_id": active.pk})
        run = SyncRun.objects.create(company_id=connection.company_id, connection=connection,
                                     credential=credential, trigger=trigger)
        audit_record(audit=audit, company=connection.company_id,
                     kind="cova_credential.sync_requested" if credential is not None
                     else "connection.sync_requested",
                     obj=credential if credential is not None else connection, extra={"sync_run_id": run.pk})
        return run


def sync_run_skipped_record(*, connection: Connection, reason: str, credential=None) -> SyncRun:
    """A nightly run that did not start, kept in the connection's runs with why."""
    return SyncRun.objects.create(company_id=connection.company_id, connection=connection,
                                  credential=credential, trigger=SyncRun.Trigger.SCHEDULE,
                                  state=SyncRun.State.SKIPPED, error=reason)


# --- the lease of a running sync ------------------------------------------------------------

def _lease_length() -> dt.timedelta:
    return dt.timedelta(seconds=settings.SYNC_LEASE_SECONDS)


@contextmanager
def sync_run_lease_renewed(run: SyncRun):
    """Renew the run's lease every quarter of its length while the block runs. The thread
    has its own database connection, so each renewal commits at once, outside the file's
    transaction (a merge can go minutes without a progress report). A killed worker stops
    renewing, and the lease lapses."""
    stop = threading.Event()

    def renew() -> None:
        try:
            while not stop.wait(settings.SYNC_LEASE_SECONDS / 4):
                try:
                    SyncRun.objects.filter(pk=run.pk, state=SyncRun.State.RUNNING).update(
                        lease_expires_at=timezone.now() + _lease_length())
                except Exception:  # a database hiccup: the next beat tries again
                    log.exception("renewing the lease of sync run %s failed", run.pk)
                    # A connection the server dropped stays broken: the next beat opens a new one.
                    db_connection.close()
        finally:
            db_connections.close_all()  # this thread's own connections

    thread = threading.Thread(target=renew, name=f"sync-run-{run.pk}-lease", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()


def sync_runs_interrupt_lapsed(*, connection: Connection | None = None) -> list[SyncRun]:
    """Mark interrupted the running runs (of `connection`, or all) whose lease has lapsed:
    their worker is gone. The file it was on rolled back with its transaction, so nothing
    of it was kept; the run no longer blocks the next sync."""
    now = timezone.now()
    lapsed = SyncRun.objects.filter(state=SyncRun.State.RUNNING, lease_expires_at__lt=now)
    if connection is not None:
        lapsed = lapsed.filter(connection=connection)
    interrupted = []
    for run in lapsed.select_related("connection__company"):
        stopped, account = _lapse_account(run)
        error = f"Interrupted: {account}."
        # Only if still lapsed: a worker that renewed meanwhile is alive.
        still_lapsed = lapsed.filter(pk=run.pk)
        if not still_lapsed.update(state=SyncRun.State.INTERRUPTED, error=error, finished_at=stopped,
                                   lease_expires_at=None):
            continue
        cache.delete(progress_key(run.pk))
        connector_class_of(run.connection).run_failed(run, error, interrupted=True)
        log.warning("sync run %s of %s: %s", run.pk, run.connection, error)
        run.state, run.error, run.finished_at = SyncRun.State.INTERRUPTED, error, stopped
        run.lease_expires_at = None
        interrupted.append(run)
    return interrupted


def _lapse_account(run: SyncRun) -> tuple[dt.datetime, str]:
    """When the worker of a lapsed run stopped, and "the worker stopped at 14:02 while
    reading day1.csv; nothing of that file was kept"."""
    if run.lease_expires_at is None:  # never leased (set running by hand): it stopped at its start
        stopped = run.started_at or timezone.now()
    else:
        stopped = max(run.lease_expires_at - _lease_length(), run.started_at or run.lease_expires_at)
    at = timezone.localtime(stopped, zoneinfo.ZoneInfo(run.connection.company.timezone))
    doing, lost = connector_class_of(run.connection).lapse_words(run)
    return stopped, f"the worker stopped at {at:%H:%M}{doing}; {lost}"


RESUMED = "Resumed after the worker was lost: "
# A run whose worker keeps dying on it (a file that exhausts memory, say) is not resumed
# for ever: past this many attempts it stays interrupted, for staff to look and Run again.
RESUME_ATTEMPTS_MAX = 6


def sync_run_claim(run: SyncRun, *, reset: dict) -> str | None:
    """Take the run for this worker, or say why not. A task may be delivered more than once
    (its worker was killed, or the broker handed it out again), so:
    - queued: started (its first attempt, or a retry);
    - running under a live lease: another worker is on it, raises SyncRunHeld;
    - running under a lapsed lease (its worker died before the sweep saw it), or
      interrupted by the sweep and not superseded by a later run: resumed here;
    - anything else (finished, skipped, superseded, or resumed too often already): None,
      nothing to do.
    Returns the notice the run page shows ("" for a plain start). Each step is a
    conditional update, so of two deliveries only one takes the run."""
    for _ in range(3):  # another delivery may change the state between our read and update
        now = timezone.now()
        start = dict(state=SyncRun.State.RUNNING, started_at=run.started_at or now,
                     attempts=F("attempts") + 1, finished_at=None,
                     lease_expires_at=now + _lease_length(), **reset)
        mine = SyncRun.objects.filter(pk=run.pk, state=run.state)
        if run.state == SyncRun.State.QUEUED:
            if mine.update(error="", **start):
                return ""
        elif run.state == SyncRun.State.RUNNING:
            if run.lease_expires_at is not None and run.lease_expires_at >= now:
                raise SyncRunHeld(run.pk, (run.lease_expires_at - now).total_seconds())
            if run.attempts >= RESUME_ATTEMPTS_MAX:
                return None  # the sweep marks it interrupted
            notice = f"{RESUMED}{_lapse_account(run)[1]}."
            lapsed = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lt=now)
            if mine.filter(lapsed).update(error=notice, current_file="", **start):
                log.warning("sync run %s taken over: %s", run.pk, notice)
                return notice
        elif run.state == SyncRun.State.INTERRUPTED:
            if run.attempts >= RESUME_ATTEMPTS_MAX:
                return None
            with db.atomic():
                # Locked as sync_run_create locks it: a new run and this resumption exclude each other.
                Connection.objects.select_for_update().get(pk=run.connection_id)
                later = SyncRun.objects.filter(connection_id=run.connection_id,
                                               credential_id=run.credential_id, pk__gt=run.pk)
                if later.exists():
                    return None  # "Run again" or the next sync took over from it
                notice = f"{RESUMED}{run.error.removeprefix('Interrupted: ')}"
                if mine.update(error=notice, current_file="", **start):
                    log.warning("sync run %s resumed: %s", run.pk, notice)
                    return notice
        else:
            return None
        run.refresh_from_db()
    return None


def _bump(run: SyncRun, **counts) -> None:
    SyncRun.objects.filter(pk=run.pk).update(**{k: F(k) + v for k, v in counts.items()})
    for name, value in counts.items():
        setattr(run, name, getattr(run, name) + value)


def sync_file(*, run: SyncRun, file: ReportFile, open_stream) -> ImportedFile | None:
    """Import one file unless it is already in, as it is now (None). A file rejected before
    and unchanged since is not read again: its record comes back with `unchanged` set.
    Counts go on the run."""
    connection = run.connection
    known = ImportedFile.objects.filter(connection=connection, key=file.key).first()
    _bump(run, files_seen=1)
    if known and known.etag == file.etag and known.state == ImportedFile.State.REJECTED:
        # Still the file we rejected: it counts as rejected again, listed with why.
        if known.last_run_id != run.pk:  # else an earlier attempt of this run counted it
            _bump(run, files_rejected=1)
            ImportedFile.objects.filter(pk=known.pk).update(last_run=run)
            known.last_run = run
        known.unchanged = True
        return known
    if known and known.etag == file.etag and known.state == ImportedFile.State.IMPORTED:
        if known.last_run_id != run.pk:  # else an earlier attempt of this run brought it in
            _bump(run, files_skipped=1)
        return None
    run.current_file = file.key  # the failure message names it
    SyncRun.objects.filter(pk=run.pk).update(current_file=file.key)
    cache.set(progress_key(run.pk), 0, 3600)
    stream = open_stream(file)
    try:
        outcome = report_file_import(
            connection=connection, file=file, stream=stream, run=run,
            progress=lambda rows: cache.set(progress_key(run.pk), rows, 3600),
        )
    finally:
        stream.close()
    record = outcome.imported_file
    if outcome.rejected:
        _bump(run, files_rejected=1)
    else:
        _bump(run, files_imported=1, rows_accepted=record.rows_accepted,
              rows_rejected=record.rows_rejected, rows_too_old=record.rows_too_old)
    return record


def sync_run_execute(*, run_id: int) -> SyncRun:
    """Do the run, whatever the connector: claim it, let the connector stage what changed
    (`Connector.sync`) under a renewed lease, then record how it ended. A ProviderError or
    any other failure ends it as failed with the reason (the change in progress rolls back
    whole) and raises SyncFailed; success stamps the connection, tells the connector and
    sends sync_completed."""
    run = SyncRun.objects.select_related("connection__company", "credential").get(pk=run_id)
    connector = connector_class_of(run.connection)
    notice = sync_run_claim(run, reset=dict(connector.run_reset))
    if notice is None:
        run.refresh_from_db()
        return run  # finished, skipped or superseded: a delivery of a task already done
    run.refresh_from_db()
    try:
        with sync_run_lease_renewed(run):
            credential = run.credential if run.credential_id is not None else None
            connector.for_connection(run.connection, credential=credential).sync(run)
    except ProviderError as exc:
        _fail(run, exc.message)
        raise SyncFailed(exc.message, retryable=exc.retryable) from exc
    except Exception as exc:  # a broken stream or database error: the work in progress rolled back
        log.exception("sync run %s failed", run.pk)
        if database_lost(exc):
            message = (f"Failed: the database connection was lost while {connector.doing(run)}; "
                       "nothing of it was kept.")
        else:
            message = connector.failure_message(run, exc)
        _fail(run, message)
        raise SyncFailed(message, retryable=True) from exc
    run.refresh_from_db()
    _finish(run, finished_state(run), error=notice)
    Connection.objects.filter(pk=run.connection_id).update(last_synced_at=run.finished_at)
    connector.run_succeeded(run)
    run.refresh_from_db()
    sync_completed.send(sender=Connection, connection=run.connection, run=run)
    return run


def files_disappeared(run: SyncRun, *, present: set[str], removes_data: bool) -> None:
    """The connection's files that are no longer at the source (`present` are those that are)."""
    for gone in run.connection.files.exclude(key__in=present).filter(removed_at__isnull=True):
        _file_disappeared(run, gone, removes_data=removes_data)


def finished_state(run: SyncRun) -> str:
    """A run that got to the end: succeeded only when nothing it read was turned away."""
    if run.rows_rejected or run.files_rejected:
        return SyncRun.State.COMPLETED_WITH_ERRORS
    return SyncRun.State.SUCCEEDED


# SQLSTATEs of a server that went away: connection exceptions, and the server shutting
# down or restarting (admin_shutdown, crash_shutdown, cannot_connect_now).
_LOST_STATES = ("08", "57P01", "57P02", "57P03")


def database_lost(exc: BaseException) -> bool:
    """The database went away under us (restarted, connection cut), not a bad row: some
    error in the chain is the server's goodbye, or the client finding its connection
    closed (an OperationalError or InterfaceError with no SQLSTATE)."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, (OperationalError, InterfaceError,
                            psycopg.OperationalError, psycopg.InterfaceError)):
            state = getattr(exc, "sqlstate", None) or getattr(exc.__cause__, "sqlstate", None)
            if state is None or state.startswith(_LOST_STATES):
                return True
        exc = exc.__cause__ or exc.__context__
    return False


def _connection_usable() -> bool:
    try:
        return db_connection.connection is None or db_connection.is_usable()
    except Exception:
        return False


def _recorded(write, *, tries: int = 120, pause: float = 0.5) -> None:
    """Write a run's outcome after a failure, on a fresh connection when the old one is
    broken (the server restarted or cut it), retrying up to a minute while it comes back
    (crash recovery takes a while). Should it stay away longer, the run's lease lapses
    and the sweep marks it interrupted."""
    for attempt in range(tries):
        if not _connection_usable() and not db_connection.in_atomic_block:
            db_connection.close()
        try:
            write()
            return
        except (OperationalError, InterfaceError):
            if attempt == tries - 1 or db_connection.in_atomic_block:
                raise
            db_connection.close()
            time.sleep(pause)


def _fail(run: SyncRun, message: str) -> None:
    def write() -> None:
        _finish(run, SyncRun.State.FAILED, error=message)
        connector_class_of(run.connection).run_failed(run, message)

    _recorded(write)


def _file_disappeared(run: SyncRun, imported_file: ImportedFile, *, removes_data: bool) -> None:
    now = timezone.now()
    if removes_data:
        with db.atomic():
            imported_file_data_remove(imported_file=imported_file,
                                      reason=f"{imported_file.key} was deleted from the source")
            ImportedFile.objects.filter(pk=imported_file.pk).update(
                state=ImportedFile.State.PURGED, removed_at=now, purged_at=now, last_run=run)
    else:  # OneDrive: the data stays until support purges it
        ImportedFile.objects.filter(pk=imported_file.pk).update(
            state=ImportedFile.State.REMOVED, removed_at=now, last_run=run)
    _bump(run, files_removed=1)


def _finish(run: SyncRun, state: str, *, error: str = "") -> None:
    run.state, run.error, run.finished_at, run.current_file = state, error, timezone.now(), ""
    SyncRun.objects.filter(pk=run.pk).update(state=state, error=error, finished_at=run.finished_at,
                                             current_file="", lease_expires_at=None)
    cache.delete(progress_key(run.pk))


def sync_run_requeue(*, run: SyncRun, error: str, retry_in: int) -> None:
    """A failed attempt that will be tried again: queued, with why and when."""
    SyncRun.objects.filter(pk=run.pk).update(
        state=SyncRun.State.QUEUED, finished_at=None, lease_expires_at=None,
        error=f"{error} Retrying in {retry_in} s (attempt {run.attempts + 1}).")


def imported_file_purge(*, imported_file: ImportedFile, audit: AuditContext | None = None) -> int:
    """Support's action for a file deleted from OneDrive: its sales go, points reversed."""
    if imported_file.state == ImportedFile.State.PURGED:
        raise DomainError(f"The data of {imported_file.key} was already removed.", code="already_purged")
    with db.atomic(durable=True):
        removed = imported_file_data_remove(imported_file=imported_file,
                                            reason=f"Data of {imported_file.key} removed on request")
        now = timezone.now()
        ImportedFile.objects.filter(pk=imported_file.pk).update(
            state=ImportedFile.State.PURGED, purged_at=now, removed_at=imported_file.removed_at or now)
        audit_record(audit=audit, company=imported_file.connection.company_id, kind="imported_file.purged",
                     obj=imported_file, changes={"state": [imported_file.state, ImportedFile.State.PURGED]},
                     extra={"connection": imported_file.connection.name, "sales_removed": removed})
    return removed


def local_files_import(*, connection: Connection, paths: list[str]) -> SyncRun:
    """Import files from this machine's disk through exactly the path a sync takes (for
    backfills and support). Each file's key is its name; its etag its content hash, so
    the same file twice is skipped."""
    run = sync_run_create(connection=connection, trigger=SyncRun.Trigger.COMMAND)
    SyncRun.objects.filter(pk=run.pk).update(state=SyncRun.State.RUNNING, started_at=timezone.now(),
                                             attempts=1, lease_expires_at=timezone.now() + _lease_length())
    run.refresh_from_db()
    run.outcomes = []  # (path, ImportedFile or None when skipped), for the caller to print
    try:
        with sync_run_lease_renewed(run):
            _local_files_sync(run, paths)
    except Exception as exc:
        message = (f"Failed: the database connection was lost while importing {run.current_file}; "
                   f"nothing of it was kept." if database_lost(exc)
                   else f"Failed while importing {run.current_file}: {exc}")
        _recorded(lambda: _finish(run, SyncRun.State.FAILED, error=message))
        raise
    _finish(run, finished_state(run))
    sync_completed.send(sender=Connection, connection=connection, run=run)
    return run


def _local_files_sync(run: SyncRun, paths: list[str]) -> None:
    import hashlib
    import os

    for path in paths:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):  # noqa: B023
                digest.update(chunk)
        file = ReportFile(key=os.path.basename(path), etag=f"sha256:{digest.hexdigest()}",
                          size=os.path.getsize(path))
        # sync_file closes the stream it opens.
        record = sync_file(run=run, file=file, open_stream=lambda f, p=path: open(p, "rb"))  # noqa: SIM115
        run.outcomes.append((path, record))
