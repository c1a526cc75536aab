"""Test connection never waits on the source inside the request: for a Cova credential, and
for S3 / OneDrive report connections, the button queues the test and answers at once (even
when the source accepts the connection and never answers); the result card says
"Testing…" and polls, then shows how the test went, and the credential's status follows."""

import time

import pytest
from django.urls import reverse

from integrations.services.connections import connection_create
from integrations.services.cova import cova_connection_create, cova_credential_save

from . import cova_fake, graph_fake
from .graph_fake import onedrive_settings
from .test_pages_offline import PAGE_BUDGET_SECONDS, Blackhole

cova_server = cova_fake.cova_server
graph_server = graph_fake.graph_server


@pytest.fixture
def blackhole(outbound_allow):
    hole = Blackhole()
    outbound_allow(hole.url)  # allow-listed: only the silence stops the requests
    yield hole
    hole.close()


def timed_post(client, url, **headers):
    started = time.perf_counter()
    response = client.post(url, **headers)
    return response, time.perf_counter() - started


def cova_secrets(server) -> dict:
    return {"client_id": server.client_id, "client_secret": server.client_secret,
            "username": server.username, "password": server.password,
            "cova_company_id": str(server.company_id)}


@pytest.fixture
def cova_credential(company, cova_server):
    cova_server.add_location("Downtown", "CO", location_id=1001)
    connection = cova_connection_create(company=company)
    return cova_credential_save(connection=connection, accounts_url=cova_server.url, api_url=cova_server.url,
                                **cova_secrets(cova_server))


def test_cova_test_connection_answers_at_once_with_cova_unreachable(admin_client, cova_credential,
                                                                    cova_server, blackhole):
    # given: Cova accepts connections and never answers
    credential = cova_credential_save(connection=cova_credential.connection, credential=cova_credential,
                                      accounts_url=blackhole.url, api_url=blackhole.url,
                                      **cova_secrets(cova_server))
    admin_client.get(reverse("cova_connection", args=[credential.connection_id]))  # warm up
    url = reverse("cova_credential_test", args=[credential.pk])
    # when: the admin presses Test connection (htmx, then a plain form post)
    response, seconds = timed_post(admin_client, url, HTTP_HX_REQUEST="true")
    # then: the button answers at once, with a result that says the test is going and polls
    assert response.status_code == 200 and seconds < PAGE_BUDGET_SECONDS, f"took {seconds:.2f} s"
    card = response.content.decode()
    assert "Testing…" in card and 'hx-trigger="every 2s"' in card
    response, seconds = timed_post(admin_client, url)
    assert response.status_code == 302 and seconds < PAGE_BUDGET_SECONDS, f"took {seconds:.2f} s"
    page = admin_client.get(response["Location"]).content.decode()
    assert "Testing…" in page


def poll_cova_result(client, credential) -> str:
    response = client.get(reverse("cova_connection", args=[credential.connection_id]), HTTP_HX_REQUEST="true",
                          HTTP_HX_TARGET=f"test-result-{credential.pk}")
    assert response.status_code == 200
    return response.content.decode()


def test_cova_test_connection_result_follows_the_background_test(admin_client, cova_credential, cova_server):
    from integrations.services.cova import cova_credential_test_run

    credential = cova_credential
    url = reverse("cova_credential_test", args=[credential.pk])
    # given: the test was requested; the credential is not verified yet
    admin_client.post(url, HTTP_HX_REQUEST="true")
    card = poll_cova_result(admin_client, credential)
    assert "Testing…" in card and "Not verified" in card
    # when: the worker runs it against a working Cova
    cova_credential_test_run(credential_id=credential.pk)
    # then: the card stops polling, says Connected, and the badge follows
    card = poll_cova_result(admin_client, credential)
    assert "every 2s" not in card and 'class="test-ok"' in card and "Connected to Cova company" in card
    assert 'badge badge-ok' in card and "Not verified" not in card
    page = admin_client.get(reverse("cova_connection", args=[credential.connection_id])).content.decode()
    assert "Connected to Cova company" in page
    # when: Cova takes a permission away and the test runs again
    cova_server.permissions.remove("Edit Loyalty Program")
    admin_client.post(url, HTTP_HX_REQUEST="true")
    assert "Testing…" in poll_cova_result(admin_client, credential)
    cova_credential_test_run(credential_id=credential.pk)
    # then: it could not connect, says why, and the credential is failing since now
    card = poll_cova_result(admin_client, credential)
    assert "Could not connect:" in card and "Edit Loyalty Program" in card and "Failing since" in card
    credential.refresh_from_db()
    assert credential.status == "failing" and credential.failing_since is not None
    assert cova_server.client_secret not in card


def test_cova_test_is_queued_once_while_it_is_going(admin_client, cova_credential,
                                                    django_capture_on_commit_callbacks):
    from integrations.models import CovaCredential

    url = reverse("cova_credential_test", args=[cova_credential.pk])
    with django_capture_on_commit_callbacks() as callbacks:
        admin_client.post(url, HTTP_HX_REQUEST="true")
        admin_client.post(url, HTTP_HX_REQUEST="true")
    assert len(callbacks) == 1
    assert CovaCredential.objects.get(pk=cova_credential.pk).test_started_at is not None


def onedrive_connection(company, settings, credentials):
    return connection_create(company=company, name="OneDrive reports", provider="onedrive",
                             settings=settings, credentials=credentials)


def test_onedrive_test_connection_answers_at_once_with_graph_unreachable(admin_client, company, store,
                                                                         graph_server, blackhole):
    # given: Graph accepts connections and never answers
    settings, credentials = onedrive_settings(graph_server, "POS Reports/Daily")
    settings |= {"graph_base_url": f"{blackhole.url}/v1.0", "login_base_url": blackhole.url}
    connection = onedrive_connection(company, settings, credentials)
    admin_client.get(reverse("connection_detail", args=[connection.pk]))  # warm up
    # when
    response, seconds = timed_post(admin_client, reverse("connection_test", args=[connection.pk]),
                                   HTTP_HX_REQUEST="true")
    # then
    assert response.status_code == 200 and seconds < PAGE_BUDGET_SECONDS, f"took {seconds:.2f} s"
    card = response.content.decode()
    assert "Testing…" in card and 'hx-trigger="every 2s"' in card


def test_onedrive_test_connection_result_follows_the_background_test(admin_client, company, store,
                                                                     graph_server):
    from integrations.services.connections import connection_test_run

    graph_server.put_file("POS Reports/Daily", "sales.csv", b"TransactionID,Patient Number\n1,P1\n")
    settings, credentials = onedrive_settings(graph_server, "POS Reports/Daily")
    connection = onedrive_connection(company, settings, credentials)
    detail = reverse("connection_detail", args=[connection.pk])

    def card() -> str:
        return admin_client.get(detail, HTTP_HX_REQUEST="true", HTTP_HX_TARGET="test-result").content.decode()

    admin_client.post(reverse("connection_test", args=[connection.pk]), HTTP_HX_REQUEST="true")
    assert "Testing…" in card()
    connection_test_run(connection_id=connection.pk)
    assert "every 2s" not in card() and 'class="test-ok"' in card() and "Connected:" in card()
    # when: the folder is gone and the test runs again
    connection.settings = {**settings, "folder_path": "POS Reports/Gone"}
    connection.save(update_fields=["settings"])
    admin_client.post(reverse("connection_test", args=[connection.pk]), HTTP_HX_REQUEST="true")
    connection_test_run(connection_id=connection.pk)
    assert "Could not connect: Not found" in card() and "POS Reports/Gone" in card()
