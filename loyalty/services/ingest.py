"""Bulk sales into loyalty: the one code that turns staged rows into personas, their
identities, sales, line items, payments and points.

Every bulk source (report files from S3, OneDrive or a folder; a POS API such as Cova)
stages its rows in session temp tables of the shapes below, then calls
`sales_merge_staged` inside its own database transaction. The source only reads, checks
and stages; everything written to loyalty's tables is written here, set-wise.

Staging shapes
--------------
*Lines that carry their customer* (a report file, one row per line item), temp table
`import_lines` (`lines_staging_create`, COPY columns `LINE_COLUMNS`):

    row_no          the row's number in the file; a sale's lines are numbered from its first row
    transaction_id  the source's receipt id (with the source, the sale's idempotency key)
    customer_id     the source's customer id; '' for a sale without a customer
    occurred_at     when the sale happened (timestamptz)
    store_id        our store, or NULL while the source's location is not mapped
    first_name, last_name, email (lower case), phone (E.164), birth_date
                    the customer as this row says; blank keeps what we know
    sku, product, brand, category, quantity, unit_price, discount, tax, line_total
                    the line; amounts already checked against loyalty.bounds
    payment_method  how the receipt was paid (its total, as one payment); NULL for none
    fulfillment     in_store, pickup or delivery
    employee        who rang it up
    source_location the source's location id of a sale whose store is not mapped yet

*Customers, lines and payments apart* (a POS API), temp tables made by
`api_staging_create` (they outlive the transaction: a sync stages before it merges, and
drops them with `api_staging_drop`):

    staged_customers  seq (the order read; a customer read twice keeps the later), customer_id,
                      first_name, last_name, email, phone, birth_date, market (a state code;
                      blank keeps ours), traits (jsonb: custom traits to set; a key whose
                      value is null or '' is removed), first_seen, survivor_id (the customer
                      the source merged this one into; itself when not merged)
    staged_lines      as `import_lines` without the customer's details and payment method; the
                      customer_id may be a merged-away customer's (the survivor gets the sale)
                      or one never seen (the sale lands without a customer)
    staged_payments   transaction_id, method, amount

Merge rules (one place)
-----------------------
- A customer is matched by the source's identity (PersonaIdentity: source + external id),
  else by phone, else by email (case-insensitive), within the company; otherwise a new
  persona is made, *sourced from* the source, a member at once when the source enrolls new
  customers. Identities are recorded; contact details follow the newest row and blank
  cells keep what we know. A customer erased at their request is not brought back: their
  sales land without a customer.
- A customer the source merged into another: the two personas become one
  (`persona_merge`), and the merged-away id becomes another identity of the survivor.
- A sale is unique per (company, source, external id): sent again it is replaced whole
  (its lines and payments too), never duplicated. A sale whose sums the amount columns
  cannot hold, or that could earn more than POINTS_MAX points, is left out and named.
- With `drop_missing` (a report file read again), sales an earlier version of the same
  file brought and this one lacks are voided, their points reversed, and deleted.
- Points follow each sale (`points_sync_for_transactions`): earned, moved to a new owner,
  reversed; the personas' last purchase, favourite store and market follow their sales.
"""

from __future__ import annotations

import csv
import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal

from django.db import connection as db_connection

from ..bounds import MONEY_MAX, POINTS_MAX
from ..models import Tier
from ..selectors import loyalty_program_get
from .personas import persona_merge
from .points_bulk import points_sync_for_transactions, signup_bonus_give_bulk
from .privacy import SKIPPED_ERASED, erased_identities

logger = logging.getLogger(__name__)


# --- staging ----------------------------------------------------------------------------

