"""Report files into customers, sales and points, through the Folder connection (a sync, as
the merchant runs it) and `report_file_import` itself: what lands, what is refused and why,
and that a file lands whole or not at all."""

import datetime as dt
import io
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.db import connection as db_connection
from django.db.models import Sum

from integrations.models import ImportedFile, RowError
from integrations.providers import ReportFile
from integrations.services import imports
from integrations.services.connections import connection_header_map_save, store_mapping_set
from integrations.services.imports import report_file_import
from loyalty.models import LineItem, Payment, Persona, PersonaIdentity, PointsEntry, Transaction
from loyalty.services import points_adjust
from tests.factories import PersonaFactory, RetailStoreFactory
from tests.integrations.streams import BreaksOff

HEADER = ("ReceiptId,customerId,TransactionDate,Location,FirstName,LastName,Email,Phone,ProductName,"
          "Quantity,UnitPrice,LineTotal,LineTax,PaymentMethod")


def day(days_ago: int = 3) -> dt.date:
    return dt.date.today() - dt.timedelta(days=days_ago)


def us(days_ago: int = 3, clock: str = "02:15 PM") -> str:
    """A US-style timestamp, as most POS exports write it."""
    return f"{day(days_ago):%m/%d/%Y} {clock}"


def identity(connection, customer_id: str) -> PersonaIdentity:
    return PersonaIdentity.objects.select_related("persona").get(source=connection.source,
                                                                 external_id=customer_id)


def persona_of(connection, customer_id: str) -> Persona:
    return identity(connection, customer_id).persona


def ledger(persona) -> list[tuple[str, int]]:
    return list(PointsEntry.objects.filter(persona=persona).order_by("id").values_list("kind", "delta"))


def assert_balance_is_the_ledger(persona) -> None:
    """The balance is the sum of the ledger, and every entry's balance_after is the running sum."""
    persona.refresh_from_db()
    running = 0
    for delta, balance_after in PointsEntry.objects.filter(persona=persona).order_by("id").values_list(
            "delta", "balance_after"):
        running += delta
        assert balance_after == running >= 0
    assert persona.points_balance == running


def errors_of(imported_file) -> list[tuple]:
    return [(e.row_number, e.column, e.value, e.reason) for e in imported_file.row_errors.all()]


def txn(external_id: str) -> Transaction:
    return Transaction.objects.get(external_id=external_id)


# --- what each kind of file turns into ------------------------------------------------------------


def test_utf8_bom_and_crlf_file_lands(folder_connection, write_report, run_sync, store):
    write_report("bom.csv", "\ufeff" + (
        f"{HEADER}\r\n"
        f"R1,C1,{us()},{store.name},Zoë,Ng,zoe@example.com,,Gummies,2,$10.00,$20.00,1.60,Cash\r\n"
    ))

    run = run_sync(folder_connection)

    assert (run.state, run.files_imported, run.rows_accepted) == ("succeeded", 1, 1)
    zoe = persona_of(folder_connection, "C1")
    assert (zoe.first_name, zoe.last_name, zoe.email, zoe.points_balance) == (
        "Zoë", "Ng", "zoe@example.com", 20)
    sale = txn("R1")
    assert (sale.subtotal, sale.tax_total, sale.total) == (
        Decimal("20.00"), Decimal("1.60"), Decimal("21.60"))
    assert list(sale.payments.values_list("method", flat=True)) == ["Cash"]  # no stray "\r"
    f = ImportedFile.objects.get()
    assert (f.encoding, f.delimiter, f.headers[0]) == ("utf-8-sig", ",", "ReceiptId")


def test_latin1_file_lands_with_its_accents(folder_connection, write_report, run_sync, store):
    write_report("latin1.csv", (
        f"{HEADER}\n"
        f"R1,C1,{us()},{store.name},José,Muñoz,,,Café Mints,1,,4.00,0,Efectivo\n"
    ), encoding="latin-1")

    run_sync(folder_connection)

    jose = persona_of(folder_connection, "C1")
    assert (jose.first_name, jose.last_name) == ("José", "Muñoz")
    assert txn("R1").line_items.get().product == "Café Mints"
    assert ImportedFile.objects.get().encoding == "cp1252"


def test_semicolon_file_with_decimal_commas_lands(folder_connection, write_report, run_sync, store):
    write_report("semi.csv", (
        f"{HEADER.replace(',', ';')}\n"
        f"R1;C1;{us()};{store.name};Ana;Diaz;;;Gummies;2;6,25;12,50;1,05;Cash\n"
    ))

    run_sync(folder_connection)

    sale = txn("R1")
    assert (sale.subtotal, sale.tax_total, sale.total) == (
        Decimal("12.50"), Decimal("1.05"), Decimal("13.55"))
    assert sale.line_items.get().unit_price == Decimal("6.25")
    assert persona_of(folder_connection, "C1").points_balance == 12
    assert ImportedFile.objects.get().delimiter == ";"


