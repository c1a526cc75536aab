"""The streaming report reader and its cell parsers, without a database: what each kind of
file a merchant exports turns into, and exactly where and why a row is refused."""

import codecs
import datetime as dt
import hashlib
import io
import random
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from integrations.reader import (
    SNIFF_BYTES,
    STAGE_COLUMNS,
    FileRejected,
    ReportReader,
    StoreResolver,
    detect_delimiter,
    parse_amount,
    parse_date,
    parse_datetime,
)

UTC = dt.UTC
DENVER = ZoneInfo("America/Denver")
NEW_YORK = ZoneInfo("America/New_York")
DENVER_ID, NY_ID = 11, 22

HEADER = "ReceiptId,customerId,TransactionDate,Location,FirstName,ProductName,Quantity,LineTotal"


def resolver(default_store_id=None) -> StoreResolver:
    # The company is in Denver; the "Brooklyn" store keeps New York time, "Denver" has none
    # of its own and so keeps the company's.
    return StoreResolver(
        by_value={"denver": DENVER_ID, "brooklyn": NY_ID, "pdx-01": DENVER_ID},
        timezones={DENVER_ID: DENVER, NY_ID: NEW_YORK},
        default_store_id=default_store_id,
        company_tz=DENVER,
    )


def reader_for(data: bytes, *, provider="s3", header_map=None, oldest=None, stream=None,
               default_store_id=None) -> ReportReader:
    return ReportReader(stream or io.BytesIO(data), file_name="day.csv", provider=provider,
                        header_map=header_map or {}, stores=resolver(default_store_id), oldest=oldest)


def read(data: bytes, **kwargs) -> tuple[ReportReader, list[dict]]:
    reader = reader_for(data, **kwargs)
    rows = [dict(zip(STAGE_COLUMNS, row, strict=True)) for row in reader.rows()]
    return reader, rows


def errors_of(reader: ReportReader) -> list[tuple]:
    return [(e.row_number, e.column, e.value, e.reason) for e in reader.stats.errors]


class Trickle:
    """A network-like stream: never more than `step` bytes per read."""

    def __init__(self, data: bytes, step: int = 7):
        self.data, self.step, self.pos = data, step, 0

    def read(self, n=-1):
        n = self.step if n is None or n < 0 else min(n, self.step)
        chunk = self.data[self.pos:self.pos + n]
        self.pos += len(chunk)
        return chunk

    def close(self):
        pass


# --- encodings, line endings, delimiters, quoting ----------------------------------------


def test_utf8_with_bom_reads_the_first_header_without_the_bom():
    data = codecs.BOM_UTF8 + f"{HEADER}\nR1,C1,2026-03-07 10:00,Denver,Zoë,Gummies,1,10.00\n".encode()

    reader, rows = read(data)

    assert reader.encoding == "utf-8-sig"
    assert reader.headers[0] == "ReceiptId"
    assert [(r["transaction_id"], r["first_name"]) for r in rows] == [("R1", "Zoë")]


def test_crlf_line_endings_leave_no_carriage_return_in_the_last_column_and_count_lines():
    data = (f"{HEADER}\r\nR1,C1,2026-03-07 10:00,Denver,Ana,Gummies,1,10.00\r\n"
            "R2,C2,not a date,Denver,Bo,Gummies,1,4.00\r\n"
            "R3,C3,2026-03-07 11:00,Denver,Cy,Gummies,1,7.25\r\n").encode()

    reader, rows = read(data)

    assert [(r["row_no"], r["line_total"]) for r in rows] == [(2, Decimal("10.00")), (4, Decimal("7.25"))]
    assert reader.headers[-1] == "LineTotal"
    assert errors_of(reader) == [
        (3, "TransactionDate", "not a date",
         "is not a date we can read (use YYYY-MM-DD or MM/DD/YYYY hh:mm AM)"),
    ]


