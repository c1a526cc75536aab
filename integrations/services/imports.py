"""One report file into customers, sales and points: COPY into a staging table, then merge
set-wise. One file is one database transaction; it lands whole or not at all."""

from __future__ import annotations

import csv
import datetime as dt
import io
import logging
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from django.db import connection as db_connection
from django.db import transaction as db
from django.utils import timezone

from loyalty.bounds import MONEY_MAX, POINTS_MAX
from loyalty.models import Tier
from loyalty.selectors import loyalty_program_get
from loyalty.services.points_bulk import points_sync_for_transactions, signup_bonus_give_bulk
from loyalty.services.privacy import SKIPPED_ERASED, erased_identities
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
            _receipts_too_large_reject(connection, reader)
            merged = _merge(connection, file_key=file.key)
            record = _record_file(connection, file, reader=reader, run=run, transactions=merged)
    except FileRejected as rejected:
        with db.atomic():
            record = _record_rejected(connection, file, run=run, message=rejected.message)
    return FileOutcome(imported_file=record)


def _lock_connection(connection: Connection) -> None:
    # Two syncs of one connection never merge at the same time.
    Connection.objects.select_for_update().filter(pk=connection.pk).first()


# --- staging ----------------------------------------------------------------------------

_STAGE_TABLE = """
CREATE TEMP TABLE import_lines (
    row_no integer, transaction_id text, customer_id text, occurred_at timestamptz,
    store_id bigint, first_name text, last_name text, email text, phone text, birth_date date,
    sku text, product text, brand text, category text, quantity numeric, unit_price numeric,
    discount numeric, tax numeric, line_total numeric, payment_method text, fulfillment text,
    employee text, source_location text
) ON COMMIT DROP
"""


# Receipts whose lines add up to more than a sale's amount columns hold: each row fits,
# the sums would not.
_RECEIPTS_TOO_LARGE = """
SELECT transaction_id, array_agg(row_no ORDER BY row_no),
       sum(round(quantity * unit_price, 2)), sum(line_total) + sum(tax), sum(discount), sum(tax)
FROM import_lines GROUP BY transaction_id
HAVING greatest(sum(round(quantity * unit_price, 2)), sum(line_total) + sum(tax),
                sum(discount), sum(tax)) > %(max)s
    OR greatest(sum(round(quantity * unit_price, 2)), sum(line_total) + sum(tax)) * %(rate)s > %(points)s
"""


def receipts_too_large(cursor, *, points_rate: Decimal,
                       noun: str = "receipt") -> list[tuple[str, list[int], str, str]]:
    """Receipts in `import_lines` whose sums would not fit a sale's amount columns, or
    could earn more than POINTS_MAX at `points_rate` (points per unit at the best tier), as
    (receipt id, its rows, the column to blame, why), after taking them out of the table.
    `noun` is what the reasons call a receipt ("Cova sale")."""
    cursor.execute(_RECEIPTS_TOO_LARGE, {"max": MONEY_MAX, "rate": points_rate, "points": POINTS_MAX})
    found = []
    for receipt, rows, subtotal, total, discount, tax in cursor.fetchall():
        column, what, value = next((c for c in (
            ("line_total", "line totals plus tax", total),
            ("unit_price", "quantity × unit price of its lines", subtotal),
            ("discount", "discounts", discount), ("tax", "taxes", tax)) if c[2] > MONEY_MAX),
            (None, None, None))
        if column is None:
            found.append((receipt, rows, "line_total",
                          f"{noun} {receipt}: it could earn more than {POINTS_MAX:,} points"))
            continue
        found.append((receipt, rows, column,
                      f"{noun} {receipt}: its {what} add up to {value:,}, more than {MONEY_MAX:,}"))
    if found:
        cursor.execute("DELETE FROM import_lines WHERE transaction_id = ANY(%s)", [[f[0] for f in found]])
    return found


def best_points_rate(company_id: int) -> Decimal:
    """The most points a unit of money can earn in the company: its program's rate at the
    best tier."""
    program = loyalty_program_get(company=company_id)
    tiers = Tier.objects.filter(company_id=company_id)
    best = max(tiers.values_list("earn_multiplier", flat=True), default=Decimal("1"))
    return program.points_per_unit * max(best, Decimal("1"))