def test_tab_delimited_file_lands(folder_connection, write_report, run_sync, store):
    write_report("tabs.csv", (
        f"{HEADER.replace(',', chr(9))}\n"
        f"R1\tC1\t{us()}\t{store.name}\tAna\tDiaz\t\t\tFlower, 3.5g\t1\t\t$35.00\t0\tCard\n"
    ))

    run_sync(folder_connection)

    assert txn("R1").line_items.get().product == "Flower, 3.5g"
    assert txn("R1").total == Decimal("35.00")


def test_quoted_commas_and_newlines_land_and_later_row_errors_name_the_right_line(
        folder_connection, write_report, run_sync, store):
    write_report("quoted.csv", (
        f"{HEADER}\n"
        f'R1,C1,{us()},{store.name},Ana,"Diaz, Jr.",,,"Flower, 3.5g\nIndica",1,,"$1,234.50",0,Card\n'  # 2-3
        f"R2,C2,{us()},{store.name},Bo,Li,,,Gummies,1,,-4.00,0,Cash\n"  # 4
    ))

    run = run_sync(folder_connection)

    assert (run.rows_accepted, run.rows_rejected) == (1, 1)
    assert persona_of(folder_connection, "C1").last_name == "Diaz, Jr."
    assert txn("R1").line_items.get().product == "Flower, 3.5g\nIndica"
    assert txn("R1").subtotal == Decimal("1234.50")
    assert persona_of(folder_connection, "C1").points_balance == 1234
    assert errors_of(ImportedFile.objects.get()) == [
        (4, "LineTotal", "-4.00", "is negative; report returns as their own receipts")]


def test_us_dates_with_am_pm_are_in_the_stores_time_zone_else_the_companys(
        company, folder_connection, write_report, run_sync, store):
    brooklyn = RetailStoreFactory(company=company, name="Brooklyn", state="NY", timezone="America/New_York")
    write_report("tz.csv", (
        "ReceiptId,customerId,TransactionDate,Location,LineTotal\n"
        f"R1,C1,{us(clock='02:15 PM')},Brooklyn,1.00\n"
        f"R2,C2,{us(clock='02:15 PM')},{store.name},1.00\n"
        f"R3,C3,{day():%Y-%m-%d}T14:15:00-05:00,{store.name},1.00\n"
    ))

    run_sync(folder_connection)

    local_215pm = dt.datetime.combine(day(), dt.time(14, 15))
    assert txn("R1").occurred_at == local_215pm.replace(tzinfo=ZoneInfo("America/New_York"))
    assert txn("R1").store == brooklyn
    assert txn("R2").occurred_at == local_215pm.replace(tzinfo=ZoneInfo(company.timezone))
    assert txn("R3").occurred_at == local_215pm.replace(tzinfo=dt.timezone(dt.timedelta(hours=-5)))


# --- bad rows -------------------------------------------------------------------------------------


def test_bad_rows_are_recorded_and_the_good_rows_of_the_same_file_land(
        folder_connection, write_report, run_sync, store):
    write_report("day1.csv", (
        f"{HEADER}\n"
        f"R1,C1,{us()},{store.name},Ana,Diaz,,,Gummies,1,,10.00,0,Cash\n"  # 2 good
        f"R2,C2,{us()},{store.name},Bo,Li,,,Gummies,1,,-5.00,0,Cash\n"  # 3 negative amount
        f"R3,C3,13/45/2020,{store.name},Cy,Wu,,,Gummies,1,,5.00,0,Cash\n"  # 4 unparseable date
        f"R4,,{us()},{store.name},Di,Ox,,,Gummies,1,,5.00,0,Cash\n"  # 5 no customer id
        f"R5,C5,{us()},Boulder,Ed,Po,,,Gummies,1,,5.00,0,Cash\n"  # 6 unknown store
        f"R1,C1,{us()},{store.name},Ana,Diaz,,,Pre-roll,1,,oops,0,Cash\n"  # 7 bad line of a good receipt
        f"R6,C6,{us()},{store.name},Fay,Ray,,,Vape,1,,30.00,0,Card\n"  # 8 good
    ))

    run = run_sync(folder_connection)

    f = ImportedFile.objects.get()
    assert errors_of(f) == [
        (3, "LineTotal", "-5.00", "is negative; report returns as their own receipts"),
        (4, "TransactionDate", "13/45/2020",
         "is not a date we can read (use YYYY-MM-DD or MM/DD/YYYY hh:mm AM)"),
        (5, "customerId", "", "is empty; every row needs its customer id"),
        (6, "Location", "Boulder", "is not a store we know; add it to the connection's store mappings"),
        (7, "LineTotal", "oops", "is not an amount"),
    ]
    assert f.row_errors.get(row_number=6).row[:4] == ["R5", "C5", us(), "Boulder"]
    assert (f.state, f.rows_total, f.rows_accepted, f.rows_rejected, f.transactions) == (
        "imported", 7, 2, 5, 2)
    assert (run.state, run.rows_accepted, run.rows_rejected) == ("completed_with_errors", 2, 5)
    assert set(Transaction.objects.values_list("external_id", flat=True)) == {"R1", "R6"}
    assert list(txn("R1").line_items.values_list("product", flat=True)) == ["Gummies"]
    assert set(PersonaIdentity.objects.values_list("external_id", flat=True)) == {"C1", "C6"}
    assert Persona.objects.count() == 2
    assert (persona_of(folder_connection, "C1").points_balance,
            persona_of(folder_connection, "C6").points_balance) == (10, 30)