class StagingCopy:
    """Rows into a staging table through COPY, buffered: `add` each row (None is NULL, and
    so is '' in a column COPY reads unquoted), `flush` at the end. A full buffer is sent by
    itself, as one COPY, so other statements may run between chunks; `on_flush` is called
    after each."""

    def __init__(self, cursor, table: str, columns: tuple[str, ...], *, chunk_rows: int = 5000,
                 on_flush: Callable[[], None] | None = None):
        self.cursor, self.table, self.chunk_rows, self.on_flush = cursor, table, chunk_rows, on_flush
        self.statement = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT csv)"
        self.buffer = io.StringIO()
        self.writer = csv.writer(self.buffer, lineterminator="\n")
        self.pending = self.rows = 0

    def add(self, row) -> None:
        self.writer.writerow(row)
        self.pending += 1
        self.rows += 1
        if self.pending >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self.pending:
            return
        with self.cursor.cursor.copy(self.statement) as copy:
            copy.write(self.buffer.getvalue())
        self.buffer.seek(0)
        self.buffer.truncate()
        self.pending = 0
        if self.on_flush is not None:
            self.on_flush()


# The columns of `import_lines`, in COPY order.
LINE_COLUMNS = (
    "row_no", "transaction_id", "customer_id", "occurred_at", "store_id", "first_name",
    "last_name", "email", "phone", "birth_date", "sku", "product", "brand", "category",
    "quantity", "unit_price", "discount", "tax", "line_total", "payment_method", "fulfillment",
    "employee",
)

_LINES_TABLE = """
CREATE TEMP TABLE import_lines (
    row_no integer, transaction_id text, customer_id text, occurred_at timestamptz,
    store_id bigint, first_name text, last_name text, email text, phone text, birth_date date,
    sku text, product text, brand text, category text, quantity numeric, unit_price numeric,
    discount numeric, tax numeric, line_total numeric, payment_method text, fulfillment text,
    employee text, source_location text
) ON COMMIT DROP
"""


def lines_staging_create(cursor) -> None:
    """A fresh, empty `import_lines` (dropped at commit)."""
    cursor.execute("DROP TABLE IF EXISTS import_lines")
    cursor.execute(_LINES_TABLE)


def lines_staging_analyze(cursor) -> None:
    """Statistics on `import_lines` once it is filled: autovacuum never analyzes temp tables."""
    # A small sample is plenty for the planner to pick hash joins over nested loops.
    cursor.execute("SET LOCAL default_statistics_target = 10")
    cursor.execute("ANALYZE import_lines")
    cursor.execute("RESET default_statistics_target")


CUSTOMER_COLUMNS = ("seq", "customer_id", "first_name", "last_name", "email", "phone", "birth_date", "market",
                    "traits", "first_seen", "survivor_id")
API_LINE_COLUMNS = ("row_no", "transaction_id", "customer_id", "occurred_at", "store_id", "sku", "product",
                    "brand", "category", "quantity", "unit_price", "discount", "tax", "line_total",
                    "fulfillment", "employee", "source_location")
PAYMENT_COLUMNS = ("transaction_id", "method", "amount")

_API_STAGING = (
    """CREATE TEMP TABLE staged_customers (
        seq bigint, customer_id text, first_name text, last_name text, email text, phone text,
        birth_date date, market text, traits jsonb, first_seen timestamptz, survivor_id text)""",
    """CREATE TEMP TABLE staged_lines (
        row_no integer, transaction_id text, customer_id text, occurred_at timestamptz,
        store_id bigint, sku text, product text, brand text, category text, quantity numeric,
        unit_price numeric, discount numeric, tax numeric, line_total numeric, fulfillment text,
        employee text, source_location text)""",
    "CREATE TEMP TABLE staged_payments (transaction_id text, method text, amount numeric)",
)
_API_STAGED = ("staged_customers", "staged_lines", "staged_payments")


def api_staging_create(cursor) -> None:
    """Fresh, empty `staged_customers`, `staged_lines` and `staged_payments`."""
    cursor.execute(f"DROP TABLE IF EXISTS {', '.join(_API_STAGED)}")
    for statement in _API_STAGING:
        cursor.execute(statement)