def _receipts_too_large_reject(connection: Connection, reader: ReportReader) -> None:
    """Such receipts become row errors, each row with its receipt; the rest of the file lands."""
    with db_connection.cursor() as cursor:
        found = receipts_too_large(cursor, points_rate=best_points_rate(connection.company_id))
    stats = reader.stats
    for _receipt, rows, column, reason in found:
        stats.rows_rejected += len(rows)
        stats.rows_accepted -= len(rows)
        for row_number in rows:
            if len(stats.errors) < reader.MAX_KEPT_ERRORS:
                stats.errors.append(ReadRowError(row_number, reader.header_for(column), "", reason, []))
    stats.errors.sort(key=lambda e: e.row_number)


def _stage(reader: ReportReader, progress: Progress | None) -> None:
    """COPY the reader's good rows into `import_lines`, a chunk at a time."""
    with db_connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS import_lines")
        cursor.execute(_STAGE_TABLE)
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        columns = ", ".join(STAGE_COLUMNS)
        with cursor.cursor.copy(f"COPY import_lines ({columns}) FROM STDIN (FORMAT csv)") as copy:
            pending = 0
            for row in reader.rows():
                writer.writerow(row)
                pending += 1
                if pending == COPY_CHUNK_ROWS:
                    copy.write(buffer.getvalue())
                    buffer.seek(0)
                    buffer.truncate()
                    pending = 0
                    if progress and reader.stats.rows_total % PROGRESS_EVERY < COPY_CHUNK_ROWS:
                        progress(reader.stats.rows_total)
            if pending:
                copy.write(buffer.getvalue())
        # A small sample is plenty for the planner to pick hash joins over nested loops.
        cursor.execute("SET LOCAL default_statistics_target = 10")
        cursor.execute("ANALYZE import_lines")
        cursor.execute("RESET default_statistics_target")
    if progress:
        progress(reader.stats.rows_total)


# --- merge ------------------------------------------------------------------------------

# Each contact field from the customer's newest row that has it: a blank cell on a later
# row of the file does not hide what an earlier row said.
_CUSTOMERS = """
CREATE TEMP TABLE import_customers ON COMMIT DROP AS
SELECT customer_id,
       coalesce((array_agg(first_name ORDER BY occurred_at DESC, row_no DESC)
                 FILTER (WHERE first_name <> ''))[1], '') AS first_name,
       coalesce((array_agg(last_name ORDER BY occurred_at DESC, row_no DESC)
                 FILTER (WHERE last_name <> ''))[1], '') AS last_name,
       coalesce((array_agg(email ORDER BY occurred_at DESC, row_no DESC)
                 FILTER (WHERE email <> ''))[1], '') AS email,
       coalesce((array_agg(phone ORDER BY occurred_at DESC, row_no DESC)
                 FILTER (WHERE phone <> ''))[1], '') AS phone,
       (array_agg(birth_date ORDER BY occurred_at DESC, row_no DESC)
        FILTER (WHERE birth_date IS NOT NULL))[1] AS birth_date,
       min(occurred_at) AS first_seen, NULL::bigint AS persona_id, false AS is_new
FROM import_lines
WHERE customer_id <> ''  -- a sale without a customer (an API source's walk-in) has none
GROUP BY customer_id
"""

_MATCH_IDENTITY = """
UPDATE import_customers c SET persona_id = i.persona_id
FROM loyalty_personaidentity i
WHERE i.source_id = %(source_id)s AND i.external_id = c.customer_id
"""

# One balance per customer across channels: a customer id new to this source joins the
# persona that already has the phone number, else the email address.
_MATCH_PHONE = """
UPDATE import_customers c SET persona_id = m.id
FROM (SELECT DISTINCT ON (phone) phone, id FROM loyalty_persona
      WHERE company_id = %(company_id)s AND phone <> ''
        AND phone IN (SELECT phone FROM import_customers WHERE persona_id IS NULL AND phone <> '')
      ORDER BY phone, id) m
WHERE c.persona_id IS NULL AND c.phone = m.phone
"""

_MATCH_EMAIL = """
UPDATE import_customers c SET persona_id = m.id
FROM (SELECT DISTINCT ON (lower(email)) lower(email) AS email, id FROM loyalty_persona
      WHERE company_id = %(company_id)s AND email <> ''
        AND lower(email) IN (SELECT email FROM import_customers WHERE persona_id IS NULL AND email <> '')
      ORDER BY lower(email), id) m
WHERE c.persona_id IS NULL AND c.email = m.email
"""

