"""The connection pages: tenancy, roles, forms, the mapping preview, runs, row errors, purge."""

import csv
import datetime as dt
import io
from unittest import mock

import pytest
from django.core.cache import cache
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection, ImportedFile, StoreMapping, SyncRun
from integrations.providers.folder import FolderProvider
from integrations.services.connections import connection_create, connection_freeze
from integrations.services.sync import progress_key, sync_run_create, sync_run_execute
from loyalty.models import Persona, Transaction
from tests.factories import RetailStoreFactory


def recent(days=3):
    return (timezone.localdate() - dt.timedelta(days=days)).strftime("%m/%d/%Y")


def sync(connection) -> SyncRun:
    run = sync_run_create(connection=connection, trigger=SyncRun.Trigger.MANUAL)
    return sync_run_execute(run_id=run.pk)


def write_report(reports_dir, store, name="day1.csv", *, receipt_header="ReceiptId", location=None):
    d = recent()
    location = location or store.name
    (reports_dir / name).write_text(
        f"{receipt_header},customerId,TransactionDate,Location,FirstName,ProductName,Quantity,LineTotal\n"
        f"R1,C1,{d} 10:15 AM,{location},Ana,Gummies,2,$20.00\n"
        f"R2,C2,13/45/2020,{location},Bo,Vape,1,$30.00\n"
        f"R3,C3,{d} 11:00 AM,LOC-9,Cy,Tincture,1,$40.00\n"
    )


@pytest.fixture
def synced(folder_connection, reports_dir, store):
    """A folder connection after one real sync: 1 row in, 1 bad date, 1 unknown store."""
    write_report(reports_dir, store)
    run = sync(folder_connection)
    assert run.state == SyncRun.State.COMPLETED_WITH_ERRORS, run.error
    return folder_connection, run, ImportedFile.objects.get(connection=folder_connection)


def page_urls(connection, run, imported_file):
    """Every page with an id in its URL: (method, url)."""
    c, r, f = connection.pk, run.pk, imported_file.pk
    return [
        ("get", reverse("connection_detail", args=[c])),
        ("get", reverse("connection_edit", args=[c])),
        ("post", reverse("connection_test", args=[c])),
        ("post", reverse("connection_sync", args=[c])),
        ("post", reverse("connection_freeze", args=[c])),
        ("get", reverse("connection_delete", args=[c])),
        ("post", reverse("connection_delete", args=[c])),
        ("get", reverse("connection_header_mapping", args=[c])),
        ("post", reverse("connection_header_mapping", args=[c])),
        ("get", reverse("connection_store_mappings", args=[c])),
        ("post", reverse("connection_store_mappings", args=[c])),
        ("get", reverse("sync_run_detail", args=[r])),
        ("get", reverse("imported_file_errors", args=[f])),
        ("get", reverse("imported_file_errors_csv", args=[f])),
        ("get", reverse("imported_file_purge", args=[f])),
        ("post", reverse("imported_file_purge", args=[f])),
    ]


def test_pages_are_a_404_for_another_companys_connection(admin_client, other_company, reports_root):
    # given: another company's connection with a run and a file
    store = RetailStoreFactory(company=other_company)
    theirs = connection_create(company=other_company, name="Theirs", provider="folder",
                               settings={"path": ""}, credentials={})
    (reports_root / other_company.slug).mkdir()
    (reports_root / other_company.slug / "day.csv").write_text(
        f"ReceiptId,customerId,TransactionDate,Location\nR1,C1,{recent()},{store.name}\n")
    run = sync(theirs)
    imported_file = ImportedFile.objects.get(connection=theirs)
    # when / then: our admin gets a 404 everywhere, and nothing of theirs changes
    for method, url in page_urls(theirs, run, imported_file):
        response = getattr(admin_client, method)(url, {"frozen": "1", "keep_data": "remove"})
        assert response.status_code == 404, (method, url)
    theirs.refresh_from_db()
    assert not theirs.is_frozen
    assert SyncRun.objects.filter(connection=theirs).count() == 1


@pytest.mark.parametrize("role_user", ["marketer_user", "budtender_user"])
def test_pages_are_a_403_for_marketers_and_budtenders(client, request, role_user, synced):
    connection, run, imported_file = synced
    client.force_login(request.getfixturevalue(role_user))
    urls = [("get", reverse("connection_list")), ("get", reverse("connection_create")),
            ("post", reverse("connection_create")),
            ("get", reverse("report_template_csv", args=["s3"]))]
    for method, url in urls + page_urls(connection, run, imported_file):
        response = getattr(client, method)(url)
        assert response.status_code == 403, (method, url)
    # and the navigation does not offer the pages
    assert b"Integrations" not in client.get(reverse("persona_list")).content


