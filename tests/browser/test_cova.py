"""An admin connects Cova from the integration catalog, tests the credential, maps a store to
a Cova location, syncs, and finds the customers "Sourced from Cova": in a real browser,
against the fake Cova, with a real Celery worker taking the sync from the real broker.

Set SCREENSHOTS=/tmp/shots to keep a picture of each page on the way."""

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from integrations.models import CovaCredential, StoreMapping, SyncRun
from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory, RetailStoreFactory
from tests.integrations import cova_fake

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

cova_server = cova_fake.cova_server


def shot(page, name: str) -> None:
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


@pytest.fixture
def shop(company, cova_server):
    admin = MembershipFactory(company=company, role=Role.ADMIN, user__username="shop-admin").user
    store = RetailStoreFactory(company=company, name="Denver", state="CO")
    cova_server.seed_demo(customers=12, sales_per_location=4, locations=2)
    return admin, store


def test_admin_connects_cova_maps_a_store_and_syncs(page, live_server, shop, cova_server,
                                                    celery_worker_start):
    admin, store = shop
    page.set_viewport_size({"width": 1360, "height": 900})
    log_in(page, live_server, admin.username)

    # Settings › Integrations: search for Cova and click Connect.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Integrations").click()
    expect(page.get_by_role("heading", name="Integrations", exact=True)).to_be_visible()
    expect(page.get_by_test_id("integration-cova")).to_contain_text("Not connected")
    shot(page, "catalog")
    page.evaluate("window.__noReload = true")
    page.get_by_label("Search integrations").fill("cova")
    expect(page.get_by_test_id("integration-s3")).to_have_count(0)
    assert page.evaluate("window.__noReload") is True
    cova_card = page.get_by_test_id("integration-cova")
    expect(cova_card).to_contain_text("$15 per month for each connected location")
    cova_card.get_by_role("link", name="Connect").click()

    # Enter what Cova sent, then Update connection.
    expect(page.get_by_role("heading", name=re.compile("Connect Cova"))).to_be_visible()
    page.get_by_label("Client id").fill(cova_server.client_id)
    page.get_by_label("Client secret").fill(cova_server.client_secret)
    page.get_by_label("Username").fill(cova_server.username)
    page.get_by_label("Password", exact=True).fill(cova_server.password)
    page.get_by_label("Cova company id").fill(str(cova_server.company_id))
    page.get_by_text("Cova servers (advanced)").click()
    page.get_by_label("Sign-in server").fill(cova_server.url)
    page.get_by_label("API server").fill(cova_server.url)
    shot(page, "cova-connect")
    page.get_by_role("button", name="Update connection").click()

    expect(page.get_by_role("status").filter(has_text="Cova is connected")).to_be_visible()
    credential = CovaCredential.objects.get(connection__company=store.company)
    expect(page.get_by_test_id("credential-status")).to_contain_text("Not verified")
    page.get_by_role("button", name="Test connection").click()
    result = page.get_by_test_id("test-result")
    # the test runs in the background: the result says so until a worker has run it
    expect(result).to_contain_text("Testing…")
    celery_worker_start()
    expect(result).to_contain_text("Connected to Cova company 4455: 2 locations")
    # the badge follows the test without a reload
    expect(page.get_by_test_id("credential-status")).to_have_text("Connected")
    expect(page.get_by_test_id("locations")).to_contain_text("Downtown")
    expect(page.get_by_test_id("fee-total")).to_have_text("$0.00")
    shot(page, "cova-connection")

    # Retail stores › Edit Denver › Store mappings: pick the Cova location.
    page.get_by_role("link", name="Retail stores").click()
    page.get_by_test_id("store-table").get_by_role("link", name="Edit").click()
    mappings = page.get_by_test_id("store-mappings")
    expect(mappings).to_contain_text("Cova")
    mappings.get_by_role("combobox", name="Cova").select_option(label="Downtown · #1001 · CO")
    shot(page, "store-edit")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Store “Denver” saved")).to_be_visible()
    mapping = StoreMapping.objects.get(connection=credential.connection)
    assert (mapping.store_id, mapping.external_location_id) == (store.pk, "1001")

    # Back to the connection: one mapped location, $15 a month; Sync now.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Integrations").click()
    page.get_by_test_id("integration-cova").get_by_role("link", name="Manage").click()
    expect(page.get_by_test_id("fee-total")).to_have_text("$15.00")
    page.get_by_role("button", name="Sync now").click()
    expect(page).to_have_url(re.compile(r"/settings/integrations/runs/\d+/$"))
    page.evaluate("window.__noReload = true")
    expect(page.get_by_test_id("run-state")).to_have_text("Succeeded", timeout=30_000)
    assert page.evaluate("window.__noReload") is True
    run = SyncRun.objects.get(credential=credential)
    assert run.customers_synced == 12 and run.sales_synced == 8 and run.sales_unmapped == 4
    expect(page.get_by_test_id("customers-synced")).to_have_text("12")
    expect(page.get_by_test_id("sales-unmapped")).to_have_text("4")
    shot(page, "sync-run")

    # Personas: the customers are "Sourced from" Cova. The other location's sales wait for a
    # store: every page of the account says so now.
    page.get_by_role("link", name="Personas").click()
    notice = page.get_by_test_id("unmapped-stores")
    expect(notice).to_contain_text("You have 1 unmapped store")
    expect(notice.get_by_role("link")).to_have_attribute("href", "/settings/stores/")
    rows = page.get_by_test_id("persona-table").locator("tbody tr")
    expect(rows.first).to_be_visible()
    expect(rows.filter(has_text="Cova")).not_to_have_count(0)
    page.get_by_label("Sourced from").select_option(label="Cova")
    expect(page.get_by_test_id("result-count")).to_have_text("12 personas")

    # The grid, for the record.
    page.goto(f"{live_server.url}/settings/integrations/grid/")
    expect(page.get_by_test_id("integration-grid")).to_contain_text("Real-time loyalty")
    shot(page, "grid")
    page.goto(f"{live_server.url}/settings/integrations/")
    shot(page, "catalog-connected")
    page.get_by_test_id("integration-cova").get_by_role("link", name="Manage").click()
    expect(page.get_by_test_id("run-table")).to_contain_text("Succeeded")
    expect(page.get_by_test_id("locations")).to_contain_text("4 sales waiting")
    shot(page, "cova-connection-synced")