def api_staging_drop() -> None:
    try:
        with db_connection.cursor() as cursor:
            cursor.execute(f"DROP TABLE IF EXISTS {', '.join(_API_STAGED)}")
    except Exception:  # the connection itself is gone; its temp tables went with it
        logger.warning("could not drop the staging tables", exc_info=True)


# --- what to merge, and what came of it -------------------------------------------------

@dataclass(frozen=True)
class Batch:
    """What a source staged, and how it merges.

    `file_key`: the report file the sales come from ('' for an API source); with
    `drop_missing`, the sales an earlier version of that file brought and this one lacks
    go. `customers`: the API shape (`staged_customers`, `staged_lines`, `staged_payments`)
    instead of `import_lines`; `payments`: `staged_payments` holds the sales' payments.
    `enroll`: new customers join the loyalty program. `noun`: what a row error calls a
    sale ("receipt", "Cova sale")."""

    file_key: str = ""
    drop_missing: bool = False
    customers: bool = False
    payments: bool = False
    enroll: bool = False
    noun: str = "receipt"


@dataclass
class MergeOutcome:
    transactions: int = 0  # sales written (new or replaced)
    new_sales: int = 0  # of which new
    customers_skipped: int = 0  # customers erased at their request, not brought back
    # Sales left out because their sums do not fit: (sale id, its row numbers, the column
    # to blame, why).
    too_large: list[tuple[str, list[int], str, str]] = field(default_factory=list)

    @property
    def rejected_lines(self) -> int:
        return sum(len(rows) for _sale, rows, _column, _reason in self.too_large)


def sales_merge_staged(*, company, source, batch: Batch) -> MergeOutcome:
    """Merge what `source` (a loyalty Source of `company`) staged into customers, sales and
    points, inside the caller's database transaction (which should hold the source's
    connection row lock: two merges of one source never run at once)."""
    if batch.customers:
        return _api_merge(company=company, source=source, batch=batch)
    with db_connection.cursor() as cursor:
        too_large = _receipts_too_large(cursor, points_rate=best_points_rate(company.pk), noun=batch.noun)
    outcome = _lines_merge(company=company, source=source, batch=batch)
    outcome.too_large = too_large
    return outcome


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