_NEW_IDS = """
UPDATE import_customers SET persona_id = nextval(pg_get_serial_sequence('loyalty_persona', 'id')),
                            is_new = true
WHERE persona_id IS NULL
"""

_NEW_PERSONAS = """
INSERT INTO loyalty_persona (
    id, company_id, first_name, last_name, phone, email, birth_date, market, is_member, enrolled_at,
    sms_opt_in, email_opt_in, favourite_store_id, sourced_from_id, custom_traits, points_balance,
    lifetime_points, tier, last_purchase_at, created_at, updated_at)
SELECT persona_id, %(company_id)s, left(first_name, 100), left(last_name, 100), phone, email,
       birth_date, '', %(enroll)s, CASE WHEN %(enroll)s THEN first_seen END, false, false, NULL,
       %(source_id)s, '{}'::jsonb, 0, 0, '', NULL, first_seen, now()
FROM import_customers WHERE is_new
"""

_IDENTITIES = """
INSERT INTO loyalty_personaidentity (company_id, persona_id, source_id, external_id, created_at)
SELECT %(company_id)s, persona_id, %(source_id)s, customer_id, now() FROM import_customers
ON CONFLICT (source_id, external_id) DO NOTHING
"""

# Contact details follow the newest report; a blank cell keeps what we know.
_CONTACTS = """
UPDATE loyalty_persona p SET
    first_name = CASE WHEN c.first_name <> '' THEN left(c.first_name, 100) ELSE p.first_name END,
    last_name = CASE WHEN c.last_name <> '' THEN left(c.last_name, 100) ELSE p.last_name END,
    email = CASE WHEN c.email <> '' THEN c.email ELSE p.email END,
    phone = CASE WHEN c.phone <> '' THEN c.phone ELSE p.phone END,
    birth_date = coalesce(c.birth_date, p.birth_date),
    updated_at = now()
FROM import_customers c
WHERE p.id = c.persona_id AND NOT c.is_new
  AND (c.first_name <> '' AND c.first_name IS DISTINCT FROM p.first_name
       OR c.last_name <> '' AND c.last_name IS DISTINCT FROM p.last_name
       OR c.email <> '' AND c.email IS DISTINCT FROM p.email
       OR c.phone <> '' AND c.phone IS DISTINCT FROM p.phone
       OR c.birth_date IS NOT NULL AND c.birth_date IS DISTINCT FROM p.birth_date)
"""

# One row per receipt: its sums, and the store, customer and kind of its first line.
_RECEIPTS = """
CREATE TEMP TABLE import_receipts ON COMMIT DROP AS
WITH sums AS (
    SELECT transaction_id, min(row_no) AS first_row, min(occurred_at) AS occurred_at,
           sum(round(quantity * unit_price, 2)) AS subtotal, sum(discount) AS discount_total,
           sum(tax) AS tax_total, sum(line_total) + sum(tax) AS total
    FROM import_lines GROUP BY transaction_id
)
SELECT s.*, f.store_id, c.persona_id, f.fulfillment, coalesce(f.employee, '') AS employee,
       f.payment_method, coalesce(f.source_location, '') AS source_location
FROM sums s
JOIN import_lines f ON f.row_no = s.first_row
LEFT JOIN import_customers c ON c.customer_id = f.customer_id
"""

_TRANSACTIONS = """
CREATE TEMP TABLE import_txns ON COMMIT DROP AS
WITH upserted AS (
    INSERT INTO loyalty_transaction (
        company_id, store_id, persona_id, source_id, external_id, source_file, source_location,
        occurred_at, channel, fulfillment, employee, subtotal, discount_total, tax_total, total, status,
        created_at, updated_at)
    SELECT %(company_id)s, store_id, persona_id, %(source_id)s, transaction_id, %(file_key)s,
           source_location, occurred_at, 'in_store', fulfillment, employee, subtotal, discount_total,
           tax_total, total, 'completed', now(), now()
    FROM import_receipts
    ON CONFLICT (company_id, source_id, external_id) DO UPDATE SET
        store_id = EXCLUDED.store_id, persona_id = EXCLUDED.persona_id,
        source_file = EXCLUDED.source_file, source_location = EXCLUDED.source_location,
        occurred_at = EXCLUDED.occurred_at,
        fulfillment = EXCLUDED.fulfillment, employee = EXCLUDED.employee,
        subtotal = EXCLUDED.subtotal, discount_total = EXCLUDED.discount_total,
        tax_total = EXCLUDED.tax_total, total = EXCLUDED.total, status = 'completed',
        updated_at = now()
    RETURNING id, external_id, (xmax = 0) AS inserted, total
)
SELECT u.*, r.first_row, r.payment_method FROM upserted u
JOIN import_receipts r ON r.transaction_id = u.external_id
"""