def test_latin1_and_windows_1252_bytes_decode_to_the_right_letters():
    data = (f"{HEADER},LastName\n".encode()
            + b"R1,C1,2026-03-07 10:00,Denver,Jos\xe9,Caf\xe9 Mints,1,3.00,O\x92Brien\n")

    reader, rows = read(data)

    assert reader.encoding == "cp1252"
    assert (rows[0]["first_name"], rows[0]["product"], rows[0]["last_name"]) == ("José", "Café Mints",
                                                                                 "O\u2019Brien")


def test_a_stray_windows_1252_byte_after_the_sniffed_head_of_a_utf8_file_reads_as_its_letter():
    filler = "".join(f"R{i},C{i},2026-03-07 10:00,Denver,Zoë,Gummies,1,1.00\n" for i in range(1500))
    data = f"{HEADER}\n{filler}".encode() + b"R9999,C9,2026-03-07 10:00,Denver,Jos\xe9,Gummies,1,1.00\n"
    assert len(data) > SNIFF_BYTES

    reader, rows = read(data)

    assert reader.encoding == "utf-8"
    assert rows[-1]["first_name"] == "José" and rows[0]["first_name"] == "Zoë"
    assert reader.stats.rows_accepted == 1501


def test_semicolon_file_with_decimal_commas():
    data = (b"ReceiptId;customerId;TransactionDate;Location;Quantity;UnitPrice;LineTotal;LineTax\n"
            b"R1;C1;2026-03-07 10:00;Denver;2;6,25;12,50;1,05\n"
            b"R2;C2;2026-03-07 10:00;Denver;1;1.234,50;1.234,50;0\n")

    reader, rows = read(data)

    assert reader.delimiter == ";"
    assert [(r["unit_price"], r["line_total"], r["tax"]) for r in rows] == [
        (Decimal("6.25"), Decimal("12.50"), Decimal("1.05")),
        (Decimal("1234.50"), Decimal("1234.50"), Decimal("0")),
    ]


def test_tab_delimited_file():
    data = (b"ReceiptId\tcustomerId\tTransactionDate\tLocation\tProductName\tLineTotal\n"
            b"R1\tC1\t2026-03-07 10:00\tDenver\tFlower, 3.5g\t$35.00\n")

    reader, rows = read(data)

    assert reader.delimiter == "\t"
    assert (rows[0]["product"], rows[0]["line_total"]) == ("Flower, 3.5g", Decimal("35.00"))


def test_quoted_commas_and_newlines_keep_row_numbers_on_the_right_line():
    data = (f"{HEADER}\n"
            'R1,C1,2026-03-07 10:00,Denver,Ana,"Flower, 3.5g\nHybrid\nindoor",1,"$1,234.50"\n'  # lines 2-4
            "R2,C2,2026-03-07 10:00,Nowhere,Bo,Gummies,1,5.00\n"  # line 5
            '"R3","C3","2026-03-07 10:00","Denver","Cy","Vape ""Cart""",1,2.00\n'  # line 6
            "R4,,2026-03-07 10:00,Denver,Di,Gummies,1,5.00\n").encode()  # line 7

    reader, rows = read(data)

    assert [(r["row_no"], r["product"], r["line_total"]) for r in rows] == [
        (2, "Flower, 3.5g\nHybrid\nindoor", Decimal("1234.50")),
        (6, 'Vape "Cart"', Decimal("2.00")),
    ]
    assert errors_of(reader) == [
        (5, "Location", "Nowhere", "is not a store we know; add it to the connection's store mappings"),
        (7, "customerId", "", "is empty; every row needs its customer id"),
    ]


def test_utf16_export_with_bom_reads():
    data = f"{HEADER}\r\nR1,C1,2026-03-07 10:00,Denver,Zoë,Gummies,1,10.00\r\n".encode("utf-16")

    reader, rows = read(data)

    assert (reader.encoding, rows[0]["first_name"], rows[0]["line_total"]) == ("utf-16", "Zoë",
                                                                               Decimal("10.00"))


def test_a_stream_that_hands_out_a_few_bytes_at_a_time_reads_the_same_and_is_hashed_whole():
    data = (f"{HEADER}\n" + "".join(f'R{i},C{i},2026-03-07 10:00,Denver,"A, {i}",Gummies,1,{i}.50\n'
                                    for i in range(300))).encode()

    whole = reader_for(data)
    whole_rows = list(whole.rows())
    trickled = reader_for(b"", stream=Trickle(data))
    trickled_rows = list(trickled.rows())

    assert trickled_rows == whole_rows and len(whole_rows) == 300
    assert trickled.content_hash == hashlib.sha256(data).hexdigest() == whole.content_hash
    assert trickled.bytes_read == len(data)