def test_connection_list_shows_last_sync_files_and_frozen(admin_client, synced):
    connection, run, _ = synced
    connection_freeze(connection=connection, frozen=True)
    page = admin_client.get(reverse("connection_list")).content.decode()
    assert "Nightly reports" in page and "Folder on the server" in page
    assert "Completed with errors" in page and "Frozen" in page
    assert reverse("sync_run_detail", args=[run.pk]) in page
    # the navigation's Integrations is the catalog, which links to this list
    catalog = reverse("integration_catalog")
    assert catalog in admin_client.get(reverse("persona_list")).content.decode()
    assert reverse("connection_list") in admin_client.get(catalog).content.decode()


def test_connection_create_never_echoes_the_secret(admin_client, company, store):
    # given: a new S3 connection with credentials
    response = admin_client.post(reverse("connection_create"), {
        "provider": "s3", "name": "Bucket reports", "bucket": "green-leaf", "region": "us-west-2",
        "access_key_id": "AKIAEXAMPLEKEY", "secret_access_key": "very-secret-value-9876",
        "default_store": store.pk, "sync_time": "03:30",
    })
    connection = Connection.objects.get(company=company, name="Bucket reports")
    assert response.status_code == 302
    assert response["Location"] == reverse("connection_detail", args=[connection.pk])
    assert connection.credentials_plain()["secret_access_key"] == "very-secret-value-9876"
    assert connection.settings["bucket"] == "green-leaf"
    assert (connection.sync_time, connection.enroll_new_customers) == (dt.time(3, 30), False)
    assert connection.periodic_task.crontab.hour == "3"
    # when: the pages show the connection
    for url in (reverse("connection_detail", args=[connection.pk]),
                reverse("connection_edit", args=[connection.pk])):
        page = admin_client.get(url).content.decode()
        # then: only the hint, never the secret
        assert "very-secret-value-9876" not in page
        assert "ending …9876" in page
    edit = admin_client.get(reverse("connection_edit", args=[connection.pk])).content.decode()
    assert 'type="password"' in edit and 'value="very-secret' not in edit
    assert "America/Denver" in edit


