"""One report file into customers, sales and points: read and check it, COPY its good rows
into loyalty's staging table, and let `loyalty.services.ingest` merge them set-wise. One
file is one database transaction; it lands whole or not at all."""

from __future__ import annotations

import datetime as dt
import logging
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass

from django.db import connection as db_connection
from django.db import transaction as db
from django.utils import timezone

from loyalty.services import ingest
from stores.models import RetailStore

from ..models import Connection, ImportedFile, RowError, StoreMapping, SyncRun
from ..providers import ReportFile
from ..reader import STAGE_COLUMNS, FileRejected, ReportReader, StoreResolver
from ..reader import RowError as ReadRowError

logger = logging.getLogger(__name__)

HISTORY_DAYS = 365
COPY_CHUNK_ROWS = 20_000
PROGRESS_EVERY = 50_000

Progress = Callable[[int], None]


@dataclass
class FileOutcome:
    imported_file: ImportedFile

    @property
    def rejected(self) -> bool:
        return self.imported_file.state == ImportedFile.State.REJECTED


def store_resolver(connection: Connection) -> StoreResolver:
    company = connection.company
    stores = list(RetailStore.objects.filter(company=company))
    company_tz = zoneinfo.ZoneInfo(company.timezone)
    by_value: dict[str, int] = {}
    for store in stores:  # a report may name the store, or give our id
        by_value[store.name.lower()] = store.pk
        by_value[str(store.pk)] = store.pk
    for mapping in StoreMapping.objects.filter(connection=connection):
        by_value[mapping.external_location_id.strip().lower()] = mapping.store_id
    return StoreResolver(
        by_value=by_value,
        timezones={s.pk: zoneinfo.ZoneInfo(s.timezone or company.timezone) for s in stores},
        default_store_id=connection.default_store_id,
        company_tz=company_tz,
    )


def report_reader(connection: Connection, stream, *, file_name: str, now: dt.datetime | None = None,
                  header_map: dict | None = None, check_required: bool = True) -> ReportReader:
    now = now or timezone.now()
    return ReportReader(
        stream, file_name=file_name, provider=connection.provider,
        header_map=connection.header_map if header_map is None else header_map,
        stores=store_resolver(connection), country=connection.company.country or "US",
        oldest=now - dt.timedelta(days=HISTORY_DAYS), check_required=check_required,
    )


def report_file_import(*, connection: Connection, file: ReportFile, stream, run: SyncRun | None = None,
                       progress: Progress | None = None, now: dt.datetime | None = None) -> FileOutcome:
    """Import one file (new or changed) of `connection` from `stream`.

    A file that cannot be read at all is recorded as rejected, and the data an earlier
    version of it brought stays as it was. Anything that fails halfway rolls the whole
    file back and propagates."""
    try:
        with db.atomic(durable=True):
            _lock_connection(connection)
            reader = report_reader(connection, stream, file_name=file.key, now=now)
            _stage(reader, progress)
            merged = ingest.sales_merge_staged(
                company=connection.company, source=connection.source,
                batch=ingest.Batch(file_key=file.key, drop_missing=True,
                                   enroll=connection.enroll_new_customers))
            _receipts_too_large_reject(reader, merged.too_large)
            record = _record_file(connection, file, reader=reader, run=run, transactions=merged.transactions)
    except FileRejected as rejected:
        with db.atomic():
            record = _record_rejected(connection, file, run=run, message=rejected.message)
    return FileOutcome(imported_file=record)


def _lock_connection(connection: Connection) -> None:
    # Two syncs of one connection never merge at the same time.
    Connection.objects.select_for_update().filter(pk=connection.pk).first()


# --- staging ----------------------------------------------------------------------------

def _receipts_too_large_reject(reader: ReportReader, too_large) -> None:
    """Receipts the merge left out (their sums do not fit) become row errors, each row
    with its receipt; the rest of the file landed."""
    stats = reader.stats
    for _receipt, rows, column, reason in too_large:
        stats.rows_rejected += len(rows)
        stats.rows_accepted -= len(rows)
        for row_number in rows:
            if len(stats.errors) < reader.MAX_KEPT_ERRORS:
                stats.errors.append(ReadRowError(row_number, reader.header_for(column), "", reason, []))
    stats.errors.sort(key=lambda e: e.row_number)


def _stage(reader: ReportReader, progress: Progress | None) -> None:
    """COPY the reader's good rows into loyalty's `import_lines`, a chunk at a time."""
    with db_connection.cursor() as cursor:
        ingest.lines_staging_create(cursor)

        def reported() -> None:
            if progress and reader.stats.rows_total % PROGRESS_EVERY < COPY_CHUNK_ROWS:
                progress(reader.stats.rows_total)

        copy = ingest.StagingCopy(cursor, "import_lines", STAGE_COLUMNS, chunk_rows=COPY_CHUNK_ROWS,
                                  on_flush=reported)
        for row in reader.rows():
            copy.add(row)
        copy.flush()
        ingest.lines_staging_analyze(cursor)
    if progress:
        progress(reader.stats.rows_total)


def transactions_attach_store(connection: Connection, *, location_id: str, store_id: int) -> int:
    """The sales of `connection` that waited for `location_id` to be mapped now belong to
    the store (see loyalty.services.ingest). Returns how many."""
    return ingest.transactions_attach_store(source_id=connection.source_id, location_id=location_id,
                                            store_id=store_id)


def _record_file(connection: Connection, file: ReportFile, *, reader: ReportReader, run: SyncRun | None,
                 transactions: int) -> ImportedFile:
    stats = reader.stats
    record, _ = ImportedFile.objects.update_or_create(
        connection=connection, key=file.key,
        defaults={
            "etag": file.etag, "content_hash": reader.content_hash, "size": reader.bytes_read,
            "state": ImportedFile.State.IMPORTED, "headers": reader.headers,
            "encoding": reader.encoding, "delimiter": reader.delimiter,
            "rows_total": stats.rows_total, "rows_accepted": stats.rows_accepted,
            "rows_rejected": stats.rows_rejected, "rows_too_old": stats.rows_too_old,
            "transactions": transactions, "error": "", "last_run": run,
            "imported_at": timezone.now(), "removed_at": None, "purged_at": None,
        },
    )
    record.row_errors.all().delete()
    RowError.objects.bulk_create(
        [RowError(imported_file=record, row_number=e.row_number, column=e.column[:200],
                  value=e.value, reason=e.reason[:500], row=e.row) for e in stats.errors],
        batch_size=2000,
    )
    return record


def _record_rejected(connection: Connection, file: ReportFile, *, run: SyncRun | None,
                     message: str) -> ImportedFile:
    record, _ = ImportedFile.objects.update_or_create(
        connection=connection, key=file.key,
        defaults={"etag": file.etag, "size": file.size, "state": ImportedFile.State.REJECTED,
                  "error": message, "last_run": run, "imported_at": timezone.now(),
                  "rows_total": 0, "rows_accepted": 0, "rows_rejected": 0, "rows_too_old": 0,
                  "transactions": 0, "removed_at": None},  # it is back at the source
    )
    record.row_errors.all().delete()
    return record


def imported_file_data_remove(*, imported_file: ImportedFile, reason: str) -> int:
    """Remove every sale a file brought, and reverse the points they earned. Returns how
    many sales went."""
    connection = imported_file.connection
    with db.atomic():
        _lock_connection(connection)
        return ingest.source_transactions_remove(company=connection.company, source_id=connection.source_id,
                                                 file_key=imported_file.key, reason=reason)