def test_blank_lines_are_skipped_without_shifting_row_numbers():
    data = (f"{HEADER}\n\nR1,C1,2026-03-07 10:00,Denver,Ana,Gummies,1,1.00\n,,,,,,,\n"
            "R2,C2,bad,Denver,Bo,Gummies,1,1.00\n").encode()

    reader, rows = read(data)

    assert [r["row_no"] for r in rows] == [3]
    assert [e[0] for e in errors_of(reader)] == [5]
    assert (reader.stats.rows_total, reader.stats.rows_accepted, reader.stats.rows_rejected) == (2, 1, 1)


@pytest.mark.parametrize(("first_line", "delimiter"), [
    ("a,b,c", ","), ("a;b;c", ";"), ("a\tb\tc", "\t"), ('"x;y",b,c', ","), ("single", ","),
])
def test_delimiter_is_the_one_that_splits_the_header_most_outside_quotes(first_line, delimiter):
    assert detect_delimiter(first_line) == delimiter


# --- money and dates ---------------------------------------------------------------------


@pytest.mark.parametrize(("raw", "decimal_comma", "value"), [
    ("$1,234.50", False, "1234.50"),
    ("1234.5", False, "1234.5"),
    (" 7 ", False, "7"),
    ("(12.00)", False, "-12.00"),
    ("-$5.00", False, "-5.00"),
    ("$-5.00", False, "-5.00"),
    ("12,50", True, "12.50"),
    ("1.234,50", True, "1234.50"),
    ("1 234,50", True, "1234.50"),
    ("$1,234.50", True, "1234.50"),
    ("€12,50", True, "12.50"),
    ("12,50 €", True, "12.50"),
    ("-12,50", True, "-12.50"),
])
def test_parse_amount(raw, decimal_comma, value):
    assert parse_amount(raw, decimal_comma=decimal_comma) == Decimal(value)


@pytest.mark.parametrize("raw", ["abc", "12.3.4", "NaN", "Infinity", "$", "1e"])
def test_parse_amount_refuses_what_is_not_money(raw):
    with pytest.raises(ValueError, match="is not an amount"):
        parse_amount(raw)


@pytest.mark.parametrize(("raw", "local"), [
    ("03/07/2026 02:15 PM", dt.datetime(2026, 3, 7, 14, 15)),
    ("3/7/2026 2:15 pm", dt.datetime(2026, 3, 7, 14, 15)),
    ("03/07/2026 12:05 AM", dt.datetime(2026, 3, 7, 0, 5)),
    ("03/07/2026 12:05 PM", dt.datetime(2026, 3, 7, 12, 5)),
    ("03/07/2026 02:15:30 PM", dt.datetime(2026, 3, 7, 14, 15, 30)),
    ("03/07/2026 14:15", dt.datetime(2026, 3, 7, 14, 15)),
    ("03/07/26 2:15 PM", dt.datetime(2026, 3, 7, 14, 15)),
    ("2026-03-07 14:15", dt.datetime(2026, 3, 7, 14, 15)),
    ("2026-03-07", dt.datetime(2026, 3, 7, 12, 0)),  # a bare date is noon, the same day everywhere
    ("03/07/2026", dt.datetime(2026, 3, 7, 12, 0)),
])
def test_parse_datetime_reads_local_times_in_the_given_zone(raw, local):
    assert parse_datetime(raw, NEW_YORK) == local.replace(tzinfo=NEW_YORK)


@pytest.mark.parametrize(("raw", "utc"), [
    ("2026-03-07T14:15:00-05:00", dt.datetime(2026, 3, 7, 19, 15, tzinfo=UTC)),
    ("2026-03-07T19:15:00Z", dt.datetime(2026, 3, 7, 19, 15, tzinfo=UTC)),
    ("2026-07-01T09:00:00+02:00", dt.datetime(2026, 7, 1, 7, 0, tzinfo=UTC)),
])
def test_parse_datetime_keeps_an_explicit_offset_whatever_the_zone(raw, utc):
    assert parse_datetime(raw, DENVER) == utc


