"""Pages never wait on Cova: with Cova unreachable (a server that accepts connections and
never answers), the Cova connection page, a store's edit page and the integration lists
answer at once and show the locations stored at the last refresh."""

import socket
import threading
import time

import pytest
from django.urls import reverse

from integrations.services.cova import (
    cova_connection_create,
    cova_credential_save,
    cova_locations_refresh,
    store_mapping_save,
)

from . import cova_fake

cova_server = cova_fake.cova_server

PAGE_BUDGET_SECONDS = 0.2


class Blackhole:
    """A local TCP server that accepts every connection and never answers: what an
    unreachable Cova looks like to a client that has already connected."""

    def __init__(self):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.held = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.held.append(conn)  # kept open, never read, never answered

    def close(self):
        self.stopped.set()
        self.thread.join(2)
        for conn in self.held:
            conn.close()
        self.sock.close()


@pytest.fixture
def blackhole(outbound_allow):
    hole = Blackhole()
    outbound_allow(hole.url)  # allow-listed: only the silence stops the requests
    yield hole
    hole.close()


def timed_get(client, url):
    client.get(url)  # warm up: templates, URL resolvers
    started = time.perf_counter()
    response = client.get(url)
    return response, time.perf_counter() - started


def test_pages_answer_at_once_with_cova_unreachable(admin_client, company, store, cova_server, blackhole):
    # given: a Cova connection whose locations were fetched while Cova was up, one mapped
    cova_server.add_location("Downtown", "CO", location_id=1001)
    cova_server.add_location("Capitol Hill", "CO", location_id=1002)
    connection = cova_connection_create(company=company)
    fake = {"client_id": cova_server.client_id, "client_secret": cova_server.client_secret,
            "username": cova_server.username, "password": cova_server.password,
            "cova_company_id": str(cova_server.company_id)}
    credential = cova_credential_save(connection=connection, accounts_url=cova_server.url,
                                      api_url=cova_server.url, **fake)
    cova_locations_refresh(connection_id=connection.pk)
    store_mapping_save(store=store, connection=connection, external_location_id="1001",
                       location_name="Downtown")
    # and: Cova stops answering
    cova_credential_save(connection=connection, credential=credential, accounts_url=blackhole.url,
                         api_url=blackhole.url, **fake)
    pages = {
        "cova connection": reverse("cova_connection", args=[connection.pk]),
        "store edit": reverse("store_edit", args=[store.pk]),
        "integrations": reverse("integration_catalog"),
        "report connections": reverse("connection_list"),
    }
    for name, url in pages.items():
        # when
        response, seconds = timed_get(admin_client, url)
        # then: the page answers within the budget
        assert response.status_code == 200, name
        assert seconds < PAGE_BUDGET_SECONDS, f"{name} took {seconds:.2f} s"
    # and: the stored locations are shown
    page = admin_client.get(pages["cova connection"]).content.decode()
    locations = page.split('data-testid="locations"')[1].split("</section>")[0]
    assert "Downtown" in locations and "Capitol Hill" in locations and store.name in locations
    page = admin_client.get(pages["store edit"]).content.decode()
    assert '<option value="1001" selected>Downtown · #1001 · CO</option>' in page
    assert '<option value="1002">Capitol Hill · #1002 · CO</option>' in page
