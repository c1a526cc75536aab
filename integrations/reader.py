"""Read a report file as a stream of typed rows, never the whole file at once.

Decoding, delimiter and header handling, and the per-cell parsing rules live here; the
importer only sees rows that are ready for COPY, and row errors that say where and why.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import datetime as dt
import hashlib
import io
import operator
import re
import zoneinfo
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

from loyalty.bounds import MONEY_MAX, MONEY_PLACES, QUANTITY_MAX, QUANTITY_PLACES, number_problem
from loyalty.phone import phone_normalize_or_blank
from loyalty.services.ingest import LINE_COLUMNS

from . import fields as F

SNIFF_BYTES = 64 * 1024
csv.field_size_limit(10 * 1024 * 1024)


class FileRejected(Exception):
    """The whole file cannot be imported; `message` says why, for the merchant."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class RowProblem(Exception):
    def __init__(self, column: str, value: str, reason: str):
        super().__init__(reason)
        self.column, self.value, self.reason = column, value, reason


def _fallback_decode(exc: UnicodeDecodeError):
    # A stray Windows-1252 byte in an otherwise UTF-8 file (an apostrophe pasted from
    # Word) reads as that character instead of failing the file.
    bad = exc.object[exc.start:exc.end]
    return bad.decode("cp1252", errors="replace") if bad else "", exc.end


codecs.register_error("report_fallback", _fallback_decode)


class _Replay(io.RawIOBase):
    """The bytes already sniffed, then the rest of the source stream; hashes all of it."""

    def __init__(self, head: bytes, stream):
        self.head, self.stream, self.sha = head, stream, hashlib.sha256(head)
        self.bytes_read = len(head)

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        if self.head:
            n = min(len(buffer), len(self.head))
            buffer[:n] = self.head[:n]
            self.head = self.head[n:]
            return n
        data = self.stream.read(len(buffer))
        if not data:
            return 0
        self.sha.update(data)
        self.bytes_read += len(data)
        buffer[:len(data)] = data
        return len(data)


def _read_head(stream) -> bytes:
    chunks, size = [], 0
    while size < SNIFF_BYTES:
        data = stream.read(SNIFF_BYTES - size)
        if not data:
            break
        chunks.append(data)
        size += len(data)
    return b"".join(chunks)


def detect_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        return "cp1252"


def detect_delimiter(first_line: str) -> str:
    """The one of comma, semicolon and tab that splits the header line most, outside quotes."""
    counts = {",": 0, ";": 0, "\t": 0}
    quoted = False
    for char in first_line:
        if char == '"':
            quoted = not quoted
        elif not quoted and char in counts:
            counts[char] += 1
    best = max(counts, key=lambda c: counts[c])
    return best if counts[best] else ","


def _looks_binary(head: bytes, encoding: str) -> bool:
    if encoding == "utf-16":
        return False
    if b"\x00" in head:
        return True
    controls = sum(1 for b in head[:4096] if b < 9 or 13 < b < 32)
    return controls > 8


# --- cell parsers -----------------------------------------------------------------------

_MONEY_JUNK = re.compile(r"[\s$€£¢,]")
_CURRENCY_AND_SPACE = re.compile(r"[\s$€£¢]")
_EURO_NUMBER = re.compile(r"^-?\d{1,3}(\.\d{3})*,\d{1,3}$|^-?\d+,\d{1,3}$")

DATE_FORMATS = ("%m/%d/%Y", "%m/%d/%y", "%Y/%m/%d", "%m-%d-%Y", "%d.%m.%Y")
DATETIME_FORMATS = (
    "%m/%d/%Y %I:%M %p", "%m/%d/%Y %I:%M:%S %p", "%m/%d/%Y %I:%M%p", "%m/%d/%Y %H:%M",
    "%m/%d/%Y %H:%M:%S", "%m/%d/%y %I:%M %p", "%m/%d/%y %H:%M", "%Y/%m/%d %H:%M:%S",
    "%Y-%m-%d %I:%M %p", "%Y-%m-%d %I:%M:%S %p",
)