# Who owned the receipts before this file: a receipt that moves to another customer
# changes the old owner's last purchase and favourite store too.
_PREVIOUS_OWNERS = """
CREATE TEMP TABLE import_previous_owners ON COMMIT DROP AS
SELECT DISTINCT persona_id FROM loyalty_transaction
WHERE company_id = %(company_id)s AND source_id = %(source_id)s AND persona_id IS NOT NULL
  AND external_id IN (SELECT DISTINCT transaction_id FROM import_lines)
"""

_OLD_LINES = """
DELETE FROM loyalty_lineitem WHERE transaction_id IN (SELECT id FROM import_txns WHERE NOT inserted)
"""
_OLD_PAYMENTS = """
DELETE FROM loyalty_payment WHERE transaction_id IN (SELECT id FROM import_txns WHERE NOT inserted)
"""

# Line numbers follow the file: a receipt's first row is line 1 (a skipped bad row
# leaves a gap, never a clash).
_LINES = """
INSERT INTO loyalty_lineitem (transaction_id, line_no, sku, product, brand, category, quantity,
                              unit_price, discount, tax, tax_included, total)
SELECT t.id, l.row_no - t.first_row + 1, coalesce(l.sku, ''), coalesce(l.product, ''),
       coalesce(l.brand, ''), coalesce(l.category, ''), l.quantity, l.unit_price, l.discount, l.tax,
       false, l.line_total
FROM import_lines l JOIN import_txns t ON t.external_id = l.transaction_id
"""

_PAYMENTS = """
INSERT INTO loyalty_payment (transaction_id, method, amount)
SELECT id, payment_method, total FROM import_txns WHERE payment_method IS NOT NULL
"""

# Sales an earlier version of this file brought that the new version no longer has.
_DROPPED = """
CREATE TEMP TABLE import_dropped ON COMMIT DROP AS
SELECT t.id FROM loyalty_transaction t
WHERE t.source_id = %(source_id)s AND t.source_file = %(file_key)s
  -- NOT EXISTS plans as an anti-join; NOT IN turns quadratic once import_txns outgrows work_mem.
  AND NOT EXISTS (SELECT 1 FROM import_txns i WHERE i.id = t.id)
"""
_NOTHING_DROPPED = "CREATE TEMP TABLE import_dropped (id bigint) ON COMMIT DROP"


def _erased_customers_skip(cursor, connection: Connection) -> int:
    """Take out of `import_customers` the customers whose phone, email or id in this source
    belongs to a customer erased at their request (loyalty.services.privacy tombstones):
    they are not brought back, and their sales land without a customer. Returns how many."""
    erased = erased_identities(company=connection.company_id)
    if not erased.digests:
        return 0
    cursor.execute("SELECT customer_id, phone, email FROM import_customers")
    skipped = [customer_id for customer_id, phone, email in cursor.fetchall()
               if erased.match(phone=phone or "", email=email or "", source_id=connection.source_id,
                               external_id=customer_id)]
    if skipped:
        cursor.execute("DELETE FROM import_customers WHERE customer_id = ANY(%s)", [skipped])
        logger.info("%s of %s: %d customer(s) skipped, %s", connection.company_id, connection.name,
                    len(skipped), SKIPPED_ERASED)
    return len(skipped)


