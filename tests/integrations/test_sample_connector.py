"""The sample connector of docs/integrations.md: registered with the registry's one line, it
shows in the catalog, is added through the connection form, maps a store, syncs and earns
points, with no change anywhere but its own module."""

import datetime as dt

import pytest
from django.urls import reverse

from integrations import connectors
from integrations.connectors import Location, connector_for
from integrations.models import Connection, StoreMapping, SyncRun
from integrations.services.connections import connection_test
from integrations.services.sync import SyncFailed, sync_run_execute
from loyalty.models import Persona, PointsEntry, Transaction
from tests.integrations.sample_connector import AcmeConnector, AcmePos, AcmeShop

pytestmark = pytest.mark.django_db

SAMPLE = "tests.integrations.sample_connector.AcmeConnector"

HEADER = ("ReceiptId,customerId,TransactionDate,Location,FirstName,Phone,ProductName,LineTotal,LineTax,"
          "PaymentMethod")


@pytest.fixture
def acme(monkeypatch):
    """The registry's one line, for this test only; a fake Acme shop 4711."""
    monkeypatch.setattr(connectors, "CONNECTORS", (*connectors.CONNECTORS, SAMPLE))
    AcmePos.reset()
    AcmePos.shops["4711"] = AcmeShop(api_key="acme-key-1234", stores={"DT": "Downtown", "UP": "Uptown"})
    yield AcmePos
    AcmePos.reset()


def day(days_ago: int = 2) -> str:
    return f"{dt.date.today() - dt.timedelta(days=days_ago):%m/%d/%Y} 10:15 AM"


def test_sample_connector_shows_in_the_catalog_and_the_grid(admin_client, acme):
    # when: the catalog and the grid are shown
    catalog = admin_client.get(reverse("integration_catalog")).content.decode()
    grid = admin_client.get(reverse("integration_grid")).content.decode()
    # then: Acme has its card, with a Connect button to its connection form, and its grid row
    assert 'data-testid="integration-acme"' in catalog and "Daily sales exports of your Acme POS" in catalog
    assert f'{reverse("connection_create")}?provider=acme' in catalog
    assert "Acme POS" in grid
    # and the catalog search finds it by its keywords
    page = admin_client.get(reverse("integration_catalog"), {"q": "export"}).content.decode()
    assert 'data-testid="integration-acme"' in page and 'data-testid="integration-cova"' not in page


def test_sample_connector_connects_maps_a_store_syncs_and_earns_points(admin_client, company, store, acme):
    # given: "Add a connection" offers Acme, and its form asks for the shop and the key
    choice = admin_client.get(reverse("connection_create")).content.decode()
    assert "?provider=acme" in choice and "needs the shop id and an API key" in choice
    form = admin_client.get(reverse("connection_create") + "?provider=acme").content.decode()
    assert "Shop id" in form and "API key" in form
    # when: the merchant connects shop 4711
    response = admin_client.post(reverse("connection_create"), {
        "provider": "acme", "name": "Acme shop", "shop": "4711", "api_key": "acme-key-1234",
        "enroll_new_customers": "on", "sync_time": "03:00"})
    connection = Connection.objects.get(company=company, name="Acme shop")
    assert response.status_code == 302
    assert (connection.provider, connection.source.kind) == ("acme", "pos")
    assert connection.periodic_task.task == "integrations.tasks.connection_sync_scheduled"
    # and tests it
    page = admin_client.post(reverse("connection_test", args=[connection.pk]),
                             HTTP_HX_REQUEST="true").content.decode()
    assert "Acme shop 4711 answers: 0 exports." in page
    # and the connector lists the shop's stores, and Downtown's code is mapped to our store
    assert connector_for(connection).locations() == [Location("DT", "Downtown"), Location("UP", "Uptown")]
    admin_client.post(reverse("connection_store_mappings", args=[connection.pk]),
                      {"external_location_id": "DT", "store": store.pk})
    assert StoreMapping.objects.get(connection=connection).store == store
    # when: Acme exports a day of sales and "Sync now" runs
    acme.export("4711", "2026-11-30.csv", f"{HEADER}\n"
                f"A1,C1,{day()},DT,Ana,(303) 555-0142,Gummies,$20.00,0,Cash\n"
                f"A2,C2,{day()},DT,Bo,,Pre-roll,$5.00,0,Card\n")
    response = admin_client.post(reverse("connection_sync", args=[connection.pk]))
    run = SyncRun.objects.get(connection=connection)
    assert response["Location"] == reverse("sync_run_detail", args=[run.pk])
    run = sync_run_execute(run_id=run.pk)  # what the worker does with the queued run
    # then: the sales are in, at the mapped store, and earned their points once
    assert (run.state, run.files_imported, run.rows_accepted) == ("succeeded", 1, 2), run.error
    sales = set(Transaction.objects.values_list("external_id", "store_id"))
    assert sales == {("A1", store.pk), ("A2", store.pk)}
    ana = Persona.objects.get(first_name="Ana")
    assert (ana.phone, ana.is_member, ana.points_balance) == ("+13035550142", True, 20)
    assert PointsEntry.objects.count() == 2
    # and the run page shows the import
    page = admin_client.get(reverse("sync_run_detail", args=[run.pk])).content.decode()
    assert "2026-11-30.csv" in page
    # when: it syncs again with nothing new, nothing is counted twice
    again = SyncRun.objects.create(company=company, connection=connection, trigger=SyncRun.Trigger.MANUAL)
    again = sync_run_execute(run_id=again.pk)
    assert (again.state, again.files_skipped, PointsEntry.objects.count()) == ("succeeded", 1, 2)


def test_sample_connector_failures_say_what_to_do(company, acme):
    # given: an Acme connection with a key Acme no longer accepts
    connection = Connection.objects.create(
        company=company, name="Acme", provider="acme", settings={"shop": "4711"},
        source=company.sources.create(kind="pos", name="Acme"))
    connection.set_credentials({"api_key": "old-key"})
    connection.save()
    # when: it is tested, and synced
    ok, message = connection_test(connection=connection)
    run = SyncRun.objects.create(company=company, connection=connection, trigger=SyncRun.Trigger.MANUAL)
    with pytest.raises(SyncFailed) as caught:
        sync_run_execute(run_id=run.pk)
    # then: both say the key was refused, and the run is failed for good (not retried)
    assert (ok, message) == (False, "Bad credentials: Acme refused the API key for shop 4711.")
    run.refresh_from_db()
    assert (run.state, run.error) == ("failed", "Acme refused the API key for shop 4711.")
    assert caught.value.retryable is False
    # and while Acme is down the run may be retried
    acme.reachable = False
    run = SyncRun.objects.create(company=company, connection=connection, trigger=SyncRun.Trigger.MANUAL)
    with pytest.raises(SyncFailed) as caught:
        sync_run_execute(run_id=run.pk)
    assert caught.value.retryable is True and AcmeConnector.label == "Acme POS"


def test_a_second_connector_with_a_taken_key_is_refused(monkeypatch):
    # given: the sample registered twice
    monkeypatch.setattr(connectors, "CONNECTORS", (*connectors.CONNECTORS, SAMPLE, SAMPLE))
    # then: the registry says which key is taken, instead of one hiding the other
    with pytest.raises(ValueError, match="Two connectors have the key 'acme'"):
        connectors.connector_classes()