@pytest.mark.parametrize("raw", ["13/45/2020", "yesterday", "2026-02-30", "03/07/2026 25:00 PM"])
def test_parse_datetime_refuses_what_is_not_a_date(raw):
    with pytest.raises(ValueError, match="is not a date we can read"):
        parse_datetime(raw, DENVER)


@pytest.mark.parametrize(("raw", "value"), [("1990-05-01", dt.date(1990, 5, 1)),
                                            ("05/01/1990", dt.date(1990, 5, 1)),
                                            ("1990-05-01T00:00:00", dt.date(1990, 5, 1))])
def test_parse_date(raw, value):
    assert parse_date(raw) == value


def test_us_dates_take_the_stores_time_zone_else_the_companys():
    data = (f"{HEADER}\n"
            "R1,C1,03/07/2026 02:15 PM,Brooklyn,Ana,Gummies,1,1.00\n"
            "R2,C2,03/07/2026 02:15 PM,Denver,Bo,Gummies,1,1.00\n"
            "R3,C3,2026-03-07T14:15:00-05:00,Denver,Cy,Gummies,1,1.00\n").encode()

    _, rows = read(data)

    # 7 March 2026 is before daylight saving time: New York is UTC-5, Denver UTC-7.
    assert [r["occurred_at"].astimezone(UTC) for r in rows] == [
        dt.datetime(2026, 3, 7, 19, 15, tzinfo=UTC),
        dt.datetime(2026, 3, 7, 21, 15, tzinfo=UTC),
        dt.datetime(2026, 3, 7, 19, 15, tzinfo=UTC),
    ]


# --- bad rows ------------------------------------------------------------------------------


def test_each_bad_row_is_recorded_with_row_column_value_and_reason_and_good_rows_pass():
    data = (f"{HEADER},UnitPrice,BirthDate\n"
            "R1,C1,2026-03-07 10:00,Denver,Ana,Gummies,1,10.00,,\n"  # 2 good
            "R2,C2,2026-03-07 10:00,Denver,Bo,Gummies,1,-5.00,,\n"  # 3 negative
            "R3,C3,2026-03-07 10:00,Denver,Cy,Gummies,1,(3.00),,\n"  # 4 negative, accounting style
            "R4,C4,13/45/2020,Denver,Di,Gummies,1,1.00,,\n"  # 5 bad date
            "R5,,2026-03-07 10:00,Denver,Ed,Gummies,1,1.00,,\n"  # 6 no customer
            "R6,C6,2026-03-07 10:00,Boulder,Fay,Gummies,1,1.00,,\n"  # 7 unknown store
            "R7,C7,2026-03-07 10:00,Denver,Gus,Gummies,abc,1.00,,\n"  # 8 bad quantity
            ",C8,2026-03-07 10:00,Denver,Hal,Gummies,1,1.00,,\n"  # 9 no receipt
            "R9,C9,,Denver,Ivy,Gummies,1,1.00,,\n"  # 10 no date
            "R10,C10,2026-03-07 10:00,Denver,Jo,Gummies,1,,,\n"  # 11 no total, no price
            "R11,C11,2026-03-07 10:00,Denver,Kim,Gummies,1,2.00,,31/31/1990\n"  # 12 bad birth date
            "R12,C12,2026-03-07 10:00,Denver,Lu,Gummies,2,,4.00,\n").encode()  # 13 good: 2 x 4.00

    reader, rows = read(data)

    assert [(r["row_no"], r["transaction_id"], r["line_total"]) for r in rows] == [
        (2, "R1", Decimal("10.00")), (13, "R12", Decimal("8.00"))]
    assert errors_of(reader) == [
        (3, "LineTotal", "-5.00", "is negative; report returns as their own receipts"),
        (4, "LineTotal", "(3.00)", "is negative; report returns as their own receipts"),
        (5, "TransactionDate", "13/45/2020",
         "is not a date we can read (use YYYY-MM-DD or MM/DD/YYYY hh:mm AM)"),
        (6, "customerId", "", "is empty; every row needs its customer id"),
        (7, "Location", "Boulder", "is not a store we know; add it to the connection's store mappings"),
        (8, "Quantity", "abc", "is not an amount"),
        (9, "ReceiptId", "", "is empty; every row needs its receipt id"),
        (10, "TransactionDate", "", "is empty; every row needs its date"),
        (11, "LineTotal", "", "is empty and so is the unit price; a line needs one of them"),
        (12, "BirthDate", "31/31/1990", "is not a date we can read"),
    ]
    # The rejected row is kept as read, for the downloadable CSV of rejected rows.
    assert reader.stats.errors[0].row == ["R2", "C2", "2026-03-07 10:00", "Denver", "Bo", "Gummies",
                                          "1", "-5.00", "", ""]
    stats = reader.stats
    assert (stats.rows_total, stats.rows_accepted, stats.rows_rejected, stats.rows_too_old) == (12, 2, 10, 0)