def customers_merge(connection: Connection, *, file_key: str = "") -> int:
    """Match the customers in temp table `import_customers` (customer_id, first_name,
    last_name, email, phone, birth_date, first_seen, persona_id, is_new) to personas: by
    this source's identity, else phone, else email; create the rest; record identities;
    bring contact details up to date. Fills persona_id and is_new. Customers erased at
    their request are skipped (their sales stay anonymous); returns how many were."""
    params = {
        "company_id": connection.company_id, "source_id": connection.source_id,
        "file_key": file_key, "enroll": connection.enroll_new_customers,
    }
    with db_connection.cursor() as cursor:
        skipped = _erased_customers_skip(cursor, connection)
        # Autovacuum never analyzes temporary tables: without statistics the planner takes
        # them for tiny and picks nested loops, which turn quadratic on big files.
        cursor.execute("CREATE INDEX ON import_customers (customer_id)")
        cursor.execute("ANALYZE import_customers")
        cursor.execute(_MATCH_IDENTITY, params)
        # A company's customers loaded just before (its first import, say) are not in the
        # statistics until autovacuum gets round to them, which on a big shared table can
        # be never: the planner then takes the company for one customer and compares each
        # of them with every imported row (15 s at 20k, minutes at 50k). Matching by phone
        # and email hash-joins whatever the statistics say.
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute(_MATCH_PHONE, params)
        cursor.execute(_MATCH_EMAIL, params)
        cursor.execute("SET LOCAL enable_nestloop = on")
        for statement in (_NEW_IDS, _NEW_PERSONAS, _IDENTITIES, _CONTACTS):
            cursor.execute(statement, params)
    if connection.enroll_new_customers:
        signup_bonus_give_bulk(company=connection.company,
                               personas_sql="SELECT persona_id FROM import_customers WHERE is_new")
    return skipped


def _merge(connection: Connection, *, file_key: str, drop_missing: bool = True) -> int:
    """Merge temp table `import_lines` into customers, sales and points. With
    `drop_missing`, the sales an earlier version of the same file brought and this one no
    longer has are removed (reports); an API source's batches never drop anything."""
    params = {
        "company_id": connection.company_id, "source_id": connection.source_id,
        "file_key": file_key, "enroll": connection.enroll_new_customers,
    }
    with db_connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS import_customers, import_txns, import_dropped, points_txns, "
                       "import_previous_owners, import_receipts")
        cursor.execute(_CUSTOMERS)
    customers_merge(connection, file_key=file_key)
    with db_connection.cursor() as cursor:
        for statement in (_PREVIOUS_OWNERS, _RECEIPTS):
            cursor.execute(statement, params)
        cursor.execute("ANALYZE import_receipts")
        cursor.execute(_TRANSACTIONS, params)
        cursor.execute("CREATE INDEX ON import_txns (external_id)")
        cursor.execute("CREATE INDEX ON import_txns (id)")
        cursor.execute("ANALYZE import_txns")
        cursor.execute("SELECT count(*) FROM import_txns")
        transactions = cursor.fetchone()[0]
        cursor.execute(_OLD_LINES)
        cursor.execute(_OLD_PAYMENTS)
        cursor.execute(_LINES)
        cursor.execute(_PAYMENTS)
        cursor.execute(_DROPPED if drop_missing else _NOTHING_DROPPED, params)
        cursor.execute("ANALYZE import_dropped")
        cursor.execute("CREATE TEMP TABLE points_txns ON COMMIT DROP AS "
                       "SELECT id FROM import_txns UNION ALL SELECT id FROM import_dropped")
        cursor.execute("ANALYZE points_txns")
        cursor.execute("UPDATE loyalty_transaction SET status = 'voided', updated_at = now() "
                       "WHERE id IN (SELECT id FROM import_dropped)")
    points_sync_for_transactions(company=connection.company, table="points_txns",
                                 reason=f"Receipt no longer in {file_key}")
    _personas_refresh(table="points_txns", previous_owners="import_previous_owners")
    _transactions_delete(table="import_dropped")
    return transactions


def transactions_remove(connection: Connection, *, table: str, reason: str) -> int:
    """Delete the sales whose ids are in temp table `table` (one column, `id`), reversing
    the points they earned. Runs inside the caller's database transaction."""
    with db_connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(f"UPDATE loyalty_transaction SET status = 'voided', updated_at = now() "
                       f"WHERE id IN (SELECT id FROM {table})")
        count = cursor.rowcount
    # Voided first, so the points sync reverses their earnings and the personas' last
    # purchase and favourite store no longer count them; then they go.
    points_sync_for_transactions(company=connection.company, table=table, reason=reason)
    _personas_refresh(table=table)
    _transactions_delete(table=table)
    return count