def test_connection_edit_blank_secret_keeps_the_stored_one(admin_client, company):
    secrets = {"access_key_id": "AKIA1111", "secret_access_key": "old-secret-1111"}
    connection = connection_create(company=company, name="Bucket", provider="s3",
                                   settings={"bucket": "b"}, credentials=secrets)
    url = reverse("connection_edit", args=[connection.pk])
    data = {"name": "Bucket renamed", "bucket": "b2", "access_key_id": "", "secret_access_key": "",
            "sync_time": "02:00", "enroll_new_customers": "on"}
    response = admin_client.post(url, data, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("connection_detail", args=[connection.pk])
    connection.refresh_from_db()
    assert connection.name == "Bucket renamed" and connection.settings["bucket"] == "b2"
    assert connection.credentials_plain() == secrets
    # a new secret replaces the old one
    admin_client.post(url, data | {"secret_access_key": "new-secret-2222"})
    connection.refresh_from_db()
    assert connection.credentials_plain()["secret_access_key"] == "new-secret-2222"
    assert connection.credentials_hint["secret_access_key"] == "…2222"


def test_connection_form_shows_a_service_error_on_its_field(admin_client, folder_connection):
    data = {"provider": "folder", "name": "Nightly reports", "path": "daily", "sync_time": "02:00"}
    response = admin_client.post(reverse("connection_create"), data)
    assert response.status_code == 400
    assert "already a connection or source named" in response.content.decode()
    response = admin_client.post(reverse("connection_create"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # htmx swaps the form back with its errors
    page = response.content.decode()
    assert 'id="connection-form"' in page and "<html" not in page
    assert Connection.objects.filter(name="Nightly reports").count() == 1


def test_connection_create_asks_for_the_provider_first(admin_client):
    page = admin_client.get(reverse("connection_create")).content.decode()
    assert "?provider=s3" in page and "?provider=onedrive" in page and "?provider=folder" in page
    page = admin_client.get(reverse("connection_create") + "?provider=onedrive").content.decode()
    assert "Tenant id" in page and "Client secret" in page


def test_connection_test_says_not_found_for_a_missing_folder(admin_client, company, reports_root):
    connection = connection_create(company=company, name="Gone", provider="folder",
                                   settings={"path": "missing"}, credentials={})
    url = reverse("connection_test", args=[connection.pk])
    response = admin_client.post(url, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    assert response.status_code == 200 and "<html" not in page
    assert "Not found:" in page and "does not exist" in page
    # and a folder that is there
    (reports_root / company.slug / "missing").mkdir(parents=True)
    page = admin_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "Connected:" in page and "0 CSV files" in page


def test_report_template_csv_has_the_exact_headers(admin_client):
    response = admin_client.get(reverse("report_template_csv", args=["s3"]))
    assert response["Content-Disposition"] == 'attachment; filename="s3-report-template.csv"'
    headers = next(csv.reader(io.StringIO(response.content.decode())))
    assert headers[:3] == ["ReceiptId", "customerId", "TransactionDate"]
    response = admin_client.get(reverse("report_template_csv", args=["onedrive"]))
    assert response.content.decode().startswith("TransactionID,Patient Number,")
    assert admin_client.get(reverse("report_template_csv", args=["ftp"])).status_code == 404


def test_header_mapping_preview_marks_a_bad_date_and_saves(admin_client, folder_connection, reports_dir,
                                                           store):
    # given: a file whose receipt column has a name we cannot guess
    write_report(reports_dir, store, "export.csv", receipt_header="Ticket No.")
    url = reverse("connection_header_mapping", args=[folder_connection.pk])
    assert "export.csv" in admin_client.get(url).content.decode()  # offered from the source
    # when: the admin picks it
    response = admin_client.post(url, {"source_file": "export.csv"}, HTTP_HX_REQUEST="true")
    page = response.content.decode()
    # then: the required column is missing, and the bad date is marked on its cell
    assert response.status_code == 200
    assert 'data-testid="missing-required"' in page and "ReceiptId" in page
    assert 'class="cell-problem" title="is not a date' in page
    assert "13/45/2020" in page
    token = page.split('name="token" value="')[1].split('"')[0]
    # when: the first column is mapped by hand, the preview follows the choice
    choices = {"token": token, "field-0": "transaction_id", "field-1": "customer_id",
               "field-2": "occurred_at", "field-3": "store", "field-4": "first_name",
               "field-5": "product", "field-6": "quantity", "field-7": "line_total"}
    page = admin_client.post(url, choices, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="missing-required"' not in page
    assert '<option value="transaction_id" selected>' in page
    # and saving stores the mapping
    response = admin_client.post(url, choices | {"save": "1"}, HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("connection_detail", args=[folder_connection.pk])
    folder_connection.refresh_from_db()
    assert folder_connection.header_map["Ticket No."] == "transaction_id"
    assert "Ticket No." in admin_client.get(reverse("connection_detail", args=[folder_connection.pk])
                                            ).content.decode()
    assert 'data-testid="saved-map"' in admin_client.get(url).content.decode()


def test_header_mapping_save_refused_without_a_required_field(admin_client, folder_connection):
    url = reverse("connection_header_mapping", args=[folder_connection.pk])
    sample = SimpleUploadedFile("sample.csv", b"Ticket No.,customerId,TransactionDate\nA1,C1,2026-01-02\n")
    page = admin_client.post(url, {"sample": sample}).content.decode()
    token = page.split('name="token" value="')[1].split('"')[0]
    response = admin_client.post(url, {"token": token, "field-0": "", "field-1": "customer_id",
                                       "field-2": "occurred_at", "save": "1"})
    assert response.status_code == 400
    assert "Map a column to Transaction id" in response.content.decode()
    folder_connection.refresh_from_db()
    assert folder_connection.header_map == {}


def test_header_mapping_says_when_nothing_needs_mapping(admin_client, folder_connection):
    url = reverse("connection_header_mapping", args=[folder_connection.pk])
    sample = SimpleUploadedFile("ok.csv",
                                b"ReceiptId,customerId,TransactionDate,LineTotal\nR1,C1,2026-01-02,5\n")
    page = admin_client.post(url, {"sample": sample}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="nothing-to-map"' in page
    # an expired or forged token asks for the sample again
    page = admin_client.post(url, {"token": "0" * 32}, HTTP_HX_REQUEST="true").content.decode()
    assert "The sample has expired" in page


def test_header_mapping_shows_why_a_file_is_unreadable(admin_client, folder_connection):
    url = reverse("connection_header_mapping", args=[folder_connection.pk])
    sample = SimpleUploadedFile("empty.csv", b"")
    page = admin_client.post(url, {"sample": sample}, HTTP_HX_REQUEST="true").content.decode()
    assert 'data-testid="unreadable"' in page and "empty.csv is empty" in page


def test_store_mappings_suggest_unknown_locations_and_add_remove(admin_client, synced, store):
    connection, _, _ = synced
    url = reverse("connection_store_mappings", args=[connection.pk])
    # given: the last import did not know LOC-9
    page = admin_client.get(url).content.decode()
    assert 'data-testid="unknown-locations"' in page and "LOC-9" in page
    # when: it is mapped in one click
    response = admin_client.post(url, {"external_location_id": "LOC-9", "store": store.pk},
                                 HTTP_HX_REQUEST="true")
    # then: the mapping exists and the suggestion is gone
    page = response.content.decode()
    assert StoreMapping.objects.get(connection=connection).external_location_id == "LOC-9"
    assert "now means Denver" in page and 'data-testid="unknown-locations"' not in page
    # and it can be removed again
    response = admin_client.post(url, {"external_location_id": "LOC-9", "store": ""})
    assert response.status_code == 302
    assert not StoreMapping.objects.filter(connection=connection).exists()
    # another company's store is not a choice
    theirs = RetailStoreFactory()
    response = admin_client.post(url, {"external_location_id": "X", "store": theirs.pk})
    assert response.status_code == 400
    assert not StoreMapping.objects.filter(connection=connection).exists()


def test_sync_run_page_shows_counts_and_stops_polling_when_done(admin_client, synced):
    _, run, imported_file = synced
    url = reverse("sync_run_detail", args=[run.pk])
    page = admin_client.get(url).content.decode()
    assert "Completed with errors" in page and "· 1 of 3 rows accepted, 2 rejected" in page
    assert 'data-testid="rows-accepted">1<' in page and 'data-testid="rows-rejected">2<' in page
    assert 'data-testid="files-imported">1<' in page
    assert reverse("imported_file_errors", args=[imported_file.pk]) in page
    assert "every 1s" not in page
    partial = admin_client.get(url, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="run-status").content.decode()
    assert partial.lstrip().startswith('<div id="run-status"') and "<html" not in partial


def test_sync_run_page_polls_while_running(admin_client, folder_connection):
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)
    SyncRun.objects.filter(pk=run.pk).update(state=SyncRun.State.RUNNING, started_at=timezone.now(),
                                             current_file="big.csv")
    cache.set(progress_key(run.pk), 12345, 60)
    page = admin_client.get(reverse("sync_run_detail", args=[run.pk]), HTTP_HX_REQUEST="true",
                            HTTP_HX_TARGET="run-status").content.decode()
    assert 'hx-trigger="every 1s"' in page
    assert "Reading big.csv: 12,345 rows so far" in page


def test_sync_now_queues_a_run_once(admin_client, folder_connection, django_capture_on_commit_callbacks):
    url = reverse("connection_sync", args=[folder_connection.pk])
    with mock.patch("integrations.views.connection_sync.delay") as delay, \
            django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, HTTP_HX_REQUEST="true")
    run = SyncRun.objects.get(connection=folder_connection)
    assert (run.trigger, run.state) == ("manual", "queued")
    assert response["HX-Redirect"] == reverse("sync_run_detail", args=[run.pk])
    delay.assert_called_once_with(run.pk)
    # a second click while it is queued says so, and links to the run
    page = admin_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "already queued" in page and reverse("sync_run_detail", args=[run.pk]) in page
    assert SyncRun.objects.filter(connection=folder_connection).count() == 1


def test_freeze_and_sync_now_on_a_frozen_connection(admin_client, folder_connection):
    response = admin_client.post(reverse("connection_freeze", args=[folder_connection.pk]), {"frozen": "1"})
    assert response.status_code == 302
    folder_connection.refresh_from_db()
    assert folder_connection.is_frozen and not folder_connection.periodic_task.enabled
    response = admin_client.post(reverse("connection_sync", args=[folder_connection.pk]), follow=True)
    assert "is frozen" in response.content.decode()
    assert not SyncRun.objects.exists()
    admin_client.post(reverse("connection_freeze", args=[folder_connection.pk]), {"frozen": "0"})
    folder_connection.refresh_from_db()
    assert not folder_connection.is_frozen


def test_row_errors_page_and_csv_download(admin_client, synced):
    _, _, imported_file = synced
    page = admin_client.get(reverse("imported_file_errors", args=[imported_file.pk])).content.decode()
    assert "13/45/2020" in page and "LOC-9" in page
    response = admin_client.get(reverse("imported_file_errors_csv", args=[imported_file.pk]))
    assert response.streaming
    assert response["Content-Disposition"] == 'attachment; filename="day1-rejected-rows.csv"'
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert lines[0] == [*imported_file.headers, "error"]
    bad_date = next(line for line in lines if "R2" in line)
    assert bad_date[:3] == ["R2", "C2", "13/45/2020"]
    assert bad_date[-1].startswith("TransactionDate: is not a date")
    assert len(lines) == 3


def test_purge_a_file_removed_from_the_source(admin_client, marketer_user, folder_connection,
                                              reports_dir, store, monkeypatch):
    # given: a folder that keeps the data of deleted files, as OneDrive does, and a file gone
    monkeypatch.setattr(FolderProvider, "deletion_removes_data", False)
    write_report(reports_dir, store)
    sync(folder_connection)
    (reports_dir / "day1.csv").unlink()
    sync(folder_connection)
    imported_file = ImportedFile.objects.get(connection=folder_connection)
    assert imported_file.state == ImportedFile.State.REMOVED
    ana = Persona.objects.get(first_name="Ana")
    assert ana.points_balance > 0 and Transaction.objects.count() == 1
    purge_url = reverse("imported_file_purge", args=[imported_file.pk])
    # the detail page offers the purge, a marketer may not
    detail = admin_client.get(reverse("connection_detail", args=[folder_connection.pk])).content.decode()
    assert purge_url in detail and "Purge this file" in detail
    marketer = Client()
    marketer.force_login(marketer_user)
    assert marketer.post(purge_url).status_code == 403
    # when: the admin confirms
    page = admin_client.get(purge_url).content.decode()
    assert "cannot be undone" in page and "1 sale" in page
    response = admin_client.post(purge_url, follow=True)
    # then: the sale is gone and its points are taken back
    assert "1 sale deleted" in response.content.decode()
    imported_file.refresh_from_db()
    ana.refresh_from_db()
    assert imported_file.state == ImportedFile.State.PURGED
    assert Transaction.objects.count() == 0 and ana.points_balance == 0
    # and a purged file cannot be purged again
    response = admin_client.get(purge_url, follow=True)
    assert "only a file removed from the source" in response.content.decode()


@pytest.mark.parametrize("choice, sales_left", [("keep", 1), ("remove", 0)])
def test_delete_connection_asks_what_to_do_with_its_data(admin_client, synced, choice, sales_left):
    connection, _, _ = synced
    url = reverse("connection_delete", args=[connection.pk])
    page = admin_client.get(url).content.decode()
    assert "Keep them" in page and "Remove them" in page
    assert admin_client.post(url, {}).status_code == 400  # a choice is required
    response = admin_client.post(url, {"keep_data": choice})
    assert response["Location"] == reverse("integration_catalog")
    assert not Connection.objects.filter(pk=connection.pk).exists()
    assert Transaction.objects.count() == sales_left


def test_a_connection_whose_connector_is_no_longer_installed_says_so_and_can_be_deleted(
        admin_client, company, reports_root):
    # given a connection whose connector was taken out of this installation
    (reports_root / company.slug).mkdir(exist_ok=True)
    gone = connection_create(company=company, name="Old POS", provider="folder", settings={"path": ""},
                             credentials={})
    Connection.objects.filter(pk=gone.pk).update(provider="retired-pos")

    # when its pages are opened and its actions sent
    pages = [admin_client.get(reverse(name, args=[gone.pk]))
             for name in ("connection_detail", "connection_edit", "connection_header_mapping")]
    sync = admin_client.post(reverse("connection_sync", args=[gone.pk]))

    # then each says the connector is gone instead of failing, nothing runs, and it can be deleted
    assert [page.status_code for page in pages] == [200, 200, 200]
    assert all(b"no longer installed" in page.content for page in pages)
    assert sync.status_code == 409 and not SyncRun.objects.filter(connection=gone).exists()
    assert admin_client.get(reverse("integration_catalog")).status_code == 200
    deleted = admin_client.post(reverse("connection_delete", args=[gone.pk]), {"keep_data": "keep"})
    assert deleted.status_code == 302 and not Connection.objects.filter(pk=gone.pk).exists()
