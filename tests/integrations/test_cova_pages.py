"""The integration catalog and grid, the Cova pages (connect, credentials, test, fee, sync
now), Store mappings on the retail store page and the "unmapped stores" notification."""

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
from django.db import connection as db_connection
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection, CovaCredential, SignupPush, StoreMapping, SyncRun
from integrations.services.connections import connection_create, connection_freeze
from integrations.services.cova import (
    cova_connection_create,
    cova_credential_save,
    cova_locations_refresh,
    store_mapping_save,
)
from loyalty.models import Transaction
from stores.services import api_key_create
from tests.factories import PersonaFactory, RetailStoreFactory

from . import cova_fake

cova_server = cova_fake.cova_server


def credential_data(fake, **overrides) -> dict:
    """The form as an admin fills it in with what Cova sent."""
    data = {"grant_type": "password", "client_id": fake.client_id, "client_secret": fake.client_secret,
            "username": fake.username, "password": fake.password, "cova_company_id": str(fake.company_id),
            "sync_time": "02:30", "accounts_url": fake.url, "api_url": fake.url}
    return data | overrides


def credential_save(connection, fake, **overrides) -> CovaCredential:
    kwargs = {"client_id": fake.client_id, "client_secret": fake.client_secret, "username": fake.username,
              "password": fake.password, "cova_company_id": str(fake.company_id),
              "accounts_url": fake.url, "api_url": fake.url}
    return cova_credential_save(connection=connection, **(kwargs | overrides))


@pytest.fixture
def cova(company, cova_server):
    """A Cova connection with one working credential; Cova lists two locations, and they
    have been fetched."""
    cova_server.add_location("Downtown", "CO", location_id=1001)
    cova_server.add_location("Capitol Hill", "CO", location_id=1002)
    connection = cova_connection_create(company=company)
    credential = credential_save(connection, cova_server)
    cova_locations_refresh(connection_id=connection.pk)
    return connection, credential


def waiting_sale(connection, location_id: str, number: int) -> Transaction:
    """A sale Cova reported from a location mapped to none of our stores."""
    return Transaction.objects.create(
        company=connection.company, source=connection.source, store=None, source_location=location_id,
        external_id=f"{location_id}-{number}", occurred_at=timezone.now(), subtotal=Decimal("20"),
        total=Decimal("20"))


def card_status(page: str, key: str) -> str:
    return page.split(f'data-testid="integration-{key}" data-status="')[1].split('"')[0]


# -- catalog and grid -------------------------------------------------------------------------

def test_catalog_lists_every_integration_not_connected(admin_client):
    page = admin_client.get(reverse("integration_catalog")).content.decode()
    for key, name in [("cova", "Cova"), ("s3", "S3 reports"), ("onedrive", "OneDrive reports"),
                      ("folder", "Folder reports"), ("pos_api", "POS API")]:
        assert name in page
        assert card_status(page, key) == "not_connected"
    assert page.count("Not connected") >= 5
    assert f'href="{reverse("cova_connect")}"' in page
    assert f'href="{reverse("connection_create")}?provider=s3"' in page
    assert f'href="{reverse("connection_create")}?provider=onedrive"' in page
    assert f'href="{reverse("api_key_list")}"' in page
    fee = page.split('data-testid="fee"')[1].split("</div>")[0]
    assert "Fee</span> $15 per month for each connected location" in fee
    # the navigation's Integrations is the catalog
    assert reverse("integration_catalog") in admin_client.get(reverse("persona_list")).content.decode()


