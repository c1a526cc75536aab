"""The one merge of staged sales (loyalty.services.ingest), driven as any bulk source drives
it: stage rows of the documented shape, then `sales_merge_staged`. A customer is matched by
the source's id, else phone, else email; a sale sent again is replaced, never duplicated;
a file read again without a receipt takes that sale and its points away."""

import datetime as dt
from decimal import Decimal

import pytest
from django.db import connection as db_connection
from django.db import transaction as db

from loyalty.models import LineItem, Persona, PersonaIdentity, Source, Transaction
from loyalty.phone import phone_normalize_or_blank
from loyalty.services import ingest
from tests.factories import PersonaFactory, SourceFactory

pytestmark = pytest.mark.django_db

WHEN = dt.datetime(2026, 3, 1, 18, 30, tzinfo=dt.UTC)


def _line(row_no, receipt, customer, store, *, phone="", email="", first_name="", price="10.00"):
    return (row_no, receipt, customer, WHEN.isoformat(), store.pk, first_name, "", email, phone, None,
            "SKU-1", "Gummies", "Wana", "Edibles", "1", price, "0", "0.80", price, "Cash", "in_store", "")


def _merge(company, source, lines, *, file_key="day1.csv"):
    with db.atomic():
        with db_connection.cursor() as cursor:
            ingest.lines_staging_create(cursor)
            copy = ingest.StagingCopy(cursor, "import_lines", ingest.LINE_COLUMNS, chunk_rows=2)
            for line in lines:
                copy.add(line)
            copy.flush()
            ingest.lines_staging_analyze(cursor)
        return ingest.sales_merge_staged(company=company, source=source,
                                         batch=ingest.Batch(file_key=file_key, drop_missing=True))


def test_customers_match_by_id_then_phone_then_email_and_sales_are_not_duplicated(company, store):
    source = SourceFactory(company=company, kind=Source.Kind.FOLDER, name="Reports")
    by_phone = PersonaFactory(company=company, phone="+13035550142", email="")
    by_email = PersonaFactory(company=company, phone="", email="ben@example.com")
    lines = [_line(1, "R1", "C1", store, phone="+13035550142"),
             _line(2, "R1", "C1", store, phone="+13035550142", price="5.00"),
             _line(3, "R2", "C2", store, email="ben@example.com"),
             _line(4, "R3", "C3", store, first_name="Cleo", email="cleo@example.com")]

    outcome = _merge(company, source, lines)

    assert (outcome.transactions, outcome.new_sales) == (3, 3)
    assert Transaction.objects.get(external_id="R1").persona == by_phone
    assert Transaction.objects.get(external_id="R1").subtotal == Decimal("15.00")
    assert Transaction.objects.get(external_id="R2").persona == by_email
    cleo = Transaction.objects.get(external_id="R3").persona
    assert (cleo.first_name, cleo.sourced_from) == ("Cleo", source)
    assert set(PersonaIdentity.objects.filter(source=source).values_list("external_id", "persona")) == {
        ("C1", by_phone.pk), ("C2", by_email.pk), ("C3", cleo.pk)}

    # The same file again, with R1 changed and R3 gone: replaced, not duplicated; R3 goes.
    again = _merge(company, source, [_line(1, "R1", "C1", store, price="7.00"),
                                     _line(3, "R2", "C2", store)])
    assert (again.transactions, again.new_sales) == (2, 0)
    assert sorted(Transaction.objects.values_list("external_id", "subtotal")) == [
        ("R1", Decimal("7.00")), ("R2", Decimal("10.00"))]
    assert LineItem.objects.filter(transaction__external_id="R1").count() == 1
    assert Persona.objects.filter(company=company).count() == 3


def test_a_receipt_too_large_for_the_amount_columns_is_left_out_and_named(company, store):
    source = SourceFactory(company=company, kind=Source.Kind.FOLDER, name="Reports")
    huge = "9999999999.00"
    outcome = _merge(company, source, [_line(1, "R1", "", store, price=huge),
                                       _line(2, "R1", "", store, price=huge), _line(3, "R2", "", store)])
    assert [(sale, rows) for sale, rows, _column, _reason in outcome.too_large] == [("R1", [1, 2])]
    assert outcome.rejected_lines == 2
    assert list(Transaction.objects.values_list("external_id", flat=True)) == ["R2"]


def test_an_unreadable_phone_is_blank_for_bulk_sources():
    assert phone_normalize_or_blank("(303) 555-0142") == "+13035550142"
    assert phone_normalize_or_blank("not a phone") == ""
    assert phone_normalize_or_blank("555") == ""
    assert phone_normalize_or_blank("") == ""