def test_a_row_longer_than_the_header_is_rejected():
    data = f"{HEADER}\nR1,C1,2026-03-07 10:00,Denver,Ana,Gummies,1,1.00,surprise\n".encode()

    reader, rows = read(data)

    assert rows == []
    assert errors_of(reader) == [(2, "", "", "has 9 cells but the header has 8")]


def test_no_store_column_uses_the_connections_default_store_else_the_row_is_rejected():
    data = b"ReceiptId,customerId,TransactionDate,LineTotal\nR1,C1,2026-03-07 10:00,1.00\n"

    _, rows = read(data, default_store_id=NY_ID)
    reader, no_rows = read(data)

    assert rows[0]["store_id"] == NY_ID
    assert no_rows == []
    assert errors_of(reader) == [(2, "Store / location", "",
                                  "is empty and the connection has no default store")]


def test_store_is_found_by_mapping_or_name_in_any_case():
    data = (f"{HEADER}\nR1,C1,2026-03-07 10:00,PDX-01,A,G,1,1\nR2,C2,2026-03-07 10:00,BROOKLYN,B,G,1,1\n"
            ).encode()

    _, rows = read(data)

    assert [r["store_id"] for r in rows] == [DENVER_ID, NY_ID]


def test_phone_is_normalised_and_a_bad_phone_or_email_loses_only_that_cell():
    data = (b"ReceiptId,customerId,TransactionDate,Location,Phone,Email,LineTotal\n"
            b"R1,C1,2026-03-07 10:00,Denver,(303) 555-0142,Ana@Example.COM,1\n"
            b"R2,C2,2026-03-07 10:00,Denver,12,not-an-email,1\n")

    reader, rows = read(data)

    assert [(r["phone"], r["email"]) for r in rows] == [("+13035550142", "ana@example.com"), ("", "")]
    assert reader.stats.rows_rejected == 0


def test_rows_older_than_the_cutoff_are_counted_not_errors():
    data = (f"{HEADER}\n"
            "R1,C1,2025-01-10 10:00,Denver,Ana,Gummies,1,1.00\n"
            "R2,C2,2026-03-07 10:00,Denver,Bo,Gummies,1,1.00\n"
            "R3,C3,2025-01-11 10:00,Denver,Cy,Gummies,1,-1.00\n").encode()  # old and bad: an error

    reader, rows = read(data, oldest=dt.datetime(2025, 3, 7, tzinfo=UTC))

    assert [r["transaction_id"] for r in rows] == ["R2"]
    assert (reader.stats.rows_too_old, reader.stats.rows_rejected) == (1, 1)
    assert [e[0] for e in errors_of(reader)] == [4]


# --- whole-file rejections -------------------------------------------------------------------


def test_missing_required_columns_name_them_and_the_headers_found():
    with pytest.raises(FileRejected) as caught:
        reader_for(b"Date,Store,Total\n2026-03-07,Denver,1.00\n")

    assert caught.value.message == (
        "day.csv is missing the required columns 'ReceiptId', 'customerId'. Headers found: 'Date', "
        "'Store', 'Total'. Rename the headers in the file or map them on the connection's header "
        "mapping page.")