def test_catalog_shows_connected_frozen_and_failing(admin_client, company, cova, reports_root, admin_user):
    # given: Cova connected, a frozen folder connection, an S3 connection whose last run
    # failed, and a POS API key
    connection, credential = cova
    folder = connection_create(company=company, name="Folder", provider="folder",
                               settings={"path": "reports"}, credentials={})
    connection_freeze(connection=folder, frozen=True)
    s3 = connection_create(company=company, name="Bucket", provider="s3", settings={"bucket": "b"},
                           credentials={"access_key_id": "AKIA", "secret_access_key": "secret-1234"})
    now = timezone.now()
    SyncRun.objects.create(company=company, connection=s3, trigger="manual", state="failed",
                           started_at=now, finished_at=now, error="Bucket 'b' does not exist")
    api_key_create(company=company, name="Register 1", level=2, created_by=admin_user)
    # when
    page = admin_client.get(reverse("integration_catalog")).content.decode()
    # then
    assert card_status(page, "cova") == "connected"
    assert card_status(page, "folder") == "frozen"
    assert card_status(page, "s3") == "failing"
    assert card_status(page, "onedrive") == "not_connected"
    assert card_status(page, "pos_api") == "connected"
    assert f'href="{reverse("cova_connection", args=[connection.pk])}"' in page  # Manage
    assert f'href="{reverse("connection_detail", args=[s3.pk])}"' in page
    # a credential with an error makes Cova failing; all credentials frozen, frozen
    CovaCredential.objects.filter(pk=credential.pk).update(last_error="Cova refused the password",
                                                          failing_since=timezone.now())
    page = admin_client.get(reverse("integration_catalog")).content.decode()
    assert card_status(page, "cova") == "failing" and "Cova refused the password" in page
    CovaCredential.objects.filter(pk=credential.pk).update(last_error="", failing_since=None, is_frozen=True)
    page = admin_client.get(reverse("integration_catalog")).content.decode()
    assert card_status(page, "cova") == "frozen"


def test_catalog_search_filters_the_cards(admin_client):
    url = reverse("integration_catalog")
    page = admin_client.get(url, {"q": "onedrive"}).content.decode()
    assert 'data-testid="integration-onedrive"' in page
    assert 'data-testid="integration-cova"' not in page and 'data-testid="integration-s3"' not in page
    page = admin_client.get(url, {"q": "cova"}).content.decode()
    assert 'data-testid="integration-cova"' in page and 'data-testid="integration-folder"' not in page
    # htmx asks for the cards alone
    partial = admin_client.get(url, {"q": "reports"}, HTTP_HX_REQUEST="true",
                               HTTP_HX_TARGET="catalog-cards").content.decode()
    assert partial.lstrip().startswith('<div id="catalog-cards"') and "<html" not in partial
    assert partial.count('class="card provider-card"') == 3
    page = admin_client.get(url, {"q": "zzz"}).content.decode()
    assert "No integration matches" in page


def test_grid_compares_the_features(admin_client):
    page = admin_client.get(reverse("integration_grid")).content.decode()
    for label in ("Customers", "Sales", "Payment methods", "Real-time loyalty", "Push signups",
                  "Store mapping", "Waiting room"):
        assert label in page
    cova_row = page.split('data-testid="grid-cova"')[1].split("</tr>")[0]
    s3_row = page.split('data-testid="grid-s3"')[1].split("</tr>")[0]
    assert cova_row.count("✓") == 7 and "$15 / location / month" in cova_row
    assert s3_row.count("✓") == 4 and s3_row.count("—") == 3 and "Included" in s3_row


# -- connect and credentials ------------------------------------------------------------------

def test_connect_cova_stores_the_secrets_encrypted(admin_client, company, cova_server):
    # given: the connect page
    page = admin_client.get(reverse("cova_connect")).content.decode()
    assert "$15 per month for each connected location" in page
    assert "Edit Loyalty Program" in page and "Manage Dispensary Specific Elements" in page
    # when: the admin enters what Cova sent
    response = admin_client.post(reverse("cova_connect"), credential_data(cova_server) | {"name": "Cova"})
    # then
    connection = Connection.objects.get(company=company, provider="cova")
    assert response.status_code == 302
    assert response["Location"] == reverse("cova_connection", args=[connection.pk])
    assert connection.source.name == "Cova" and connection.source.kind == "cova"
    credential = connection.cova_credentials.get()
    assert (credential.client_id, credential.username) == (cova_server.client_id, cova_server.username)
    assert credential.secrets_plain() == {"client_secret": cova_server.client_secret,
                                          "password": cova_server.password}
    with db_connection.cursor() as cursor:
        cursor.execute("SELECT row_to_json(c)::text FROM integrations_covacredential c")
        stored = cursor.fetchone()[0]
    assert cova_server.client_secret not in stored and cova_server.password not in stored
    # and no page shows them back, only how they end
    for url in (reverse("cova_connection", args=[connection.pk]),
                reverse("cova_credential_edit", args=[credential.pk])):
        page = admin_client.get(url).content.decode()
        assert cova_server.client_secret not in page and cova_server.password not in page
        assert f"ending …{cova_server.client_secret[-4:]}" in page
        assert f"ending …{cova_server.password[-4:]}" in page
    assert 'type="password"' in page and 'value="' + cova_server.password not in page


