import datetime as dt

from django.utils import timezone

from integrations.models import ImportedFile, SyncRun
from integrations.services.sync import sync_run_create, sync_run_execute
from loyalty.models import Persona, PointsEntry, Transaction


def recent(days=3):
    return (timezone.localdate() - dt.timedelta(days=days)).strftime("%m/%d/%Y")


def test_folder_sync_imports_customers_sales_and_points(folder_connection, reports_dir, store, db):
    d = recent()
    (reports_dir / "day1.csv").write_text(
        "ReceiptId,customerId,TransactionDate,Location,FirstName,LastName,Phone,ProductName,Quantity,UnitPrice,LineTotal,LineTax,PaymentMethod\n"
        f"R1,C1,{d} 10:15 AM,{store.name},Ana,Diaz,(303) 555-0101,Gummies,2,$10.00,$20.00,2.00,Cash\n"
        f"R1,C1,{d} 10:15 AM,{store.name},Ana,Diaz,(303) 555-0101,Pre-roll,1,$5.50,$5.50,0.50,Cash\n"
        f"R2,C2,{d} 11:00 AM,{store.name},Bo,Li,,\"Flower, 3.5g\",1,\"$1,234.50\",\"$1,234.50\",0,Card\n"
        f"R3,C3,13/45/2020,{store.name},Bad,Date,,X,1,1,1,0,Cash\n"
    )
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)
    run = sync_run_execute(run_id=run.pk)
    assert run.state == "completed_with_errors", run.error  # one row had a bad date
    assert (run.files_imported, run.rows_accepted, run.rows_rejected) == (1, 3, 1)
    ana = Persona.objects.get(first_name="Ana")
    assert ana.phone == "+13035550101" and ana.is_member
    assert ana.points_balance == 25
    assert Transaction.objects.get(external_id="R2").subtotal == 1234.50
    f = ImportedFile.objects.get()
    assert f.row_errors.get().row_number == 5
    # again: nothing changes
    run2 = sync_run_execute(run_id=sync_run_create(connection=folder_connection, trigger="manual").pk)
    assert run2.files_skipped == 1
    assert PointsEntry.objects.count() == 2
    # deleted file removes data
    (reports_dir / "day1.csv").unlink()
    run3 = sync_run_execute(run_id=sync_run_create(connection=folder_connection, trigger="manual").pk)
    assert run3.files_removed == 1
    ana.refresh_from_db()
    assert ana.points_balance == 0
    assert Transaction.objects.count() == 0