def parse_amount(raw: str, *, decimal_comma: bool = False) -> Decimal:
    """`$1,234.50`, `1234.5`, `(12.00)` (negative) and, in semicolon files, `1.234,50`."""
    text = raw.strip()
    negative = text.startswith("(") and text.endswith(")")
    if negative:
        text = text[1:-1]
    if decimal_comma:
        # "€12,50" and "12,50 €" are 12.50 too: look past the currency sign.
        bare = _CURRENCY_AND_SPACE.sub("", text)
        if _EURO_NUMBER.match(bare):
            text = bare.replace(".", "").replace(",", ".")
    text = _MONEY_JUNK.sub("", text)
    if text.startswith("-$") or text.startswith("$-"):
        text = "-" + text[2:]
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise ValueError("is not an amount") from None
    if not value.is_finite():
        raise ValueError("is not an amount")
    return -value if negative else value


_US_DATETIME = re.compile(
    r"(\d{1,2})/(\d{1,2})/(\d{4})(?:[ T]+(\d{1,2}):(\d{2})(?::(\d{2}))?\s*([AaPp][Mm])?)?")


def _us_datetime(text: str) -> dt.datetime | None:
    """MM/DD/YYYY with an optional 12- or 24-hour time, without strptime's cost."""
    match = _US_DATETIME.fullmatch(text)
    if match is None:
        return None
    month, day, year, hour, minute, second, meridiem = match.groups()
    if hour is None:
        return dt.datetime(int(year), int(month), int(day), 12)
    hour = int(hour)
    if meridiem:
        if not 1 <= hour <= 12:
            raise ValueError(f"has hour {hour} with {meridiem.upper()}")
        hour = hour % 12 + (12 if meridiem.lower() == "pm" else 0)
    return dt.datetime(int(year), int(month), int(day), hour, int(minute), int(second or 0))


def parse_datetime(raw: str, tz: zoneinfo.ZoneInfo) -> dt.datetime:
    """ISO 8601 (with or without offset), US dates with 12- or 24-hour times, or a bare
    date (taken as noon, so it stays the same day in any US time zone)."""
    text = raw.strip()
    try:
        value = _us_datetime(text)
    except ValueError:
        raise ValueError("is not a date we can read (use YYYY-MM-DD or MM/DD/YYYY hh:mm AM)") from None
    if value is not None:
        return value.replace(tzinfo=tz)
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        value = None
        for fmt in DATETIME_FORMATS:
            try:
                value = dt.datetime.strptime(text.upper(), fmt)
                break
            except ValueError:
                continue
        if value is None:
            for fmt in DATE_FORMATS:
                try:
                    value = dt.datetime.strptime(text, fmt).replace(hour=12)
                    break
                except ValueError:
                    continue
        if value is None:
            raise ValueError("is not a date we can read (use YYYY-MM-DD or MM/DD/YYYY hh:mm AM)") from None
    else:
        if len(text) == 10:  # a bare ISO date
            value = value.replace(hour=12)
    if value.tzinfo is None:
        value = value.replace(tzinfo=tz)
    return value


def parse_date(raw: str) -> dt.date:
    text = raw.strip()
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError:
        pass
    for fmt in DATE_FORMATS:
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    for fmt in DATETIME_FORMATS:
        try:
            return dt.datetime.strptime(text.upper(), fmt).date()
        except ValueError:
            continue
    raise ValueError("is not a date we can read")


_FULFILLMENT = {
    "pickup": "pickup", "pick up": "pickup", "pick-up": "pickup", "curbside": "pickup",
    "in store pickup": "pickup", "online pickup": "pickup", "express": "pickup",
    "delivery": "delivery", "deliver": "delivery", "shipped": "delivery",
}


def parse_fulfillment(raw: str) -> str:
    text = re.sub(r"[_\-]+", " ", raw.strip().lower())
    return _FULFILLMENT.get(text, "delivery" if "deliver" in text else
                            "pickup" if "pick" in text else "in_store")


# --- rows -------------------------------------------------------------------------------

# The columns of loyalty's staging table, in COPY order.
STAGE_COLUMNS = LINE_COLUMNS


@dataclass
class StoreResolver:
    """Location value in a report -> our store id, by store mapping, then store name."""

    by_value: dict[str, int]
    timezones: dict[int, zoneinfo.ZoneInfo]
    default_store_id: int | None
    company_tz: zoneinfo.ZoneInfo

    def resolve(self, raw: str) -> int | None:
        text = raw.strip()
        if not text:
            return self.default_store_id
        return self.by_value.get(text.lower())


@dataclass
class RowError:
    row_number: int
    column: str
    value: str
    reason: str
    row: list[str]


@dataclass
class PreviewRow:
    row_number: int
    cells: list[str]
    problems: dict[int, str]  # column index -> why that cell rejects the row
    too_old: bool = False