def test_connect_cova_form_errors_say_which_field(admin_client, company, cova_server):
    data = credential_data(cova_server, client_secret="", cova_company_id="abc", location_ids="12, x1")
    response = admin_client.post(reverse("cova_connect"), data)
    assert response.status_code == 400
    page = response.content.decode()
    assert "This field is required" in page and "The Cova company id is a number" in page
    assert "“x1” is not" in page
    assert not Connection.objects.filter(company=company).exists()
    # htmx gets the form back, with a 200 so it is swapped in
    response = admin_client.post(reverse("cova_connect"), data, HTTP_HX_REQUEST="true")
    assert response.status_code == 200
    assert response.content.decode().lstrip().startswith('<form id="credential-form"')


def test_connect_keeps_the_connection_when_its_credential_is_refused(admin_client, company, cova_server):
    # given: a location id the form takes but the service refuses (too long)
    data = credential_data(cova_server, name="Cova", location_ids="1" * 25)
    response = admin_client.post(reverse("cova_connect"), data)
    # then: the connection is there, and the form now adds the credential to it
    assert response.status_code == 400
    connection = Connection.objects.get(company=company, provider="cova")
    page = response.content.decode()
    assert "is added, but not this credential yet" in page and "is not a Cova location id" in page
    assert f'action="{reverse("cova_credential_create", args=[connection.pk])}"' in page
    assert not connection.cova_credentials.exists()
    assert cova_server.client_secret not in page and cova_server.password not in page


def test_add_credential_and_edit_with_blank_secrets_keeps_them(admin_client, cova, cova_server):
    connection, credential = cova
    # a second credential, for another Cova company
    response = admin_client.post(reverse("cova_credential_create", args=[connection.pk]),
                                 credential_data(cova_server, username="AIQ.COVA.APIUser.OTHER",
                                                 cova_company_id="9999"))
    assert response["Location"] == reverse("cova_connection", args=[connection.pk])
    assert connection.cova_credentials.count() == 2
    # when: the first is edited with blank secrets and every optional setting
    url = reverse("cova_credential_edit", args=[credential.pk])
    response = admin_client.post(url, credential_data(
        cova_server, client_secret="", password="", markets=["CO", "WA"], is_frozen="on",
        location_ids="1001, 1002", pricing_group_id="PG-7", skip_payment_methods="on", sync_time="04:15"),
        HTTP_HX_REQUEST="true")
    # then
    assert response["HX-Redirect"] == reverse("cova_connection", args=[connection.pk])
    credential.refresh_from_db()
    assert credential.secrets_plain() == {"client_secret": cova_server.client_secret,
                                          "password": cova_server.password}
    assert credential.markets == ["CO", "WA"] and credential.is_frozen
    assert credential.location_ids == ["1001", "1002"] and credential.pricing_group_id == "PG-7"
    assert credential.skip_payment_methods and credential.sync_time == dt.time(4, 15)
    assert not credential.periodic_task.enabled  # frozen: no nightly sync
    page = admin_client.get(reverse("cova_connection", args=[connection.pk])).content.decode()
    assert "PG-7" in page and "#1002" in page and "Off while frozen" in page and "Skipped" in page
    edit = admin_client.get(url).content.decode()
    assert 'value="CO" id="id_markets_5" checked' in edit
    assert 'value="1001, 1002"' in edit
    # a new secret replaces the stored one
    admin_client.post(url, credential_data(cova_server, password="a-new-password-5678", client_secret=""))
    credential.refresh_from_db()
    assert credential.secrets_plain()["password"] == "a-new-password-5678"
    assert credential.secrets_plain()["client_secret"] == cova_server.client_secret


def test_remove_credential(admin_client, cova):
    connection, credential = cova
    response = admin_client.post(reverse("cova_credential_delete", args=[credential.pk]), follow=True)
    assert not CovaCredential.objects.filter(pk=credential.pk).exists()
    assert "no longer syncs" in response.content.decode()
    assert 'data-testid="no-credentials"' in response.content.decode()