def test_rows_older_than_12_months_are_skipped_and_counted_not_errors(
        folder_connection, write_report, run_sync, store):
    write_report("old.csv", (
        f"{HEADER}\n"
        f"R1,C1,{us(400)},{store.name},Ana,Diaz,,,Gummies,1,,10.00,0,Cash\n"
        f"R2,C2,{us(3)},{store.name},Bo,Li,,,Gummies,1,,5.00,0,Cash\n"
        f"R3,C3,{us(500)},{store.name},Cy,Wu,,,Gummies,1,,5.00,0,Cash\n"
    ))

    run = run_sync(folder_connection)

    f = ImportedFile.objects.get()
    assert (f.rows_accepted, f.rows_rejected, f.rows_too_old, f.row_errors.count()) == (1, 0, 2, 0)
    assert (run.rows_accepted, run.rows_rejected, run.rows_too_old) == (1, 0, 2)
    assert list(Transaction.objects.values_list("external_id", flat=True)) == ["R2"]
    assert not PersonaIdentity.objects.filter(external_id__in=["C1", "C3"]).exists()


# --- whole files refused --------------------------------------------------------------------------


def test_missing_required_columns_reject_the_file_whole_naming_them_and_the_headers_found(
        folder_connection, write_report, run_sync, store):
    write_report("export.csv", (
        "Ticket,Client,Date,Location,Total\n"
        f"T1,Ana,{us()},{store.name},10.00\n"
    ))

    run = run_sync(folder_connection)

    f = ImportedFile.objects.get()
    assert f.state == "rejected"
    assert f.error == (
        "export.csv is missing the required columns 'ReceiptId', 'customerId'. Headers found: 'Ticket', "
        "'Client', 'Date', 'Location', 'Total'. Rename the headers in the file or map them on the "
        "connection's header mapping page.")
    assert (run.state, run.files_seen, run.files_rejected, run.files_imported) == (
        "completed_with_errors", 1, 1, 0)
    assert (Persona.objects.count(), Transaction.objects.count(), PointsEntry.objects.count()) == (0, 0, 0)

    # The merchant renames one header: the file is read again, and now only one is missing.
    write_report("export.csv", f"ReceiptId,Client,Date,Location,Total\nT1,Ana,{us()},{store.name},10.00\n")
    run_sync(folder_connection)
    f.refresh_from_db()
    assert f.state == "rejected"
    assert "missing the required column 'customerId'. Headers found: 'ReceiptId', 'Client'," in f.error


def test_a_changed_file_that_is_rejected_keeps_what_its_earlier_version_brought(
        folder_connection, write_report, run_sync, store):
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,Diaz,,,Gummies,1,,10.00,0,Cash\n")
    run_sync(folder_connection)
    write_report("day1.csv", f"ReceiptId,Date,Total\nR1,{us()},10.00\n")

    run = run_sync(folder_connection)

    assert run.files_rejected == 1 and ImportedFile.objects.get().state == "rejected"
    assert txn("R1").total == Decimal("10.00")
    assert persona_of(folder_connection, "C1").points_balance == 10


@pytest.mark.parametrize(("content", "error"), [
    (b"", "empty.csv is empty (0 bytes)."),
    (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x01\x00\x00\x00\x01\x00\x08\x06\x00\x00\x00\\r\xa8f",
     "empty.csv is not a CSV text file: it holds binary data."),
])
def test_empty_and_binary_files_are_rejected_with_a_reason(
        folder_connection, write_report, run_sync, content, error):
    write_report("empty.csv", content)

    run = run_sync(folder_connection)

    f = ImportedFile.objects.get()
    assert (f.state, f.error, f.rows_total) == ("rejected", error, 0)
    assert (run.state, run.files_rejected, run.files_imported) == ("completed_with_errors", 1, 0)


