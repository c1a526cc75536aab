from cryptography.fernet import Fernet
from django.test import override_settings

from integrations.services.connections import connection_create, connection_update


def test_secrets_saved_under_an_old_key_can_be_entered_again(company, db):
    connection = connection_create(
        company=company, name="Bucket", provider="s3",
        settings={"bucket": "reports", "region": "us-east-1"},
        credentials={"access_key_id": "AKIAOLD", "secret_access_key": "old-secret-1234"})
    with override_settings(FIELD_ENCRYPTION_KEYS=[Fernet.generate_key().decode()]):
        connection_update(connection=connection, name="Bucket", settings=connection.settings,
                          credentials={"access_key_id": "AKIANEW", "secret_access_key": "new-secret-5678"},
                          default_store=None, enroll_new_customers=True)
        connection.refresh_from_db()
        assert connection.credentials_plain() == {"access_key_id": "AKIANEW",
                                                  "secret_access_key": "new-secret-5678"}
        assert connection.credentials_hint["secret_access_key"] == "…5678"


def test_create_takes_the_nightly_time_and_enrolment(company, reports_root):
    import datetime as dt

    connection = connection_create(company=company, name="Folder", provider="folder",
                                   settings={"path": "reports"}, credentials={},
                                   enroll_new_customers=False, sync_time=dt.time(3, 30))
    assert connection.enroll_new_customers is False
    assert (connection.periodic_task.crontab.hour, connection.periodic_task.crontab.minute) == ("3", "30")


def test_a_rejected_file_imports_on_the_next_sync_once_its_headers_are_mapped(
        folder_connection, reports_dir, store, db):
    import datetime as dt

    from django.utils import timezone

    from integrations.models import ImportedFile
    from integrations.services.connections import connection_header_map_save
    from integrations.services.sync import sync_run_create, sync_run_execute

    day = (timezone.localdate() - dt.timedelta(days=2)).strftime("%m/%d/%Y")
    (reports_dir / "raw.csv").write_text(
        f"Ticket No.,Cust #,Date,Location,Net\nT1,P1,{day},{store.name},20.00\n")

    def sync():
        return sync_run_execute(run_id=sync_run_create(connection=folder_connection, trigger="manual").pk)

    assert sync().files_rejected == 1
    again = sync()  # unchanged and nothing new to read it with: still rejected
    assert (again.state, again.files_rejected, again.files_skipped) == ("completed_with_errors", 1, 0)
    connection_header_map_save(connection=folder_connection, mapping={
        "Ticket No.": "transaction_id", "Cust #": "customer_id", "Date": "occurred_at",
        "Location": "store", "Net": "line_total"})
    run = sync()
    assert (run.files_imported, run.rows_accepted) == (1, 1)
    assert ImportedFile.objects.get(key="raw.csv").state == "imported"


def test_customers_a_report_enrolls_get_the_signup_bonus_once(folder_connection, reports_dir, store, db):
    import datetime as dt

    from django.utils import timezone

    from integrations.services.sync import sync_run_create, sync_run_execute
    from loyalty.models import LoyaltyProgram, Persona

    LoyaltyProgram.objects.update_or_create(company=folder_connection.company, defaults={"signup_bonus": 30})
    day = (timezone.localdate() - dt.timedelta(days=2)).strftime("%m/%d/%Y")
    report = reports_dir / "day.csv"
    report.write_text(f"ReceiptId,customerId,TransactionDate,Location,LineTotal\nR1,C1,{day},{store.name},10.00\n")
    sync_run_execute(run_id=sync_run_create(connection=folder_connection, trigger="manual").pk)
    report.write_text(f"ReceiptId,customerId,TransactionDate,Location,LineTotal\nR1,C1,{day},{store.name},12.00\n")
    sync_run_execute(run_id=sync_run_create(connection=folder_connection, trigger="manual").pk)
    persona = Persona.objects.get(identities__external_id="C1")
    assert persona.points_balance == 30 + 12
    assert persona.points_entries.filter(reason="Signup bonus").count() == 1


def test_an_import_tells_subscribed_webhooks_whose_points_changed(folder_connection, reports_dir, store, db):
    import datetime as dt

    from django.utils import timezone

    from integrations.services.sync import sync_run_create, sync_run_execute
    from loyalty.models import Persona, WebhookDelivery
    from loyalty.services.webhooks import webhook_endpoint_create

    webhook_endpoint_create(company=folder_connection.company, url="https://pos.example/hooks",
                            events=["points.changed"])
    day = (timezone.localdate() - dt.timedelta(days=2)).strftime("%m/%d/%Y")
    (reports_dir / "day.csv").write_text(
        f"ReceiptId,customerId,TransactionDate,Location,LineTotal\nR1,C1,{day},{store.name},10.00\n"
        f"R2,C2,{day},{store.name},20.00\n")
    sync_run_execute(run_id=sync_run_create(connection=folder_connection, trigger="manual").pk)
    sent = {d.payload["persona_id"]: d.payload["points_balance"]
            for d in WebhookDelivery.objects.filter(event="points.changed")}
    personas = {p.pk: p.points_balance for p in Persona.objects.filter(company=folder_connection.company)}
    assert sent == personas and sorted(sent.values()) == [10, 20]
