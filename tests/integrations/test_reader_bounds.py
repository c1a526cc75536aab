"""A report row with a number its column (or a sum of it) cannot hold is a row error that
names the row and the column; the rest of the file lands, nothing is rounded away."""

from decimal import Decimal

import pytest

from integrations.models import ImportedFile
from integrations.providers.base import ProviderError
from loyalty.bounds import POINTS_MAX
from loyalty.models import LineItem, LoyaltyProgram, PointsEntry, Transaction
from tests.integrations import cova_fake
from tests.integrations.test_cova_client import OLD, all_of, client_for
from tests.integrations.test_import import HEADER, errors_of, us

cova_server = cova_fake.cova_server


def test_report_file_import_numbers_past_their_bounds_are_row_errors(folder_connection, write_report,
                                                                     run_sync, store):
    # given a report with good rows and rows whose numbers, or their sums, do not fit
    big = "9999999999.99"
    write_report("bounds.csv", HEADER + "\n" + (
        f"R1,C1,{us()},{store.name},Ana,Diaz,,,Gummies,2,10.00,20.00,1.00,Cash\n"  # 2 good
        f"R2,C2,{us()},{store.name},Bo,Li,,,Gummies,5000000000,1.00,5.00,0,Cash\n"  # 3 quantity
        f"R3,C3,{us()},{store.name},Cy,Wu,,,Gummies,1,1.005,,0,Cash\n"  # 4 a tenth of a cent
        f"R4,C4,{us()},{store.name},Di,Ox,,,Gummies,99999999.999,{big},,0,Cash\n"  # 5 quantity × price
        f"R5,C5,{us()},{store.name},Ed,Po,,,Vape,1,,{big},0,Card\n"  # 6 and 7: each fits,
        f"R5,C5,{us()},{store.name},Ed,Po,,,Vape,1,,{big},0,Card\n"  # their receipt's sum does not
        f"R6,C6,{us()},{store.name},Fay,Ray,,,Vape,1,,30.00,0,Card\n"  # 8 good
    ))

    # when the connection syncs
    run = run_sync(folder_connection)

    # then each bad row is an error with its row and column, and the good rows land exactly
    f = ImportedFile.objects.get()
    receipt_sum = ("receipt R5: its line totals plus tax add up to 19,999,999,999.98, "
                   "more than 9,999,999,999.99")
    errors = errors_of(f)
    assert errors[:3] == [
        (3, "Quantity", "5000000000", "5000000000 is more than 99,999,999.999"),
        (4, "UnitPrice", "1.005", "1.005 has more than 2 decimal places"),
        (5, "Quantity", "99999999.999",
         "× unit price 9999999999.99 is more than 9,999,999,999.99"),
    ]
    assert [(e[0], e[1]) for e in errors[3:]] == [(6, "LineTotal"), (7, "LineTotal")]
    assert all(e[3].startswith(receipt_sum) for e in errors[3:])
    assert (f.state, f.rows_total, f.rows_accepted, f.rows_rejected) == ("imported", 7, 2, 5)
    assert run.state != "failed"
    assert set(Transaction.objects.values_list("external_id", flat=True)) == {"R1", "R6"}
    assert LineItem.objects.get(product="Gummies").quantity == Decimal("2")


def test_cova_sale_with_a_quantity_past_its_bound_names_the_sale_and_field(cova_server):
    # given Cova answers with a sale whose quantity no column holds
    location = cova_server.add_location("Downtown", location_id=1001)
    customer = cova_server.add_customer(FirstName="Ana")
    cova_server.add_sale(location, customer, completed_at=OLD, items=[
        {"Sku": "G-1", "ProductName": "Gummies", "Quantity": 5000000000, "UnitPrice": 1.0, "Total": 5.0}])
    # when the client reads the sales
    with pytest.raises(ProviderError) as caught:
        all_of(client_for(cova_server).sales(str(location), None))
    # then it stops, naming the field and the bound, instead of failing in the database
    assert "Quantity 5000000000, more than 99,999,999.999" in caught.value.message


def test_report_file_import_receipt_earning_past_the_points_limit_is_a_row_error(
        folder_connection, write_report, run_sync, store, company):
    # given a program of 10 points per dollar and a receipt worth 200,000,000 dollars
    LoyaltyProgram.objects.update_or_create(company=company, defaults={"points_per_unit": 10})
    write_report("points.csv", HEADER + "\n" + (
        f"R1,C1,{us()},{store.name},Ana,Diaz,,,Gummies,1,,200000000.00,0,Cash\n"  # 2: 2e9 points
        f"R2,C2,{us()},{store.name},Bo,Li,,,Gummies,1,,20.00,0,Cash\n"  # 3 good
    ))
    # when the connection syncs
    run_sync(folder_connection)
    # then the receipt is a row error, the good one lands with its points, and no balance
    # passes the limit
    f = ImportedFile.objects.get()
    assert errors_of(f) == [(2, "LineTotal", "", "receipt R1: it could earn more than 1,000,000,000 points")]
    assert list(Transaction.objects.values_list("external_id", flat=True)) == ["R2"]
    assert not PointsEntry.objects.filter(delta__gt=POINTS_MAX).exists()
    assert PointsEntry.objects.get().delta == 200


def test_report_file_import_a_number_a_quantity_holds_is_still_refused_as_money(
        folder_connection, write_report, run_sync, store):
    # given "1.005" first as a quantity (three decimals fit) and then as a unit price (they do not)
    write_report("places.csv", HEADER + "\n" + (
        f"R1,C1,{us()},{store.name},Ana,Diaz,,,Gummies,1.005,10.00,,0,Cash\n"
        f"R2,C2,{us()},{store.name},Bo,Li,,,Gummies,1,1.005,,0,Cash\n"
    ))

    # when the connection syncs
    run_sync(folder_connection)

    # then the quantity lands and the unit price is a row error: what passed one column's
    # check is not taken as passed for another's
    f = ImportedFile.objects.get()
    assert errors_of(f) == [(3, "UnitPrice", "1.005", "1.005 has more than 2 decimal places")]
    assert LineItem.objects.get().quantity == Decimal("1.005")