def test_test_connection_succeeds_then_names_the_missing_permission(admin_client, cova, cova_server):
    from integrations.services.cova import cova_credential_test_run

    _, credential = cova
    url = reverse("cova_credential_test", args=[credential.pk])

    def test(**headers) -> str:
        """Press Test connection, let the worker run it, and read the result card."""
        response = admin_client.post(url, **headers)
        cova_credential_test_run(credential_id=credential.pk)
        if headers:
            assert response.status_code == 200 and "<html" not in response.content.decode()
            return admin_client.get(reverse("cova_connection", args=[credential.connection_id]),
                                    HTTP_HX_REQUEST="true",
                                    HTTP_HX_TARGET=f"test-result-{credential.pk}").content.decode()
        assert response.status_code == 302
        return admin_client.get(response["Location"]).content.decode()

    page = test(HTTP_HX_REQUEST="true")
    assert 'class="test-ok"' in page and "Connected" in page and "2 locations" in page
    # when: Cova takes a permission away
    cova_server.permissions.remove("Edit Loyalty Program")
    page = test(HTTP_HX_REQUEST="true")
    assert 'class="form-error"' in page and "Edit Loyalty Program" in page
    assert "View Loyalty Program" not in page.replace("Edit Loyalty Program", "")
    # without htmx the button goes back to the whole page, which shows the result
    page = test()
    assert "<html" in page and "Edit Loyalty Program" in page
    assert cova_server.client_secret not in page


def test_fee_is_15_dollars_per_mapped_location(admin_client, company, cova):
    connection, _ = cova
    url = reverse("cova_connection", args=[connection.pk])
    page = admin_client.get(url).content.decode()
    assert 'data-testid="fee-total">$0.00<' in page
    # when: two stores are mapped
    store_mapping_save(store=RetailStoreFactory(company=company, name="Denver"), connection=connection,
                       external_location_id="1001", location_name="Downtown")
    store_mapping_save(store=RetailStoreFactory(company=company, name="Capitol"), connection=connection,
                       external_location_id="1002", location_name="Capitol Hill")
    page = admin_client.get(url).content.decode()
    # then
    assert 'data-testid="fee-total">$30.00<' in page
    assert "2 × $15" in page and "$15 per month for each connected location" in page
    locations = page.split('data-testid="locations"')[1].split("</section>")[0]
    assert "Downtown" in locations and "Denver" in locations and "Capitol" in locations


def test_cova_connection_of_the_report_pages_redirects(admin_client, cova):
    connection, _ = cova
    response = admin_client.get(reverse("connection_detail", args=[connection.pk]))
    assert response["Location"] == reverse("cova_connection", args=[connection.pk])
    for name in ("connection_edit", "connection_test", "connection_sync", "connection_freeze",
                 "connection_header_mapping", "connection_store_mappings"):
        response = admin_client.post(reverse(name, args=[connection.pk]))
        assert response["Location"] == reverse("cova_connection", args=[connection.pk]), name
    assert not SyncRun.objects.exists() and Connection.objects.filter(pk=connection.pk).exists()
    # the report connections list is for reports; adding Cova there goes to its connect page
    page = admin_client.get(reverse("connection_list")).content.decode()
    assert reverse("connection_detail", args=[connection.pk]) not in page
    response = admin_client.get(reverse("connection_create"), {"provider": "cova"})
    assert response["Location"] == reverse("cova_connect")


def test_cova_connection_can_be_deleted_keeping_its_data(admin_client, cova):
    connection, _ = cova
    page = admin_client.get(reverse("cova_connection", args=[connection.pk])).content.decode()
    assert reverse("connection_delete", args=[connection.pk]) in page
    response = admin_client.post(reverse("connection_delete", args=[connection.pk]), {"keep_data": "keep"})
    assert response["Location"] == reverse("integration_catalog")
    assert not Connection.objects.filter(pk=connection.pk).exists()


# -- sync now ---------------------------------------------------------------------------------