def test_one_missing_column_is_named_alone():
    with pytest.raises(FileRejected) as caught:
        reader_for(b"ReceiptId,TransactionDate,LineTotal\nR1,2026-03-07,1.00\n")

    assert "missing the required column 'customerId'. Headers found: 'ReceiptId', 'TransactionDate', " \
           "'LineTotal'." in caught.value.message


def test_onedrive_requires_transaction_id_and_patient_number():
    with pytest.raises(FileRejected) as caught:
        reader_for(b"ReceiptNo,Customer Name,Total\n1,Ana,2.00\n", provider="onedrive")
    assert "missing the required columns 'TransactionID', 'Patient Number'. Headers found: 'ReceiptNo', " \
           "'Customer Name', 'Total'." in caught.value.message

    reader, rows = read(b"TransactionID,Patient Number,Transaction Date,Location,Total\n"
                        b"T-1,P-77,03/07/2026 02:15 PM,Denver,$9.99\n", provider="onedrive")
    assert [(r["transaction_id"], r["customer_id"], r["line_total"]) for r in rows] == [
        ("T-1", "P-77", Decimal("9.99"))]


def test_a_saved_header_map_renames_columns_before_the_required_check():
    data = b"Ticket #,Member,When,Shop,Net\nT1,M1,03/07/2026 02:15 PM,Denver,4.00\n"

    _, rows = read(data, header_map={"Ticket #": "transaction_id", "Member": "customer_id",
                                     "When": "occurred_at", "Shop": "store", "Net": "line_total"})

    assert [(r["transaction_id"], r["customer_id"], r["line_total"]) for r in rows] == [
        ("T1", "M1", Decimal("4.00"))]


def test_empty_file_is_rejected():
    with pytest.raises(FileRejected, match=r"^day\.csv is empty \(0 bytes\)\.$"):
        reader_for(b"")


@pytest.mark.parametrize("data", [
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x10\x00\x00\x00\x10\x08\x06\x00\x00\x00\x1f\xf3\xffa",
    random.Random(4).randbytes(5000) + b"\x00",
    b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00",  # an .xlsx saved as .csv
])
def test_binary_file_is_rejected(data):
    with pytest.raises(FileRejected, match=r"^day\.csv is not a CSV text file: it holds binary data\.$"):
        reader_for(data)


@pytest.mark.parametrize("data", [f"{HEADER}".encode(), f"{HEADER}\r\n".encode(),
                                  codecs.BOM_UTF8 + f"{HEADER}\n\n\n".encode()])
def test_a_file_with_only_headers_reads_zero_rows(data):
    reader, rows = read(data)

    assert rows == [] and reader.stats.errors == []
    assert reader.headers == HEADER.split(",")
    assert reader.stats.rows_total == 0


def test_blank_first_line_is_rejected():
    with pytest.raises(FileRejected, match="empty first row"):
        reader_for(b",,,\nR1,C1,2026-03-07,1\n")


def test_random_bytes_without_nuls_are_rejected_as_binary_too():
    rng = random.Random(7)
    data = bytes(rng.randrange(1, 256) for _ in range(4000))
    assert b"\x00" not in data
    with pytest.raises(FileRejected, match="binary data"):
        reader_for(data)


def test_preview_marks_the_bad_cell_and_leaves_an_unmapped_required_column_to_the_banner():
    data = (b"Ticket,customerId,TransactionDate,LineTotal\n"
            b"T1,C1,13/45/2026,10.00\n"
            b"T2,C2,03/07/2026 02:15 PM,-4.00\n")
    reader = ReportReader(io.BytesIO(data), file_name="s.csv", provider="s3",
                          header_map={"Ticket": ""}, stores=resolver(default_store_id=1),
                          check_required=False)
    assert reader.missing_required == ["ReceiptId"]
    first, second = reader.preview()
    assert list(first.problems) == [2] and "date" in first.problems[2]
    assert list(second.problems) == [3] and "negative" in second.problems[3]
