"""Cova locations are stored when Cova is asked (a credential test, a sync, "Refresh from
Cova" in the background) and the pages read them from the database."""

import datetime as dt
import re
from unittest import mock

import pytest
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection, CovaLocation, SyncRun
from integrations.services.cova import cova_connection_create, cova_credential_save, cova_credential_test_run
from integrations.services.sync import sync_run_create, sync_run_execute
from integrations.tasks import cova_locations_refresh
from stores.models import AuditEvent

from . import cova_fake

cova_server = cova_fake.cova_server


@pytest.fixture
def connection(company, cova_server):
    """A Cova connection with one credential whose locations were never fetched."""
    cova_server.add_location("Downtown", "CO", location_id=1001)
    connection = cova_connection_create(company=company)
    cova_credential_save(connection=connection, client_id=cova_server.client_id,
                         client_secret=cova_server.client_secret, username=cova_server.username,
                         password=cova_server.password, cova_company_id=str(cova_server.company_id),
                         accounts_url=cova_server.url, api_url=cova_server.url)
    return connection


def locations_card(client, connection) -> str:
    """The locations card as the page polls it."""
    response = client.get(reverse("cova_connection", args=[connection.pk]), HTTP_HX_REQUEST="true",
                          HTTP_HX_TARGET="cova-locations")
    assert response.status_code == 200
    return response.content.decode()


def refresh(client, connection, capture):
    """Press "Refresh from Cova"; returns the card and the connection ids queued once the
    request's transaction committed."""
    with mock.patch("integrations.tasks.cova_locations_refresh.delay") as delay, capture(execute=True):
        response = client.post(reverse("cova_locations_refresh", args=[connection.pk]),
                               HTTP_HX_REQUEST="true")
    return response.content.decode(), [call.args[0] for call in delay.call_args_list]


def test_cova_locations_refresh_runs_in_the_background_and_the_card_follows_it(
        admin_client, connection, cova_server, django_capture_on_commit_callbacks):
    # given: the page before any fetch
    assert "Not fetched from Cova yet." in locations_card(admin_client, connection)
    # when: the admin presses "Refresh from Cova"
    card, queued = refresh(admin_client, connection, django_capture_on_commit_callbacks)
    # then: one refresh is queued, audited, and the card says it is going and polls
    assert queued == [connection.pk]
    assert re.search(r"Refreshing locations from Cova… started \d\d:\d\d", card)
    assert 'hx-trigger="every 2s"' in card and "Downtown" not in card
    event = AuditEvent.objects.get(kind="connection.locations_refresh_requested")
    assert event.company_id == connection.company_id and event.object_id == connection.pk
    # and: pressing it again while it runs queues nothing more
    _, queued = refresh(admin_client, connection, django_capture_on_commit_callbacks)
    assert queued == []
    # when: the worker runs it
    cova_locations_refresh.apply(args=[connection.pk])
    # then: the card shows the locations as of now and stops polling
    card = locations_card(admin_client, connection)
    assert "Locations as of" in card and "Downtown" in card and "every 2s" not in card


def test_cova_locations_refresh_stores_what_cova_lists_now(admin_client, connection, cova_server):
    # given: the locations were fetched once
    cova_locations_refresh.apply(args=[connection.pk])
    # when: Cova renames one and opens another, then it is refreshed
    cova_server.locations[0]["Name"] = "Downtown Denver"
    cova_server.add_location("Capitol Hill", "CO", location_id=1002)
    cova_locations_refresh.apply(args=[connection.pk])
    # then
    assert sorted(CovaLocation.objects.filter(connection=connection).values_list("location_id", "name")) == [
        ("1001", "Downtown Denver"), ("1002", "Capitol Hill")]
    card = locations_card(admin_client, connection)
    assert "Downtown Denver" in card and "Capitol Hill" in card


def test_cova_locations_refresh_failure_keeps_the_stored_locations(admin_client, store, connection,
                                                                   cova_server):
    # given: fetched once, then Cova refuses the locations
    cova_locations_refresh.apply(args=[connection.pk])
    cova_server.fail_always(403, "/Locations")
    # when
    cova_locations_refresh.apply(args=[connection.pk])
    # then: the reason is shown, the locations stay choosable
    card = locations_card(admin_client, connection)
    assert "The last refresh failed:" in card and "Downtown" in card
    page = admin_client.get(reverse("store_edit", args=[store.pk])).content.decode()
    assert '<option value="1001">Downtown · #1001 · CO</option>' in page


def test_cova_credential_test_stores_the_locations(admin_client, connection):
    # when: the admin tests the credential
    credential = connection.cova_credentials.get()
    admin_client.post(reverse("cova_credential_test", args=[credential.pk]), HTTP_HX_REQUEST="true")
    cova_credential_test_run(credential_id=credential.pk)  # the worker's part
    # then: the locations it read are kept for the pages
    assert list(CovaLocation.objects.filter(credential=credential).values_list("location_id", "name")) == [
        ("1001", "Downtown")]
    assert "Downtown" in locations_card(admin_client, connection)


def test_cova_sync_stores_the_locations(connection):
    # when: a sync of the credential runs
    credential = connection.cova_credentials.get()
    run = sync_run_create(connection=connection, credential=credential, trigger=SyncRun.Trigger.MANUAL)
    sync_run_execute(run_id=run.pk)
    # then
    assert list(CovaLocation.objects.filter(credential=credential).values_list("location_id", flat=True)) == [
        "1001"]


def test_cova_locations_refresh_of_another_companys_connection_is_a_404(admin_client, other_company,
                                                                         cova_server):
    theirs = cova_connection_create(company=other_company)
    with mock.patch("integrations.tasks.cova_locations_refresh.delay") as delay:
        response = admin_client.post(reverse("cova_locations_refresh", args=[theirs.pk]))
    assert response.status_code == 404 and not delay.called


def test_cova_credential_save_on_the_page_queues_a_refresh(admin_client, connection, cova_server,
                                                           django_capture_on_commit_callbacks):
    # when: the admin edits the credential
    credential = connection.cova_credentials.get()
    data = {"grant_type": "password", "client_id": cova_server.client_id, "client_secret": "",
            "username": cova_server.username, "password": "", "cova_company_id": str(cova_server.company_id),
            "sync_time": "03:00", "accounts_url": cova_server.url, "api_url": cova_server.url}
    with mock.patch("integrations.tasks.cova_locations_refresh.delay") as delay, \
            django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("cova_credential_edit", args=[credential.pk]), data)
    # then: its locations are fetched in the background
    assert response.status_code == 302
    assert [call.args[0] for call in delay.call_args_list] == [connection.pk]


def test_cova_locations_refresh_stuck_for_minutes_can_be_started_again(admin_client, connection,
                                                                       django_capture_on_commit_callbacks):
    # given: a refresh whose worker never finished, started 11 minutes ago
    Connection.objects.filter(pk=connection.pk).update(
        locations_refresh_started_at=timezone.now() - dt.timedelta(minutes=11))
    # then: the card does not claim it is still going
    assert "Refreshing" not in locations_card(admin_client, connection)
    # and: it can be started again
    _, queued = refresh(admin_client, connection, django_capture_on_commit_callbacks)
    assert queued == [connection.pk]
