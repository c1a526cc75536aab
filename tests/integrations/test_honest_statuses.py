"""Statuses that say what happened: a run that rejected rows is not a success, a Cova
credential is Connected only once something worked, an unchanged rejected file is still
rejected, and the header mapping never says "No problems" with a required column unmapped."""

import contextlib
import datetime as dt
import io
import re
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import call_command
from django.core.management.base import CommandError
from django.urls import reverse
from django.utils import timezone

from integrations.models import CovaCredential, ImportedFile, SyncRun
from integrations.services.cova import cova_connection_create, cova_credential_save

from . import cova_fake

cova_server = cova_fake.cova_server

pytestmark = pytest.mark.django_db


def text(html: str) -> str:
    """The page as a user reads it: no tags, single spaces."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html))).strip()


def recent() -> str:
    return (timezone.localdate() - dt.timedelta(days=2)).strftime("%m/%d/%Y")


def all_rows_bad(store, rows: int = 46) -> str:
    """A report whose every row has a date nobody can read."""
    lines = [f"R{i},C{i},13/45/2020,{store.name},Gummies,1,10.00" for i in range(rows)]
    return "ReceiptId,customerId,TransactionDate,Location,ProductName,Quantity,LineTotal\n" + "\n".join(lines)


# --- 1. runs: Succeeded, Completed with errors, Failed -------------------------------------------

def test_sync_run_that_rejected_every_row_completes_with_errors(admin_client, folder_connection, write_report,
                                                                  run_sync, store):
    # given: a report of 46 rows, every one rejected
    write_report("day1.csv", all_rows_bad(store))
    # when
    run = run_sync(folder_connection)
    # then: the run says so, with its counts, on its page, on the dashboard and in the list
    assert (run.state, run.rows_accepted, run.rows_rejected) == ("completed_with_errors", 0, 46)
    page = text(admin_client.get(reverse("sync_run_detail", args=[run.pk])).content.decode())
    assert "Completed with errors · 0 of 46 rows accepted, 46 rejected" in page
    assert "Succeeded" not in page
    home = admin_client.get(reverse("home")).content.decode()
    attention = text(home.split('data-testid="failing-integrations"')[1].split("</section>")[0])
    assert "Completed with errors Nightly reports" in attention and "0 of 46 rows accepted" in attention
    assert "Failing" not in attention
    listing = text(admin_client.get(reverse("connection_list")).content.decode())
    assert "Completed with errors" in listing and "Succeeded" not in listing


def test_sync_run_with_a_file_rejected_whole_completes_with_errors(folder_connection, write_report, run_sync,
                                                                   store):
    # given: one good file and one without the customer column
    write_report("good.csv", f"ReceiptId,customerId,TransactionDate,Location,LineTotal\n"
                             f"R1,C1,{recent()},{store.name},10.00\n")
    write_report("bad.csv", "ReceiptId,TransactionDate,LineTotal\nR2,2026-01-01,1.00\n")
    # when
    run = run_sync(folder_connection)
    # then
    assert (run.state, run.files_imported, run.files_rejected) == ("completed_with_errors", 1, 1)
    assert run.rows_summary == "1 of 1 row accepted, 0 rejected; 1 file rejected"


def test_sync_run_with_every_row_accepted_succeeds_and_needs_no_look(admin_client, folder_connection,
                                                                     write_report, run_sync, store):
    # given
    write_report("day1.csv", f"ReceiptId,customerId,TransactionDate,Location,LineTotal\n"
                             f"R1,C1,{recent()},{store.name},10.00\n")
    # when
    run = run_sync(folder_connection)
    # then
    assert run.state == "succeeded"
    home = admin_client.get(reverse("home")).content.decode()
    assert 'data-testid="failing-integrations"' not in home


# --- 2. Cova credentials: Not verified, Connected, Failing since --------------------------------

def credential_badge(admin_client, credential) -> str:
    page = admin_client.get(reverse("cova_connection", args=[credential.connection_id])).content.decode()
    return text(page.split(f'id="credential-status-{credential.pk}" data-testid="credential-status">')[1]
                .split("</span></span>")[0])


@pytest.fixture
def cova(company, cova_server):  # noqa: F811
    cova_server.add_location("Downtown", "CO", location_id=1001)
    connection = cova_connection_create(company=company)
    return cova_credential_save(
        connection=connection, client_id=cova_server.client_id, client_secret=cova_server.client_secret,
        username=cova_server.username, password=cova_server.password,
        cova_company_id=str(cova_server.company_id), accounts_url=cova_server.url, api_url=cova_server.url)


def press_test_connection(client, credential):
    """Press Test connection, let the worker run the test, and return the result card as
    it polls."""
    from integrations.services.cova import cova_credential_test_run

    client.post(reverse("cova_credential_test", args=[credential.pk]), HTTP_HX_REQUEST="true")
    cova_credential_test_run(credential_id=credential.pk)
    return client.get(reverse("cova_connection", args=[credential.connection_id]), HTTP_HX_REQUEST="true",
                      HTTP_HX_TARGET=f"test-result-{credential.pk}")


def test_cova_credential_is_not_verified_until_a_test_connects(admin_client, cova, cova_server):  # noqa: F811
    # given: a credential just saved
    assert "Not verified" in credential_badge(admin_client, cova)
    # when: the test connects
    response = press_test_connection(admin_client, cova)
    # then: the badge the test swaps in, and the page, say Connected
    assert 'hx-swap-oob="true"' in response.content.decode() and "Connected" in response.content.decode()
    assert credential_badge(admin_client, cova).startswith("Connected")
    cova.refresh_from_db()
    assert cova.verified_at is not None and cova.failing_since is None


def test_cova_credential_test_that_cannot_connect_shows_failing_since(admin_client, cova, cova_server):  # noqa: F811
    # given: a credential that worked once
    press_test_connection(admin_client, cova)
    # when: Cova refuses the password
    cova_server.password = "changed-at-cova"
    response = press_test_connection(admin_client, cova)
    # then: not a green Connected beside "Could not connect", but Failing since, with the error
    swapped = text(response.content.decode())
    assert "Failing since" in swapped and "Connected" not in swapped
    cova.refresh_from_db()
    assert cova.failing_since is not None and cova.last_error
    badge = credential_badge(admin_client, cova)
    assert badge.startswith("Failing since") and "Connected" not in badge
    page = admin_client.get(reverse("cova_connection", args=[cova.connection_id])).content.decode()
    assert cova.last_error in text(page)
    catalog = admin_client.get(reverse("integration_catalog")).content.decode()
    assert 'data-testid="integration-cova" data-status="failing"' in catalog
    # when: a later test works again, it is Connected, and stays failing-free
    cova_server.password = cova.secrets_plain()["password"]
    press_test_connection(admin_client, cova)
    assert credential_badge(admin_client, cova).startswith("Connected")


def test_cova_sync_failure_and_success_set_the_credential_status(admin_client, cova, cova_server):  # noqa: F811
    from integrations.services.sync import SyncFailed, sync_run_create, sync_run_execute

    def sync():
        run = sync_run_create(connection=cova.connection, credential=cova, trigger=SyncRun.Trigger.MANUAL)
        with contextlib.suppress(SyncFailed):  # the failure is what the test looks at
            sync_run_execute(run_id=run.pk)
        return SyncRun.objects.get(pk=run.pk)

    # given: Cova is down
    cova_server.fail_always(500)
    # when
    assert sync().state == "failed"
    # then
    first = CovaCredential.objects.get(pk=cova.pk)
    assert first.failing_since is not None and first.verified_at is None
    assert credential_badge(admin_client, cova).startswith("Failing since")
    # a second failure keeps the first time
    assert sync().state == "failed"
    assert CovaCredential.objects.get(pk=cova.pk).failing_since == first.failing_since
    # when: Cova is back
    cova_server.clear_faults()
    assert sync().state == "succeeded"
    cova.refresh_from_db()
    assert (cova.failing_since, cova.last_error) == (None, "") and cova.verified_at is not None
    assert credential_badge(admin_client, cova).startswith("Connected")


# --- 3. an unchanged rejected file -------------------------------------------------------------

def test_import_report_an_unchanged_rejected_file_says_it_was_rejected_and_what_to_fix(
        folder_connection, company, tmp_path):
    # given: a file without the customer column, rejected once
    day1 = tmp_path / "day1.csv"
    day1.write_text("ReceiptId,TransactionDate,LineTotal\nR1,2026-01-01,1.00\n")
    args = ("import_report", "--company", company.slug, "--connection", "Nightly reports", str(day1))
    with pytest.raises(CommandError):
        call_command(*args, stdout=io.StringIO())
    rejected_on = ImportedFile.objects.get().imported_at
    # when: the same file is imported again
    out = io.StringIO()
    with pytest.raises(CommandError) as caught:
        call_command(*args, stdout=out)
    # then
    assert caught.value.returncode == 1
    local = rejected_on.astimezone(ZoneInfo(company.timezone))
    assert (f"{day1}: day1.csv was rejected on {local:%b} {local.day} (missing the required column "
            "'customerId') and has not changed since; fix the file or the header mapping, then run again."
            ) in out.getvalue()
    assert "skipped, already imported" not in out.getvalue()
    assert SyncRun.objects.order_by("-id").first().state == "completed_with_errors"


def test_sync_an_unchanged_rejected_file_is_reported_rejected_not_skipped(admin_client, folder_connection,
                                                                          write_report, run_sync):
    # given
    write_report("day1.csv", "ReceiptId,TransactionDate,LineTotal\nR1,2026-01-01,1.00\n")
    run_sync(folder_connection)
    # when: the next sync finds it as it was
    run = run_sync(folder_connection)
    # then
    assert (run.state, run.files_rejected, run.files_skipped) == ("completed_with_errors", 1, 0)
    page = text(admin_client.get(reverse("sync_run_detail", args=[run.pk])).content.decode())
    assert "day1.csv was rejected on" in page
    assert "(missing the required column 'customerId') and has not changed since; fix the file" in page


# --- 4. header mapping -------------------------------------------------------------------------

def test_header_mapping_with_a_required_column_unmapped_never_says_no_problems(admin_client,
                                                                               folder_connection):
    # given: a sample whose customer column has names we do not match on our own
    url = reverse("connection_header_mapping", args=[folder_connection.pk])
    sample = SimpleUploadedFile("sample.csv", (
        f"ReceiptId,Cust #,Customer No,TransactionDate,LineTotal\nR1,C1,77,{recent()},5.00\n").encode())
    # when
    page = admin_client.post(url, {"sample": sample}, HTTP_HX_REQUEST="true").content.decode()
    # then
    read = text(page)
    assert "No problems" not in read
    assert "customerId is not mapped. Likely: 'Customer No', 'Cust #'" in read
    assert "The file will be rejected: customerId not mapped" in read