def test_a_file_with_only_headers_is_imported_with_zero_rows(folder_connection, write_report, run_sync):
    write_report("quiet-day.csv", f"{HEADER}\r\n")

    run = run_sync(folder_connection)

    f = ImportedFile.objects.get()
    assert (f.state, f.error, f.rows_total, f.rows_accepted, f.transactions) == ("imported", "", 0, 0, 0)
    assert (run.state, run.files_imported, run.files_rejected, run.rows_accepted) == ("succeeded", 1, 0, 0)
    assert Transaction.objects.count() == 0


# --- customers ------------------------------------------------------------------------------------


def test_customers_are_upserted_by_source_and_customer_id_sourced_from_the_connection(
        company, folder_connection, write_report, run_sync, store):
    write_report("day1.csv", (
        f"{HEADER}\n"
        f"R1,C1,{us(5)},{store.name},Ana,Diaz,ana@example.com,(303) 555-0101,Gummies,1,,10.00,0,Cash\n"
        f"R2,C1,{us(4)},{store.name},Ana,Diaz,ana@example.com,(303) 555-0101,Gummies,1,,5.00,0,Cash\n"
    ))
    write_report("day2.csv", f"{HEADER}\nR3,C1,{us(3)},{store.name},Ana,Diaz,,,Gummies,1,,7.00,0,Cash\n")

    run_sync(folder_connection)

    ana = persona_of(folder_connection, "C1")
    assert Persona.objects.count() == 1 and PersonaIdentity.objects.count() == 1
    assert ana.sourced_from_id == folder_connection.source_id
    assert (ana.phone, ana.email, ana.is_member, ana.company_id) == ("+13035550101", "ana@example.com", True,
                                                                    company.pk)
    assert set(ana.transactions.values_list("external_id", flat=True)) == {"R1", "R2", "R3"}
    assert ana.points_balance == 22
    assert ana.last_purchase_at == dt.datetime.combine(day(3), dt.time(14, 15),
                                                       tzinfo=ZoneInfo(company.timezone))
    assert ana.favourite_store == store


def test_contact_fields_update_when_present_and_a_blank_cell_keeps_the_old_value(
        folder_connection, write_report, run_sync, store):
    cols = "ReceiptId,customerId,TransactionDate,Location,FirstName,LastName,Email,Phone,BirthDate,LineTotal"
    write_report("day1.csv", f"{cols}\nR1,C1,{us(5)},{store.name},Ana,Diaz,ana@example.com,3035550101,,1\n")
    run_sync(folder_connection)

    write_report("day2.csv", f"{cols}\nR2,C1,{us(4)},{store.name},Anna,,,(720) 555-0188,,1\n")
    run_sync(folder_connection)
    ana = persona_of(folder_connection, "C1")
    assert (ana.first_name, ana.last_name, ana.email, ana.phone, ana.birth_date) == (
        "Anna", "Diaz", "ana@example.com", "+17205550188", None)

    # Only the birth date is new in this file.
    write_report("day3.csv", f"{cols}\nR3,C1,{us(3)},{store.name},Anna,Diaz,,,05/01/1990,1\n")
    run_sync(folder_connection)
    ana.refresh_from_db()
    assert (ana.first_name, ana.email, ana.phone, ana.birth_date) == (
        "Anna", "ana@example.com", "+17205550188", dt.date(1990, 5, 1))


def test_within_one_file_a_customers_newest_row_gives_the_contact_fields(
        folder_connection, write_report, run_sync, store):
    cols = "ReceiptId,customerId,TransactionDate,Location,FirstName,Email,LineTotal"
    write_report("day1.csv", (
        f"{cols}\n"
        f"R1,C1,{us(5)},{store.name},Ana,old@example.com,1\n"
        f"R2,C1,{us(3)},{store.name},Ana,new@example.com,1\n"
        f"R3,C1,{us(4)},{store.name},Anita,mid@example.com,1\n"
    ))

    run_sync(folder_connection)

    ana = persona_of(folder_connection, "C1")
    assert (ana.first_name, ana.email) == ("Ana", "new@example.com")