def _receipts_too_large(cursor, *, points_rate: Decimal,
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


def _erased_customers_skip(cursor, *, company, source) -> int:
    """Take out of `import_customers` the customers whose phone, email or id in this source
    belongs to a customer erased at their request (loyalty.services.privacy tombstones):
    they are not brought back, and their sales land without a customer. Returns how many."""
    erased = erased_identities(company=company.pk)
    if not erased.digests:
        return 0
    cursor.execute("SELECT customer_id, phone, email FROM import_customers")
    skipped = [customer_id for customer_id, phone, email in cursor.fetchall()
               if erased.match(phone=phone or "", email=email or "", source_id=source.pk,
                               external_id=customer_id)]
    if skipped:
        cursor.execute("DELETE FROM import_customers WHERE customer_id = ANY(%s)", [skipped])
        logger.info("%s of %s: %d customer(s) skipped, %s", company.pk, source.name,
                    len(skipped), SKIPPED_ERASED)
    return len(skipped)


def _customers_merge(*, company, source, enroll: bool) -> int:
    """Match the customers in temp table `import_customers` (customer_id, first_name,
    last_name, email, phone, birth_date, first_seen, persona_id, is_new) to personas: by
    this source's identity, else phone, else email; create the rest; record identities;
    bring contact details up to date. Fills persona_id and is_new. Customers erased at
    their request are skipped (their sales stay anonymous); returns how many were."""
    params = {"company_id": company.pk, "source_id": source.pk, "enroll": enroll}
    with db_connection.cursor() as cursor:
        skipped = _erased_customers_skip(cursor, company=company, source=source)
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
    if enroll:
        signup_bonus_give_bulk(company=company,
                               personas_sql="SELECT persona_id FROM import_customers WHERE is_new")
    return skipped


def _lines_merge(*, company, source, batch: Batch) -> MergeOutcome:
    """Merge temp table `import_lines` into customers, sales and points. With
    `batch.drop_missing`, the sales an earlier version of the same file brought and this
    one no longer has are removed (reports); an API source's batches never drop anything."""
    params = {"company_id": company.pk, "source_id": source.pk, "file_key": batch.file_key,
              "enroll": batch.enroll}
    with db_connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS import_customers, import_txns, import_dropped, points_txns, "
                       "import_previous_owners, import_receipts")
        cursor.execute(_CUSTOMERS)
    skipped = _customers_merge(company=company, source=source, enroll=batch.enroll)
    with db_connection.cursor() as cursor:
        for statement in (_PREVIOUS_OWNERS, _RECEIPTS):
            cursor.execute(statement, params)
        cursor.execute("ANALYZE import_receipts")
        cursor.execute(_TRANSACTIONS, params)
        cursor.execute("CREATE INDEX ON import_txns (external_id)")
        cursor.execute("CREATE INDEX ON import_txns (id)")
        cursor.execute("ANALYZE import_txns")
        cursor.execute("SELECT count(*), count(*) FILTER (WHERE inserted) FROM import_txns")
        transactions, new_sales = cursor.fetchone()
        cursor.execute(_OLD_LINES)
        cursor.execute(_OLD_PAYMENTS)
        cursor.execute(_LINES)
        cursor.execute(_PAYMENTS)
        cursor.execute(_DROPPED if batch.drop_missing else _NOTHING_DROPPED, params)
        cursor.execute("ANALYZE import_dropped")
        cursor.execute("CREATE TEMP TABLE points_txns ON COMMIT DROP AS "
                       "SELECT id FROM import_txns UNION ALL SELECT id FROM import_dropped")
        cursor.execute("ANALYZE points_txns")
        cursor.execute("UPDATE loyalty_transaction SET status = 'voided', updated_at = now() "
                       "WHERE id IN (SELECT id FROM import_dropped)")
    points_sync_for_transactions(company=company, table="points_txns",
                                 reason=f"Receipt no longer in {batch.file_key}")
    _personas_refresh(table="points_txns", previous_owners="import_previous_owners")
    _transactions_delete(table="import_dropped")
    return MergeOutcome(transactions=transactions, new_sales=new_sales, customers_skipped=skipped)