def transactions_attach_store(connection: Connection, *, location_id: str, store_id: int) -> int:
    """The sales of `connection` that waited for `location_id` to be mapped now belong to
    the store; their customers' favourite stores and markets follow. Returns how many."""
    with db_connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS attached_txns")
        cursor.execute(
            "CREATE TEMP TABLE attached_txns ON COMMIT DROP AS "
            "WITH moved AS (UPDATE loyalty_transaction SET store_id = %s, source_location = '', "
            "updated_at = now() WHERE source_id = %s AND source_location = %s AND store_id IS NULL "
            "RETURNING id) SELECT id FROM moved", [store_id, connection.source_id, location_id])
        cursor.execute("SELECT count(*) FROM attached_txns")
        attached = cursor.fetchone()[0]
    if attached:
        _personas_refresh(table="attached_txns")
    with db_connection.cursor() as cursor:
        cursor.execute("DROP TABLE attached_txns")
    return attached


def _transactions_delete(*, table: str) -> None:
    # The foreign keys' on_delete rules live in Django, not in the database, so the rows
    # that point at these sales are dealt with here: lines and payments go with them, the
    # ledger keeps its entries (the points history) without the link.
    ids = f"(SELECT id FROM {table})"
    with db_connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM loyalty_lineitem WHERE transaction_id IN {ids}")
        cursor.execute(f"DELETE FROM loyalty_payment WHERE transaction_id IN {ids}")
        cursor.execute(f"UPDATE loyalty_pointsentry SET transaction_id = NULL WHERE transaction_id IN {ids}")
        cursor.execute(f"DELETE FROM loyalty_transaction WHERE id IN {ids}")


_PERSONAS_REFRESH = """
WITH affected AS (
    SELECT persona_id FROM loyalty_transaction
    WHERE id IN (SELECT id FROM {table}) AND persona_id IS NOT NULL
    UNION
    SELECT persona_id FROM {previous_owners}
), per_store AS (
    SELECT t.persona_id, t.store_id, count(*) AS n, max(t.occurred_at) AS latest
    FROM loyalty_transaction t JOIN affected a ON a.persona_id = t.persona_id
    WHERE t.status = 'completed'
    GROUP BY t.persona_id, t.store_id
), favourite AS (
    SELECT DISTINCT ON (persona_id) persona_id, store_id FROM per_store
    WHERE store_id IS NOT NULL ORDER BY persona_id, n DESC, latest DESC
), latest AS (
    SELECT DISTINCT ON (p.persona_id) p.persona_id, p.latest, s.state
    FROM per_store p LEFT JOIN stores_retailstore s ON s.id = p.store_id
    ORDER BY p.persona_id, p.latest DESC
)
UPDATE loyalty_persona p SET
    last_purchase_at = l.latest,
    favourite_store_id = coalesce(f.store_id, p.favourite_store_id),
    market = CASE WHEN p.market = '' THEN coalesce(l.state, '') ELSE p.market END
FROM affected a
LEFT JOIN latest l ON l.persona_id = a.persona_id
LEFT JOIN favourite f ON f.persona_id = a.persona_id
WHERE p.id = a.persona_id
"""


def _personas_refresh(*, table: str, previous_owners: str | None = None) -> None:
    """Last purchase, favourite store and market of the personas these sales touch, and
    of those in temp table `previous_owners` (one column, `persona_id`)."""
    others = previous_owners or "(SELECT NULL::bigint AS persona_id WHERE false) AS none"
    with db_connection.cursor() as cursor:
        cursor.execute(_PERSONAS_REFRESH.format(table=table, previous_owners=others))


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
        with db_connection.cursor() as cursor:
            cursor.execute("DROP TABLE IF EXISTS file_txns")
            cursor.execute("CREATE TEMP TABLE file_txns ON COMMIT DROP AS SELECT id FROM loyalty_transaction "
                           "WHERE source_id = %s AND source_file = %s",
                           [connection.source_id, imported_file.key])
        removed = transactions_remove(connection, table="file_txns", reason=reason)
        with db_connection.cursor() as cursor:
            cursor.execute("DROP TABLE file_txns")
    return removed