def test_a_new_customer_id_with_a_known_phone_joins_that_persona_one_balance(
        company, folder_connection, write_report, run_sync, store):
    known = PersonaFactory(company=company, first_name="Ana", phone="+13035550142", email="ana@pos.example")
    write_report("day1.csv", (
        f"{HEADER}\n"
        f"R1,C-900,{us()},{store.name},Ana,,,(303) 555-0142,Gummies,1,,40.00,0,Cash\n"
        f"R2,C-901,{us()},{store.name},Bo,,ANA@POS.EXAMPLE,,Gummies,1,,2.00,0,Cash\n"
    ))

    run_sync(folder_connection)

    assert persona_of(folder_connection, "C-900") == known  # by phone
    assert persona_of(folder_connection, "C-901") == known  # by email
    assert Persona.objects.count() == 1
    known.refresh_from_db()
    assert known.points_balance == 42
    assert known.sourced_from_id != folder_connection.source_id  # still where it was first seen
    assert_balance_is_the_ledger(known)


def test_another_companys_persona_with_the_same_phone_is_not_joined(
        other_company, folder_connection, write_report, run_sync, store):
    stranger = PersonaFactory(company=other_company, phone="+13035550142")
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,(303) 555-0142,G,1,,4.00,0,Cash\n")

    run_sync(folder_connection)

    ana = persona_of(folder_connection, "C1")
    assert ana != stranger and ana.company_id == folder_connection.company_id
    stranger.refresh_from_db()
    assert stranger.points_balance == 0


# --- sales and points -----------------------------------------------------------------------------


def test_transactions_land_with_line_items_and_payments(folder_connection, write_report, run_sync, store):
    write_report("day1.csv", (
        "ReceiptId,customerId,TransactionDate,Location,SKU,ProductName,Brand,Category,Quantity,UnitPrice,"
        "LineDiscount,LineTax,LineTotal,PaymentMethod,FulfillmentType,Employee\n"
        f"R1,C1,{us()},{store.name},G-1,Gummies,Wana,Edibles,2,$10.00,$2.00,1.50,$18.00,Debit,Curbside,Sam\n"
        f"R1,C1,{us()},{store.name},P-1,Pre-roll,Cookies,Pre-Rolls,1,5.50,0,0.50,5.50,Debit,Curbside,Sam\n"
    ))

    run_sync(folder_connection)

    sale = txn("R1")
    assert (sale.subtotal, sale.discount_total, sale.tax_total, sale.total) == (
        Decimal("25.50"), Decimal("2.00"), Decimal("2.00"), Decimal("25.50"))
    assert (sale.fulfillment, sale.employee, sale.status, sale.store, sale.source_file) == (
        "pickup", "Sam", "completed", store, "day1.csv")
    assert list(sale.line_items.values_list("line_no", "sku", "product", "brand", "category", "quantity",
                                            "unit_price", "discount", "tax", "total")) == [
        (1, "G-1", "Gummies", "Wana", "Edibles", Decimal("2"), Decimal("10.00"), Decimal("2.00"),
         Decimal("1.50"), Decimal("18.00")),
        (2, "P-1", "Pre-roll", "Cookies", "Pre-Rolls", Decimal("1"), Decimal("5.50"), Decimal("0"),
         Decimal("0.50"), Decimal("5.50")),
    ]
    assert list(sale.payments.values_list("method", "amount")) == [("Debit", Decimal("25.50"))]
    # pre-tax, after discount: 25.50 - 2.00
    assert ledger(persona_of(folder_connection, "C1")) == [("earn", 23)]


def test_the_same_file_twice_is_skipped_and_points_are_awarded_once(
        folder_connection, write_report, run_sync, store):
    write_report("day1.csv", (
        f"{HEADER}\n"
        f"R1,C1,{us()},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n"
        f"R2,C1,{us()},{store.name},Ana,,,,Gummies,1,,5.00,0,Cash\n"
    ))
    run_sync(folder_connection)

    second = run_sync(folder_connection)

    assert (second.files_seen, second.files_skipped, second.files_imported, second.rows_accepted) == (
        1, 1, 0, 0)
    ana = persona_of(folder_connection, "C1")
    assert sorted(ledger(ana)) == [("earn", 5), ("earn", 10)]
    assert ana.points_balance == 15


def test_the_same_bytes_saved_again_import_again_without_awarding_twice(
        folder_connection, write_report, run_sync, store):
    content = f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n"
    write_report("day1.csv", content)
    run_sync(folder_connection)
    write_report("day1.csv", content)  # new modification time, same content

    run = run_sync(folder_connection)

    assert run.files_imported == 1
    assert ImportedFile.objects.get().rows_accepted == 1
    assert (Transaction.objects.count(), LineItem.objects.count(), Payment.objects.count()) == (1, 1, 1)
    assert ledger(persona_of(folder_connection, "C1")) == [("earn", 10)]