# The API shape. Customers, then their traits from the source: market and custom traits
# (audiences can use them). A merged-away duplicate is not a customer of its own: its id
# becomes another identity of the survivor's persona, so its sales find the survivor.
_CUSTOMERS_FROM_STAGE = """
CREATE TEMP TABLE import_customers ON COMMIT DROP AS
SELECT customer_id, coalesce(first_name, '') AS first_name, coalesce(last_name, '') AS last_name,
       coalesce(email, '') AS email, coalesce(phone, '') AS phone, birth_date,
       coalesce(market, '') AS market, traits, first_seen,
       NULL::bigint AS persona_id, false AS is_new
FROM staged_customers WHERE survivor_id = customer_id
"""
_TRAITS = """
UPDATE loyalty_persona p SET
    market = CASE WHEN c.market <> '' THEN c.market ELSE p.market END,
    custom_traits = CASE WHEN c.traits IS NULL THEN p.custom_traits
        ELSE (p.custom_traits - ARRAY(SELECT key FROM jsonb_each_text(c.traits)
                                      WHERE coalesce(value, '') = ''))
             || coalesce((SELECT jsonb_object_agg(key, value) FROM jsonb_each_text(c.traits)
                          WHERE coalesce(value, '') <> ''), '{}'::jsonb) END,
    updated_at = now()
FROM import_customers c
WHERE p.id = c.persona_id
"""
_MERGED_IDENTITIES = """
INSERT INTO loyalty_personaidentity (company_id, persona_id, source_id, external_id, created_at)
SELECT %(company_id)s, i.persona_id, %(source_id)s, d.customer_id, now()
FROM staged_customers d
JOIN loyalty_personaidentity i ON i.source_id = %(source_id)s AND i.external_id = d.survivor_id
WHERE d.survivor_id <> d.customer_id
ON CONFLICT (source_id, external_id) DO NOTHING
"""
# A customer the source merged away whose persona is not the survivor's: the two personas
# are one customer. Asked again after each merge, since a merge moves identities (chains
# of merges, and several ids on one persona, then resolve by themselves).
_NEXT_MERGED_PAIR = """
SELECT s.persona_id, i.persona_id
FROM staged_customers d
JOIN loyalty_personaidentity i ON i.source_id = %(source_id)s AND i.external_id = d.customer_id
JOIN loyalty_personaidentity s ON s.source_id = %(source_id)s AND s.external_id = d.survivor_id
WHERE d.survivor_id <> d.customer_id AND s.persona_id <> i.persona_id
ORDER BY 1, 2
LIMIT 1
"""
# A sale's customer is the survivor of a merged-away customer; a customer not staged (not
# synced: another market, say) and never seen makes the sale a walk-in's.
_LINES_FROM_STAGE = """
CREATE TEMP TABLE import_lines ON COMMIT DROP AS
SELECT l.row_no, l.transaction_id,
       CASE WHEN EXISTS (SELECT 1 FROM staged_customers c WHERE c.customer_id = b.id)
              OR EXISTS (SELECT 1 FROM loyalty_personaidentity i
                         WHERE i.source_id = %(source_id)s AND i.external_id = b.id)
            THEN b.id ELSE '' END AS customer_id,
       l.occurred_at, l.store_id,
       ''::text AS first_name, ''::text AS last_name, ''::text AS email, ''::text AS phone,
       NULL::date AS birth_date, coalesce(l.sku, '') AS sku, coalesce(l.product, '') AS product,
       coalesce(l.brand, '') AS brand, coalesce(l.category, '') AS category, l.quantity, l.unit_price,
       coalesce(l.discount, 0) AS discount, coalesce(l.tax, 0) AS tax, l.line_total,
       NULL::text AS payment_method, coalesce(l.fulfillment, 'in_store') AS fulfillment,
       coalesce(l.employee, '') AS employee, coalesce(l.source_location, '') AS source_location
FROM staged_lines l
LEFT JOIN staged_customers d ON d.customer_id = l.customer_id
CROSS JOIN LATERAL (SELECT coalesce(d.survivor_id, l.customer_id, '') AS id) b
"""
_PAYMENTS_FROM_STAGE = """
INSERT INTO loyalty_payment (transaction_id, method, amount)
SELECT t.id, left(coalesce(p.method, ''), 60), p.amount FROM staged_payments p
JOIN import_txns t ON t.external_id = p.transaction_id
"""