@dataclass
class ReadStats:
    rows_total: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rows_too_old: int = 0
    errors: list[RowError] = field(default_factory=list)


class ReportReader:
    """Iterate `rows()` for COPY-ready tuples; bad rows go to `stats.errors`."""

    MAX_KEPT_ERRORS = 10_000
    CACHE_LIMIT = 200_000

    def __init__(self, stream, *, file_name: str, provider: str, header_map: dict[str, str],
                 stores: StoreResolver, country: str = "US", oldest: dt.datetime | None = None,
                 check_required: bool = True):
        self.file_name = file_name
        self.provider = provider
        self.stores = stores
        self.country = country
        self.oldest = oldest
        self.stats = ReadStats()
        head = _read_head(stream)
        if not head:
            raise FileRejected(f"{file_name} is empty (0 bytes).")
        self.encoding = detect_encoding(head)
        if _looks_binary(head, self.encoding):
            raise FileRejected(f"{file_name} is not a CSV text file: it holds binary data.")
        self._raw = _Replay(head, stream)
        errors = "strict" if self.encoding == "utf-16" else "report_fallback"
        self._text = io.TextIOWrapper(io.BufferedReader(self._raw, buffer_size=1 << 20),
                                      encoding=self.encoding, errors=errors, newline="")
        first_line = head.decode(self.encoding if self.encoding != "utf-16" else "utf-16",
                                 errors="ignore").lstrip("\ufeff").split("\n", 1)[0]
        self.delimiter = detect_delimiter(first_line)
        self._reader = csv.reader(self._text, delimiter=self.delimiter)
        try:
            header = next(self._reader)
        except StopIteration:
            raise FileRejected(f"{file_name} has no header row.") from None
        except (csv.Error, UnicodeError) as exc:
            raise FileRejected(f"{file_name} cannot be read as CSV: {exc}.") from None
        self.headers = [h.strip().lstrip("\ufeff") for h in header]
        if not any(self.headers):
            raise FileRejected(f"{file_name} has an empty first row; it must hold the column headers.")
        self.columns = F.resolve_headers(self.headers, header_map)
        present = set(self.columns.values())
        missing = [F.BY_NAME[name] for name in F.REQUIRED if name not in present]
        self.missing_required = [f.onedrive_header if provider == "onedrive" else f.s3_header
                                 for f in missing]
        if missing and check_required:
            wanted = [f.onedrive_header if provider == "onedrive" else f.s3_header for f in missing]
            raise FileRejected(
                f"{file_name} is missing the required column{'s' if len(wanted) > 1 else ''} "
                f"{', '.join(repr(w) for w in wanted)}. Headers found: "
                f"{', '.join(repr(h) for h in self.headers)}. Rename the headers in the file "
                f"or map them on the connection's header mapping page."
            )
        self.decimal_comma = self.delimiter == ";"
        self._dates: dict[tuple[str, int | None], dt.datetime] = {}
        self._amounts: dict[str, Decimal] = {}
        self._checked_amounts: dict[tuple[str, str], Decimal] = {}
        self._fulfillments: dict[str, str] = {}
        self._phones: dict[str, str] = {}
        self._birth_dates: dict[str, dt.date] = {}
        self._header_names: dict[str, str] = {}

    @property
    def content_hash(self) -> str:
        return self._raw.sha.hexdigest()

    @property
    def bytes_read(self) -> int:
        return self._raw.bytes_read

    def header_for(self, field_name: str) -> str:
        """The file's own name for a field's column, for messages."""
        return self._header(field_name)

    def _header(self, field_name: str) -> str:
        header = self._header_names.get(field_name)
        if header is None:
            header = F.BY_NAME[field_name].label
            for index, name in self.columns.items():
                if name == field_name:
                    header = self.headers[index]
            self._header_names[field_name] = header
        return header

    def _amount(self, raw: str, field_name: str) -> Decimal | None:
        # A value that passed its checks before passes them again: most cells repeat.
        kind = "quantity" if field_name == "quantity" else "money"
        checked = self._checked_amounts.get((raw, kind))
        if checked is not None:
            return checked
        value = self._amounts.get(raw)
        if value is None:
            if not raw or not raw.strip():
                return None
            try:
                value = parse_amount(raw, decimal_comma=self.decimal_comma)
            except ValueError as exc:
                raise RowProblem(self._header(field_name), raw, str(exc)) from None
            if len(self._amounts) > self.CACHE_LIMIT:
                self._amounts.clear()
            self._amounts[raw] = value
        if value < 0:
            raise RowProblem(self._header(field_name), raw,
                             "is negative; report returns as their own receipts")
        max_value, places = ((QUANTITY_MAX, QUANTITY_PLACES) if field_name == "quantity"
                             else (MONEY_MAX, MONEY_PLACES))
        problem = number_problem(value, max_value=max_value, places=places)
        if problem:
            raise RowProblem(self._header(field_name), raw, problem.replace(str(value), raw.strip(), 1))
        if len(self._checked_amounts) > self.CACHE_LIMIT:
            self._checked_amounts.clear()
        self._checked_amounts[(raw, kind)] = value
        return value

    def _fulfillment(self, raw: str) -> str:
        value = self._fulfillments.get(raw)
        if value is None:
            value = parse_fulfillment(raw)
            if len(self._fulfillments) > self.CACHE_LIMIT:
                self._fulfillments.clear()
            self._fulfillments[raw] = value
        return value

    def _phone(self, raw: str) -> str:
        value = self._phones.get(raw)
        if value is None:
            value = phone_normalize_or_blank(raw, country=self.country)  # a bad phone: '', the row stays
            if len(self._phones) > self.CACHE_LIMIT:
                self._phones.clear()
            self._phones[raw] = value
        return value

    def rows(self):
        """COPY-ready tuples in STAGE_COLUMNS order, one per good row."""
        columns = sorted(self.columns.items())
        names = [name for _, name in columns]
        indexes = [index for index, _ in columns]
        pick = operator.itemgetter(*indexes) if len(indexes) > 1 else (lambda cells: (cells[indexes[0]],))
        width = len(self.headers)
        stats = self.stats
        reader = self._reader
        line = reader.line_num
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                raise FileRejected(f"{self.file_name} line {reader.line_num}: {exc}.") from None
            row_number = line + 1  # where the record starts; quoted newlines span lines
            line = reader.line_num
            if not any(cells) or all(not c.strip() for c in cells):
                continue
            stats.rows_total += 1
            try:
                if len(cells) > width and any(c.strip() for c in cells[width:]):
                    raise RowProblem("", "", f"has {len(cells)} cells but the header has {width}")
                if len(cells) >= width:
                    values = dict(zip(names, pick(cells), strict=True))
                else:  # a short row: the missing cells are blank
                    values = {name: cells[i] if i < len(cells) else "" for i, name in columns}
                parsed = self._parse(values)
            except RowProblem as problem:
                stats.rows_rejected += 1
                if len(stats.errors) < self.MAX_KEPT_ERRORS:
                    stats.errors.append(RowError(row_number, problem.column, problem.value[:500],
                                                 problem.reason, cells))
                continue
            if parsed is None:
                stats.rows_too_old += 1
                continue
            stats.rows_accepted += 1
            yield (row_number, *parsed)

    def _parse(self, v: dict[str, str]):
        get = v.get
        transaction_id = get("transaction_id", "").strip()
        if not transaction_id:
            raise RowProblem(self._header("transaction_id"), "", "is empty; every row needs its receipt id")
        customer_id = get("customer_id", "").strip()
        if not customer_id:
            raise RowProblem(self._header("customer_id"), "", "is empty; every row needs its customer id")

        store_raw = get("store", "")
        store_id = self.stores.resolve(store_raw)
        if store_id is None:
            if store_raw.strip():
                raise RowProblem(self._header("store"), store_raw,
                                 "is not a store we know; add it to the connection's store mappings")
            raise RowProblem(self._header("store"), "",
                             "is empty and the connection has no default store")

        when_raw = get("occurred_at", "")
        if not when_raw.strip():
            raise RowProblem(self._header("occurred_at"), "", "is empty; every row needs its date")
        key = (when_raw, store_id)
        occurred_at = self._dates.get(key)
        if occurred_at is None:
            try:
                tz = self.stores.timezones.get(store_id, self.stores.company_tz)
                occurred_at = parse_datetime(when_raw, tz)
            except ValueError as exc:
                raise RowProblem(self._header("occurred_at"), when_raw, str(exc)) from None
            if len(self._dates) > self.CACHE_LIMIT:
                self._dates.clear()
            self._dates[key] = occurred_at

        quantity = self._amount(get("quantity", ""), "quantity")
        if quantity is None:
            quantity = Decimal(1)
        unit_price = self._amount(get("unit_price", ""), "unit_price")
        discount = self._amount(get("discount", ""), "discount") or Decimal(0)
        tax = self._amount(get("tax", ""), "tax") or Decimal(0)
        line_total = self._amount(get("line_total", ""), "line_total")
        if line_total is None and unit_price is None:
            raise RowProblem(self._header("line_total"), "",
                             "is empty and so is the unit price; a line needs one of them")
        if line_total is None:
            if quantity * unit_price > MONEY_MAX:
                raise RowProblem(self._header("quantity"), get("quantity", ""),
                                 f"× unit price {unit_price} is more than {MONEY_MAX:,}")
            line_total = max(Decimal(0), (quantity * unit_price - discount).quantize(Decimal("0.01")))
        if unit_price is None:
            unit_price = (line_total + discount) / quantity if quantity else line_total
            if unit_price > MONEY_MAX:
                raise RowProblem(self._header("quantity"), get("quantity", ""),
                                 f"makes the unit price {unit_price:,.2f}, more than {MONEY_MAX:,}")
            unit_price = unit_price.quantize(Decimal("0.01"))

        birth_raw = get("birth_date", "").strip()
        birth_date = None
        if birth_raw:
            birth_date = self._birth_dates.get(birth_raw)
            if birth_date is None:
                try:
                    birth_date = parse_date(birth_raw)
                except ValueError as exc:
                    raise RowProblem(self._header("birth_date"), birth_raw, str(exc)) from None
                if len(self._birth_dates) > self.CACHE_LIMIT:
                    self._birth_dates.clear()
                self._birth_dates[birth_raw] = birth_date

        if self.oldest is not None and occurred_at < self.oldest:
            return None

        email = get("email", "").strip().lower()
        if email and ("@" not in email or " " in email or len(email) > 254):
            email = ""
        phone_raw = get("phone", "").strip()
        phone = self._phone(phone_raw) if phone_raw else ""
        sku = get("sku", "").strip()[:100]
        product = (get("product", "").strip() or sku or "Unnamed item")[:300]
        return (
            transaction_id[:200], customer_id[:200], occurred_at, store_id,
            get("first_name", "").strip()[:100], get("last_name", "").strip()[:100], email, phone,
            birth_date, sku, product, get("brand", "").strip()[:200], get("category", "").strip()[:200],
            quantity, unit_price, discount, tax, line_total,
            get("payment_method", "").strip()[:60], self._fulfillment(get("fulfillment", "")),
            get("employee", "").strip()[:200],
        )

    def cell_problem(self, name: str, raw: str) -> str:
        """Why this one cell would reject its row, or ''."""
        text = raw.strip()
        try:
            if name in F.REQUIRED_VALUES and not text:
                return "is empty; every row needs it"
            if name == "occurred_at":
                parse_datetime(text, self.stores.company_tz)
            elif name == "store" and self.stores.resolve(raw) is None:
                return ("is not a store we know; add it to the store mappings" if text
                        else "is empty and the connection has no default store")
            elif name in ("quantity", "unit_price", "discount", "tax", "line_total"):
                self._amount(raw, name)
            elif name == "birth_date" and text:
                parse_date(text)
        except RowProblem as problem:
            return problem.reason
        except ValueError as exc:
            return str(exc)
        return ""

    def preview(self, limit: int = 20) -> list[PreviewRow]:
        """The first `limit` data rows as they would be imported, every problem on its cell."""
        out: list[PreviewRow] = []
        line = self._reader.line_num
        for cells in self._reader:
            row_number, line = line + 1, self._reader.line_num
            if all(not c.strip() for c in cells):
                continue
            problems: dict[int, str] = {}
            values: dict[str, str] = {}
            for index, name in self.columns.items():
                values[name] = cells[index] if index < len(cells) else ""
                reason = self.cell_problem(name, values[name])
                if reason:
                    problems[index] = reason
            too_old = False
            if not problems and not self.missing_required:
                try:
                    too_old = self._parse(values) is None
                except RowProblem as problem:  # a rule across cells, e.g. no total and no price
                    where = next((i for i in self.columns if self.headers[i] == problem.column), None)
                    if where is not None:
                        problems[where] = problem.reason
            out.append(PreviewRow(row_number, cells, problems, too_old))
            if len(out) >= limit:
                break
        return out

    def close(self) -> None:
        # Closing a half-read network stream may complain; there is nothing left to save.
        with contextlib.suppress(Exception):
            self._text.close()