def test_a_transaction_re_exported_in_another_file_with_a_new_amount_earns_the_difference_only(
        folder_connection, write_report, run_sync, store):
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us(4)},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n")
    run_sync(folder_connection)
    write_report("day1-corrected.csv", (
        f"{HEADER}\n"
        f"R1,C1,{us(4)},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n"
        f"R1,C1,{us(4)},{store.name},Ana,,,,Pre-roll,1,,6.00,0,Cash\n"
    ))

    run_sync(folder_connection)

    assert Transaction.objects.count() == 1
    sale = txn("R1")
    assert (sale.subtotal, sale.line_items.count(), sale.source_file) == (Decimal("16.00"), 2,
                                                                         "day1-corrected.csv")
    ana = persona_of(folder_connection, "C1")
    assert ledger(ana) == [("earn", 10), ("earn", 6)]
    assert_balance_is_the_ledger(ana)


def test_a_changed_file_replaces_that_files_data(folder_connection, write_report, run_sync, store):
    write_report("day1.csv", (
        f"{HEADER}\n"
        f"R1,C1,{us()},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n"
        f"R2,C1,{us()},{store.name},Ana,,,,Vape,1,,30.00,0,Cash\n"
        f"R3,C2,{us()},{store.name},Bo,,,,Flower,1,,20.00,0,Cash\n"
    ))
    run_sync(folder_connection)
    r2 = txn("R2")
    # Re-exported: R2 was a mistake and is gone, R3 cost 25 not 20.
    write_report("day1.csv", (
        f"{HEADER}\n"
        f"R1,C1,{us()},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n"
        f"R3,C2,{us()},{store.name},Bo,,,,Flower,1,,25.00,0,Cash\n"
    ))

    run = run_sync(folder_connection)

    assert run.files_imported == 1
    assert set(Transaction.objects.values_list("external_id", flat=True)) == {"R1", "R3"}
    assert not LineItem.objects.filter(transaction_id=r2.pk).exists()
    assert not Payment.objects.filter(transaction_id=r2.pk).exists()
    ana, bo = persona_of(folder_connection, "C1"), persona_of(folder_connection, "C2")
    assert ledger(ana) == [("earn", 10), ("earn", 30), ("reverse", -30)]
    assert ledger(bo) == [("earn", 20), ("earn", 5)]
    assert (ana.points_balance, bo.points_balance) == (10, 25)
    assert_balance_is_the_ledger(ana)
    assert_balance_is_the_ledger(bo)
    reversal = PointsEntry.objects.get(kind="reverse")
    assert reversal.reason == "Receipt no longer in day1.csv" and reversal.balance_after == 10
    assert txn("R3").line_items.get().total == Decimal("25.00")
    assert ImportedFile.objects.get().transactions == 2


def test_non_members_earn_nothing_when_the_connection_does_not_enroll(
        folder_connection, write_report, run_sync, store):
    folder_connection.enroll_new_customers = False
    folder_connection.save()
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n")

    run_sync(folder_connection)

    ana = persona_of(folder_connection, "C1")
    assert (ana.is_member, ana.points_balance, PointsEntry.objects.count()) == (False, 0, 0)


# --- one file, one database transaction -----------------------------------------------------------


def big_report(store, customers: int = 1500, receipt_prefix: str = "R") -> bytes:
    lines = [HEADER]
    for i in range(customers):
        lines.append(f"{receipt_prefix}{i},C{i},{us()},{store.name},Cust{i},Last{i},c{i}@example.com,,"
                     f"Gummies,1,,10.00,0.80,Cash")
    return ("\n".join(lines) + "\n").encode()


def nothing_landed() -> bool:
    return not (Persona.objects.exists() or PersonaIdentity.objects.exists() or Transaction.objects.exists()
                or LineItem.objects.exists() or Payment.objects.exists() or PointsEntry.objects.exists()
                or ImportedFile.objects.exists())


def test_a_stream_that_breaks_off_mid_file_leaves_nothing_and_the_file_imports_whole_later(
        folder_connection, store, monkeypatch):
    monkeypatch.setattr(imports, "COPY_CHUNK_ROWS", 100)  # several chunks are in COPY when it breaks
    data = big_report(store)
    assert len(data) > 100_000
    file = ReportFile(key="day1.csv", etag="v1", size=len(data))

    with pytest.raises(ConnectionResetError):
        report_file_import(connection=folder_connection, file=file,
                           stream=BreaksOff(io.BytesIO(data), 90_000))

    assert nothing_landed()
    outcome = report_file_import(connection=folder_connection, file=file, stream=io.BytesIO(data))
    assert (outcome.imported_file.state, outcome.imported_file.rows_accepted) == ("imported", 1500)
    assert (Persona.objects.count(), Transaction.objects.count(), PointsEntry.objects.count()) == (
        1500, 1500, 1500)