def _api_merge(*, company, source, batch: Batch) -> MergeOutcome:
    """The API shape: customers first (with their traits and the source's own merges),
    then the sales, which find their customers by id."""
    params = {"company_id": company.pk, "source_id": source.pk}
    with db_connection.cursor() as cursor:
        cursor.execute("ANALYZE staged_customers")
        cursor.execute("DROP TABLE IF EXISTS import_customers")
        cursor.execute(_CUSTOMERS_FROM_STAGE)
    skipped = _customers_merge(company=company, source=source, enroll=batch.enroll)
    with db_connection.cursor() as cursor:
        cursor.execute(_TRAITS, params)
        while True:
            cursor.execute(_NEXT_MERGED_PAIR, params)
            pair = cursor.fetchone()
            if pair is None:
                break
            persona_merge(company=company, survivor_id=pair[0], duplicate_id=pair[1],
                          reason=f"Merged in {source.get_kind_display()} ({source.name})")
        cursor.execute(_MERGED_IDENTITIES, params)
        cursor.execute("DROP TABLE import_customers")
        cursor.execute("DROP TABLE IF EXISTS import_lines")
        cursor.execute(_LINES_FROM_STAGE, params)
        # A sale whose sums our columns cannot hold (or that would earn past POINTS_MAX) is
        # left out and named; the others land.
        too_large = _receipts_too_large(cursor, points_rate=best_points_rate(company.pk), noun=batch.noun)
        cursor.execute("ANALYZE import_lines")
        cursor.execute("SELECT EXISTS (SELECT 1 FROM staged_lines)")
        has_lines = cursor.fetchone()[0]
    outcome = MergeOutcome(customers_skipped=skipped)
    if has_lines:
        merged = _lines_merge(company=company, source=source,
                              batch=Batch(file_key="", drop_missing=False, enroll=batch.enroll))
        outcome.transactions, outcome.new_sales = merged.transactions, merged.new_sales
        if batch.payments:
            with db_connection.cursor() as cursor:
                # The merge already took away the payments of sales seen before.
                cursor.execute(_PAYMENTS_FROM_STAGE)
    outcome.too_large = too_large
    return outcome


# --- removing and moving sales ----------------------------------------------------------

def transactions_remove(*, company, table: str, reason: str) -> int:
    """Delete the sales whose ids are in temp table `table` (one column, `id`), reversing
    the points they earned. Runs inside the caller's database transaction."""
    with db_connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {table}")
        cursor.execute(f"UPDATE loyalty_transaction SET status = 'voided', updated_at = now() "
                       f"WHERE id IN (SELECT id FROM {table})")
        count = cursor.rowcount
    # Voided first, so the points sync reverses their earnings and the personas' last
    # purchase and favourite store no longer count them; then they go.
    points_sync_for_transactions(company=company, table=table, reason=reason)
    _personas_refresh(table=table)
    _transactions_delete(table=table)
    return count


def source_transactions_remove(*, company, source_id: int, reason: str, file_key: str | None = None) -> int:
    """Delete every sale of a source (or only those `file_key` brought), reversing the
    points they earned. Runs inside the caller's database transaction. Returns how many."""
    which = "source_id = %s" if file_key is None else "source_id = %s AND source_file = %s"
    with db_connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS source_txns")
        cursor.execute(f"CREATE TEMP TABLE source_txns ON COMMIT DROP AS SELECT id FROM loyalty_transaction "
                       f"WHERE {which}", [source_id] if file_key is None else [source_id, file_key])
    removed = transactions_remove(company=company, table="source_txns", reason=reason)
    with db_connection.cursor() as cursor:
        cursor.execute("DROP TABLE source_txns")
    return removed


def transactions_attach_store(*, source_id: int, location_id: str, store_id: int) -> int:
    """The sales of the source that waited for `location_id` to be mapped now belong to
    the store; their customers' favourite stores and markets follow. Returns how many."""
    with db_connection.cursor() as cursor:
        cursor.execute("DROP TABLE IF EXISTS attached_txns")
        cursor.execute(
            "CREATE TEMP TABLE attached_txns ON COMMIT DROP AS "
            "WITH moved AS (UPDATE loyalty_transaction SET store_id = %s, source_location = '', "
            "updated_at = now() WHERE source_id = %s AND source_location = %s AND store_id IS NULL "
            "RETURNING id) SELECT id FROM moved", [store_id, source_id, location_id])
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
        # The sales just written are not in the statistics yet (a first import into an
        # empty table reads as empty): a nested loop would compare every touched customer
        # with every sale, minutes at 30k sales. Hash joins whatever the statistics say.
        cursor.execute("SET LOCAL enable_nestloop = off")
        cursor.execute(_PERSONAS_REFRESH.format(table=table, previous_owners=others))
        cursor.execute("SET LOCAL enable_nestloop = on")