def test_sync_now_queues_a_run_once(admin_client, cova, django_capture_on_commit_callbacks):
    connection, credential = cova
    url = reverse("cova_credential_sync", args=[credential.pk])
    with mock.patch("integrations.views_cova.connection_sync.delay") as delay, \
            django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(url, HTTP_HX_REQUEST="true")
    run = SyncRun.objects.get(credential=credential)
    assert (run.trigger, run.state) == ("manual", "queued")
    assert response["HX-Redirect"] == reverse("sync_run_detail", args=[run.pk])
    delay.assert_called_once_with(run.pk)
    # a second click says so and links to the run
    page = admin_client.post(url, HTTP_HX_REQUEST="true").content.decode()
    assert "already queued" in page and reverse("sync_run_detail", args=[run.pk]) in page
    # the runs list polls while it is queued, and the run page shows Cova's counts
    page = admin_client.get(reverse("cova_connection", args=[connection.pk])).content.decode()
    assert 'hx-trigger="every 2s"' in page and credential.username in page
    partial = admin_client.get(reverse("cova_connection", args=[connection.pk]), HTTP_HX_REQUEST="true",
                               HTTP_HX_TARGET="cova-runs").content.decode()
    assert partial.lstrip().startswith('<section id="cova-runs"')
    SyncRun.objects.filter(pk=run.pk).update(state="succeeded", started_at=timezone.now(),
                                             finished_at=timezone.now(), customers_synced=12,
                                             sales_synced=30, sales_unmapped=4)
    page = admin_client.get(reverse("sync_run_detail", args=[run.pk])).content.decode()
    assert 'data-testid="customers-synced">12<' in page and 'data-testid="sales-unmapped">4<' in page
    assert "Files seen" not in page
    partial = admin_client.get(reverse("cova_connection", args=[connection.pk]), HTTP_HX_REQUEST="true",
                               HTTP_HX_TARGET="cova-runs").content.decode()
    assert "every 2s" not in partial and ">30<" in partial


def test_sync_now_on_a_frozen_credential_says_so(admin_client, cova, cova_server):
    connection, credential = cova
    credential_save(connection, cova_server, credential=credential, is_frozen=True)
    response = admin_client.post(reverse("cova_credential_sync", args=[credential.pk]), follow=True)
    assert "is frozen" in response.content.decode()
    assert not SyncRun.objects.exists()


# -- store mappings on the retail store page -----------------------------------------------

def test_store_edit_maps_the_store_to_a_cova_location(admin_client, company, store, cova):
    connection, _ = cova
    url = reverse("store_edit", args=[store.pk])
    page = admin_client.get(url).content.decode()
    assert 'data-testid="store-mappings"' in page and "Store mappings" in page
    assert f'name="cova-{connection.pk}"' in page
    assert '<option value="1001">Downtown · #1001 · CO</option>' in page
    # when: the admin picks Downtown and saves
    data = {"name": store.name, "state": "CO", f"cova-{connection.pk}": "1001"}
    response = admin_client.post(url, data, HTTP_HX_REQUEST="true")
    # then
    assert response["HX-Redirect"] == reverse("store_list")
    mapping = StoreMapping.objects.get(connection=connection)
    assert (mapping.store, mapping.external_location_id, mapping.location_name) == (store, "1001", "Downtown")
    page = admin_client.get(url).content.decode()
    assert '<option value="1001" selected>' in page
    # another store sees Downtown taken
    other = RetailStoreFactory(company=company, name="Boulder")
    page = admin_client.get(reverse("store_edit", args=[other.pk])).content.decode()
    assert '<option value="1001" disabled>Downtown · #1001 · CO (mapped to Denver)</option>' in page
    # a location Cova does not list is refused
    response = admin_client.post(url, data | {f"cova-{connection.pk}": "4242"})
    assert response.status_code == 400 and "Select a valid choice" in response.content.decode()
    # and "not mapped" unmaps
    admin_client.post(url, data | {f"cova-{connection.pk}": ""})
    assert not StoreMapping.objects.filter(connection=connection).exists()


def test_store_edit_attaches_the_sales_that_waited(admin_client, store, cova):
    connection, _ = cova
    sale = waiting_sale(connection, "1002", 1)
    admin_client.post(reverse("store_edit", args=[store.pk]),
                      {"name": store.name, "state": "CO", f"cova-{connection.pk}": "1002"})
    sale.refresh_from_db()
    assert sale.store == store and sale.source_location == ""


def test_store_edit_shows_why_cova_cannot_be_read(admin_client, company, store, cova_server):
    # given: a credential Cova refuses
    connection = cova_connection_create(company=company)
    credential_save(connection, cova_server, password="not-the-password")
    page = admin_client.get(reverse("store_edit", args=[store.pk])).content.decode()
    # then: the message instead of the dropdown, and the store can still be saved
    assert 'data-testid="mapping-error"' in page and f'name="cova-{connection.pk}"' not in page
    response = admin_client.post(reverse("store_edit", args=[store.pk]), {"name": "Denver 2", "state": "CO"})
    assert response.status_code == 302
    store.refresh_from_db()
    assert store.name == "Denver 2"