class LedgerFailure:
    """A real database error at the very end of a merge: while on, every insert into the
    points ledger raises, after the file's customers, sales, lines and payments were written."""

    def on(self, message: str = "could not extend file: No space left on device") -> None:
        with db_connection.cursor() as cursor:
            cursor.execute(f"""
                CREATE FUNCTION test_ledger_fails() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN RAISE EXCEPTION '{message}'; END $$;
                CREATE TRIGGER test_ledger_fails BEFORE INSERT ON loyalty_pointsentry
                FOR EACH ROW EXECUTE FUNCTION test_ledger_fails();
            """)

    def off(self) -> None:
        with db_connection.cursor() as cursor:
            cursor.execute("DROP TRIGGER test_ledger_fails ON loyalty_pointsentry; "
                           "DROP FUNCTION test_ledger_fails();")


@pytest.fixture
def ledger_failure(db):
    return LedgerFailure()  # what it creates goes with the test's transaction


def test_a_database_error_mid_merge_leaves_nothing_of_the_file(folder_connection, store, ledger_failure):
    data = big_report(store, customers=50)
    file = ReportFile(key="day1.csv", etag="v1", size=len(data))
    ledger_failure.on()

    with pytest.raises(Exception, match="No space left on device"):
        report_file_import(connection=folder_connection, file=file, stream=io.BytesIO(data))

    assert nothing_landed()
    ledger_failure.off()
    outcome = report_file_import(connection=folder_connection, file=file, stream=io.BytesIO(data))
    assert outcome.imported_file.transactions == 50
    assert Persona.objects.count() == 50
    assert PointsEntry.objects.aggregate(s=Sum("delta"))["s"] == 500


def test_a_failed_change_keeps_the_files_previous_version_as_it_was(folder_connection, store, ledger_failure):
    v1 = f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n".encode()
    report_file_import(connection=folder_connection, file=ReportFile("day1.csv", "v1", len(v1)),
                       stream=io.BytesIO(v1))
    v2 = (f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Gummies,1,,99.00,0,Cash\n"
          f"R2,C2,{us()},{store.name},Bo,,,,Vape,1,,50.00,0,Cash\n").encode()
    ledger_failure.on("deadlock detected")

    with pytest.raises(Exception, match="deadlock detected"):
        report_file_import(connection=folder_connection, file=ReportFile("day1.csv", "v2", len(v2)),
                           stream=io.BytesIO(v2))

    assert list(Transaction.objects.values_list("external_id", flat=True)) == ["R1"]
    assert list(txn("R1").line_items.values_list("total", flat=True)) == [Decimal("10.00")]
    assert txn("R1").total == Decimal("10.00")
    assert not PersonaIdentity.objects.filter(external_id="C2").exists()
    f = ImportedFile.objects.get()
    assert (f.etag, f.rows_accepted) == ("v1", 1)
    assert persona_of(folder_connection, "C1").points_balance == 10


def test_row_errors_are_replaced_when_the_file_changes(folder_connection, write_report, run_sync, store):
    write_report("day1.csv", f"{HEADER}\nR1,C1,bad,{store.name},Ana,,,,G,1,,1.00,0,Cash\n")
    run_sync(folder_connection)
    assert RowError.objects.count() == 1

    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,G,1,,1.00,0,Cash\n")
    run_sync(folder_connection)

    assert RowError.objects.count() == 0
    assert ImportedFile.objects.get().rows_rejected == 0


def test_a_receipt_re_exported_under_another_customer_moves_its_points(
        folder_connection, write_report, run_sync, store):
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n"
                             f"R2,C2,{us()},{store.name},Bo,,,,Gummies,1,,1.00,0,Cash\n")
    run_sync(folder_connection)
    write_report("day1.csv", f"{HEADER}\nR1,C2,{us()},{store.name},Bo,,,,Gummies,1,,10.00,0,Cash\n"
                             f"R2,C2,{us()},{store.name},Bo,,,,Gummies,1,,1.00,0,Cash\n")

    run_sync(folder_connection)

    ana, bo = persona_of(folder_connection, "C1"), persona_of(folder_connection, "C2")
    assert txn("R1").persona == bo
    assert ledger(ana) == [("earn", 10), ("reverse", -10)]
    assert sorted(ledger(bo)) == [("earn", 1), ("earn", 10)]
    assert (ana.points_balance, bo.points_balance) == (0, 11)


