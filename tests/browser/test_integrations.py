"""An admin maps a report's headers by hand, syncs it and reads its row errors, in a real
browser, with a real Celery worker taking the sync from the real Redis broker."""

import datetime as dt
import re

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from integrations.models import SyncRun
from integrations.services.connections import connection_create
from loyalty.models import Transaction
from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory, RetailStoreFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(company, reports_root):
    admin = MembershipFactory(company=company, role=Role.ADMIN, user__username="shop-admin").user
    store = RetailStoreFactory(company=company, name="Denver")
    reports = reports_root / company.slug / "reports"
    reports.mkdir(parents=True)
    day = (timezone.localdate() - dt.timedelta(days=3)).strftime("%m/%d/%Y")
    # "Ticket No." is not a name we can guess: it has to be mapped to the transaction id.
    (reports / "export.csv").write_text(
        "Ticket No.,customerId,TransactionDate,Location,FirstName,ProductName,Quantity,LineTotal\n"
        f"T-1,C1,{day} 10:15 AM,Denver,Ana,Gummies,2,$20.00\n"
        f"T-2,C2,13/45/2020,Denver,Bo,Vape,1,$30.00\n"
        f"T-3,C3,{day} 11:00 AM,Denver,Cy,Tincture,1,$40.00\n"
    )
    connection = connection_create(company=company, name="Store reports", provider="folder",
                                   settings={"path": "reports"}, credentials={}, default_store=store)
    return admin, connection


def test_admin_maps_headers_syncs_and_reads_row_errors(page, live_server, shop, celery_worker_start):
    admin, connection = shop
    log_in(page, live_server, admin.username)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Integrations").click()
    page.get_by_role("link", name="Store reports").click()
    expect(page.get_by_role("heading", name=re.compile("Store reports"))).to_be_visible()
    page.get_by_role("link", name="Header mapping").click()

    # Pick the file in the source: the receipt column is not recognised.
    page.get_by_label("Pick a file in the source").select_option("export.csv")
    page.get_by_role("button", name="Preview").click()
    expect(page.get_by_test_id("missing-required")).to_contain_text("ReceiptId")
    bad_cell = page.locator("td.cell-problem", has_text="13/45/2020")
    expect(bad_cell).to_contain_text("is not a date")
    page.evaluate("window.__noReload = true")

    # Map it by hand; the preview follows without a page load.
    page.get_by_label("Ticket No. imports as").select_option(label="Transaction id")
    expect(page.get_by_test_id("missing-required")).to_have_count(0)
    expect(page.get_by_test_id("preview-table").locator("th").nth(1)).to_contain_text("Transaction id")
    expect(bad_cell).to_be_visible()
    expect(page.get_by_test_id("problem-count")).to_have_text("1 row will be rejected")
    assert page.evaluate("window.__noReload") is True

    page.get_by_role("button", name="Save mapping").click()
    saved = page.get_by_role("status").filter(has_text="Header mapping of Store reports saved")
    expect(saved).to_be_visible()
    connection.refresh_from_db()
    assert connection.header_map["Ticket No."] == "transaction_id"

    # Sync now: the run waits in the broker until a worker is there.
    page.get_by_role("button", name="Sync now").click()
    expect(page).to_have_url(re.compile(r"/settings/integrations/runs/\d+/$"))
    expect(page.get_by_test_id("run-state")).to_have_text("Queued")
    page.evaluate("window.__noReload = true")
    celery_worker_start()

    # The status block polls itself until the run is done; no reload.
    expect(page.get_by_test_id("run-state")).to_have_text(
        "Completed with errors · 2 of 3 rows accepted, 1 rejected", timeout=30_000)
    assert page.evaluate("window.__noReload") is True
    expect(page.get_by_test_id("rows-accepted")).to_have_text("2")
    expect(page.get_by_test_id("rows-rejected")).to_have_text("1")
    assert SyncRun.objects.get(connection=connection).state == SyncRun.State.COMPLETED_WITH_ERRORS
    assert Transaction.objects.filter(source=connection.source).count() == 2
    # Polling stopped with the run.
    expect(page.locator("#run-status[hx-trigger]")).to_have_count(0)

    page.get_by_role("link", name="See 1 row error").click()
    expect(page.get_by_role("heading", name="Rejected rows of export.csv")).to_be_visible()
    row = page.get_by_test_id("row-error-table").locator("tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("13/45/2020")
    expect(row).to_contain_text("TransactionDate")
    expect(row).to_contain_text("is not a date")
    expect(page.get_by_role("link", name="Download rejected rows (CSV)")).to_be_visible()