def test_store_edit_lists_report_mappings_read_only(admin_client, company, store, reports_root):
    folder = connection_create(company=company, name="Nightly reports", provider="folder",
                               settings={"path": "reports"}, credentials={})
    StoreMapping.objects.create(connection=folder, store=store, external_location_id="LOC-9")
    page = admin_client.get(reverse("store_edit", args=[store.pk])).content.decode()
    listed = page.split('data-testid="report-mappings"')[1].split("</ul>")[0]
    assert "LOC-9" in listed and reverse("connection_store_mappings", args=[folder.pk]) in listed


def test_unmapped_stores_notification(admin_client, client, marketer_user, company, cova):
    connection, _ = cova
    page = admin_client.get(reverse("persona_list")).content.decode()
    assert "unmapped store" not in page
    # given: Cova sales from two locations mapped to none of our stores
    waiting_sale(connection, "1002", 1)
    waiting_sale(connection, "1002", 2)
    waiting_sale(connection, "1003", 1)
    # then: every page of the account says so, with a link to the stores
    page = admin_client.get(reverse("persona_list")).content.decode()
    notice = page.split('data-testid="unmapped-stores"')[1].split("</div>")[0]
    assert "You have 2 unmapped stores" in notice and reverse("store_list") in notice
    # a marketer cannot map stores and is not told
    client.force_login(marketer_user)
    assert "unmapped store" not in client.get(reverse("persona_list")).content.decode()


def test_persona_card_shows_a_failed_signup_push(admin_client, company, cova):
    _, credential = cova
    persona = PersonaFactory(company=company)
    SignupPush.objects.create(company=company, persona=persona, credential=credential, state="failed",
                              error="Phone number is already used by another customer")
    page = admin_client.get(reverse("persona_detail", args=[persona.pk])).content.decode()
    assert "Not created in Cova: Phone number is already used by another customer" in page
    SignupPush.objects.filter(persona=persona).update(state="queued", error="")
    assert "Not created in Cova" not in admin_client.get(
        reverse("persona_detail", args=[persona.pk])).content.decode()


# -- access ----------------------------------------------------------------------------------

def cova_urls(connection, credential) -> list[tuple[str, str]]:
    return [
        ("get", reverse("cova_connection", args=[connection.pk])),
        ("get", reverse("cova_credential_create", args=[connection.pk])),
        ("post", reverse("cova_credential_create", args=[connection.pk])),
        ("get", reverse("cova_credential_edit", args=[credential.pk])),
        ("post", reverse("cova_credential_edit", args=[credential.pk])),
        ("post", reverse("cova_credential_test", args=[credential.pk])),
        ("post", reverse("cova_credential_sync", args=[credential.pk])),
        ("post", reverse("cova_credential_delete", args=[credential.pk])),
    ]


@pytest.mark.parametrize("role_user", ["marketer_user", "budtender_user"])
def test_pages_are_a_403_for_marketers_and_budtenders(client, request, role_user, cova):
    connection, credential = cova
    client.force_login(request.getfixturevalue(role_user))
    urls = [("get", reverse("integration_catalog")), ("get", reverse("integration_grid")),
            ("get", reverse("cova_connect")), ("post", reverse("cova_connect"))]
    for method, url in urls + cova_urls(connection, credential):
        assert getattr(client, method)(url).status_code == 403, (method, url)
    assert CovaCredential.objects.filter(pk=credential.pk).exists()


def test_another_companys_connection_and_credential_are_a_404(admin_client, other_company, cova_server):
    theirs = cova_connection_create(company=other_company)
    credential = credential_save(theirs, cova_server)
    for method, url in cova_urls(theirs, credential):
        response = getattr(admin_client, method)(url, credential_data(cova_server))
        assert response.status_code == 404, (method, url)
    assert CovaCredential.objects.filter(pk=credential.pk).exists()
    assert not SyncRun.objects.exists()
    # and a store of theirs cannot be mapped through ours
    their_store = RetailStoreFactory(company=other_company)
    assert admin_client.get(reverse("store_edit", args=[their_store.pk])).status_code == 404


def test_a_report_connection_is_not_a_cova_connection(admin_client, company, reports_root):
    folder = connection_create(company=company, name="Folder", provider="folder",
                               settings={"path": "reports"}, credentials={})
    assert admin_client.get(reverse("cova_connection", args=[folder.pk])).status_code == 404
    assert admin_client.get(reverse("cova_credential_create", args=[folder.pk])).status_code == 404