def test_a_blank_contact_cell_on_a_customers_newest_row_keeps_what_an_earlier_row_of_the_file_says(
        folder_connection, write_report, run_sync, store):
    write_report("day1.csv", (
        "ReceiptId,customerId,TransactionDate,Location,FirstName,Email,Phone,LineTotal\n"
        f"R1,C1,{us(5)},{store.name},Ana,ana@example.com,3035550101,1\n"
        f"R2,C1,{us(3)},{store.name},,,,1\n"
    ))

    run_sync(folder_connection)

    ana = persona_of(folder_connection, "C1")
    assert (ana.first_name, ana.email, ana.phone) == ("Ana", "ana@example.com", "+13035550101")


def test_a_changed_file_lowering_an_amount_takes_back_no_more_than_is_left(
        company, folder_connection, write_report, run_sync, store, admin_user):
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Vape,1,,30.00,0,Cash\n")
    run_sync(folder_connection)
    ana = persona_of(folder_connection, "C1")
    points_adjust(company=company, persona_id=ana.pk, delta=-25, staff_user=admin_user, reason="Redeemed")
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Vape,1,,10.00,0,Cash\n")

    run_sync(folder_connection)

    assert ledger(ana) == [("earn", 30), ("adjust", -25), ("reverse", -5)]
    assert_balance_is_the_ledger(ana)
    assert ana.points_balance == 0


def test_gains_and_losses_of_one_file_change_are_applied_gains_first(
        company, folder_connection, write_report, run_sync, store, admin_user):
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Vape,1,,30.00,0,Cash\n")
    run_sync(folder_connection)
    ana = persona_of(folder_connection, "C1")
    points_adjust(company=company, persona_id=ana.pk, delta=-25, staff_user=admin_user, reason="Redeemed")
    # R1 was voided at the till and re-rung as R2 for 20.
    write_report("day1.csv", f"{HEADER}\nR2,C1,{us()},{store.name},Ana,,,,Vape,1,,20.00,0,Cash\n")

    run_sync(folder_connection)

    assert sorted(ledger(ana)) == [("adjust", -25), ("earn", 20), ("earn", 30), ("reverse", -25)]
    assert_balance_is_the_ledger(ana)
    assert ana.points_balance == 0
    assert not PointsEntry.objects.filter(balance_after__lt=0).exists()


def test_a_file_re_exported_with_only_its_headers_takes_its_receipts_away(
        folder_connection, write_report, run_sync, store):
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Vape,1,,30.00,0,Cash\n")
    write_report("day2.csv", f"{HEADER}\nR2,C1,{us()},{store.name},Ana,,,,Vape,1,,4.00,0,Cash\n")
    run_sync(folder_connection)
    write_report("day1.csv", f"{HEADER}\n")

    run = run_sync(folder_connection)

    assert (run.files_imported, run.files_skipped) == (1, 1)
    assert list(Transaction.objects.values_list("external_id", flat=True)) == ["R2"]
    ana = persona_of(folder_connection, "C1")
    assert ana.points_balance == 4
    assert_balance_is_the_ledger(ana)


def test_store_mappings_and_a_saved_header_map_apply_to_the_import(
        company, folder_connection, write_report, run_sync, store):
    store_mapping_set(connection=folder_connection, external_location_id="DEN-01", store=store)
    connection_header_map_save(connection=folder_connection, mapping={
        "Ticket #": "transaction_id", "Member": "customer_id", "When": "occurred_at", "Shop": "store",
        "Net": "line_total", "Notes": ""})
    write_report("pos-export.csv", (
        "Ticket #,Member,When,Shop,Net,Notes\n"
        f"T1,M1,{us()},DEN-01,$12.00,first visit\n"
        f"T2,M2,{us()},den-01,$3.00,\n"
    ))

    run = run_sync(folder_connection)

    assert (run.rows_accepted, run.rows_rejected) == (2, 0)
    assert set(Transaction.objects.values_list("external_id", "store_id")) == {("T1", store.pk),
                                                                              ("T2", store.pk)}
    assert persona_of(folder_connection, "M1").points_balance == 12


def test_a_receipt_moved_to_another_customer_no_longer_counts_as_the_old_customers_last_purchase(
        folder_connection, write_report, run_sync, store):
    write_report("day1.csv", f"{HEADER}\nR1,C1,{us()},{store.name},Ana,,,,Gummies,1,,10.00,0,Cash\n")
    run_sync(folder_connection)
    write_report("day1.csv", f"{HEADER}\nR1,C2,{us()},{store.name},Bo,,,,Gummies,1,,10.00,0,Cash\n")

    run_sync(folder_connection)

    ana = persona_of(folder_connection, "C1")
    assert ana.transactions.count() == 0
    assert ana.last_purchase_at is None
