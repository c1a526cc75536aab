"""Connectors never reach private or local addresses: an S3 endpoint URL, OneDrive's Graph
and sign-in URLs and Cova's server URLs are refused on their forms, and a sync whose URL
points there when it runs (saved before the rule, a name that rebinds, a redirect) fails
with the reason, is not retried, and sends nothing there."""

import pytest
from django.urls import reverse

from integrations.models import Connection, CovaCredential, SyncRun
from integrations.providers import ConnectionProblem, ProviderError
from integrations.providers.cova import CovaClient
from integrations.providers.onedrive import OneDriveProvider
from integrations.providers.s3 import S3Provider
from integrations.services.connections import connection_create
from integrations.services.cova import cova_connection_create
from integrations.services.sync import SyncFailed, sync_run_create, sync_run_execute
from stores.errors import OutboundRefused

from . import cova_fake, graph_fake

cova_server = cova_fake.cova_server
graph_server = graph_fake.graph_server

PRIVATE_URLS = [
    ("http://127.0.0.1:9000", "127.0.0.1"),
    ("http://[::1]:9000", "::1"),
    ("http://10.0.0.1:9000", "10.0.0.1"),
    ("http://172.16.0.1", "172.16.0.1"),
    ("http://192.168.1.1:9000", "192.168.1.1"),
    ("http://169.254.169.254", "169.254.169.254"),
    ("http://localhost:9000", "127.0.0.1"),
    ("http://[::ffff:127.0.0.1]:9000", "::ffff:127.0.0.1"),
    ("http://minio.internal.example:9000", "127.0.0.1"),  # a name resolving to loopback
]
S3_CREDENTIALS = {"access_key_id": "AKIAEXAMPLEKEY", "secret_access_key": "very-secret-value-9876"}
FOLDER = "POS Reports/Daily"


@pytest.fixture
def dns(fake_dns):
    fake_dns["minio.internal.example"] = ["127.0.0.1"]
    return fake_dns


def refused_message(what: str, url: str, address: str) -> str:
    return (f"{what} {url} points at a private or local address ({address}); "
            "only public internet addresses are allowed.")


def onedrive(fake, **overrides) -> OneDriveProvider:
    settings, credentials = graph_fake.onedrive_settings(fake, FOLDER)
    return OneDriveProvider(settings=settings | overrides, credentials=credentials)


def problem_of(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def s3_connection_saved_before(company, endpoint_url: str) -> Connection:
    """An S3 connection whose endpoint was saved before private addresses were refused."""
    connection = connection_create(company=company, name="Bucket", provider="s3",
                                   settings={"bucket": "reports", "region": "us-east-1"},
                                   credentials=S3_CREDENTIALS)
    Connection.objects.filter(pk=connection.pk).update(
        settings={"bucket": "reports", "region": "us-east-1", "endpoint_url": endpoint_url})
    connection.refresh_from_db()
    return connection


def sync_failure(connection, credential=None) -> tuple[SyncFailed, SyncRun]:
    run = sync_run_create(connection=connection, credential=credential, trigger=SyncRun.Trigger.MANUAL)
    with pytest.raises(SyncFailed) as caught:
        sync_run_execute(run_id=run.pk)
    return caught.value, SyncRun.objects.get(pk=run.pk)


# -- at save, through the pages -------------------------------------------------------

@pytest.mark.parametrize(("url", "address"), PRIVATE_URLS)
def test_s3_connection_page_refuses_private_endpoint_urls(admin_client, company, url, address, dns,
                                                          connect_attempts):
    # when an admin adds an S3 connection whose endpoint is private or local
    response = admin_client.post(reverse("connection_create"), {
        "provider": "s3", "name": "Bucket reports", "bucket": "green-leaf", "endpoint_url": url,
        "region": "us-east-1", **S3_CREDENTIALS, "sync_time": "03:30"})
    # then the endpoint field says why, and nothing is saved or contacted
    assert response.status_code == 400
    assert (f'<div class="field-error">{refused_message("S3 endpoint URL", url, address)}</div>'
            in response.content.decode())
    assert not Connection.objects.filter(company=company).exists()
    assert connect_attempts == []


def test_s3_connection_edit_page_refuses_a_private_endpoint(admin_client, company):
    connection = connection_create(company=company, name="Bucket", provider="s3",
                                   settings={"bucket": "reports"}, credentials=S3_CREDENTIALS)
    response = admin_client.post(reverse("connection_edit", args=[connection.pk]), {
        "name": "Bucket", "bucket": "reports", "endpoint_url": "http://169.254.169.254/",
        "access_key_id": "", "secret_access_key": "", "sync_time": "02:00"}, HTTP_HX_REQUEST="true")
    assert "points at a private or local address (169.254.169.254)" in response.content.decode()
    connection.refresh_from_db()
    assert connection.settings.get("endpoint_url", "") == ""


@pytest.mark.parametrize("field", ["graph_base_url", "login_base_url"])
def test_onedrive_connection_page_refuses_private_server_urls(admin_client, company, field):
    data = {"provider": "onedrive", "name": "OneDrive", "tenant_id": "contoso.onmicrosoft.com",
            "drive_path": "/drives/b!x", "folder_path": "Reports", "client_id": "c", "client_secret": "s",
            "sync_time": "02:00", field: "http://10.0.0.1/v1.0"}
    response = admin_client.post(reverse("connection_create"), data)
    assert response.status_code == 400
    assert "points at a private or local address (10.0.0.1)" in response.content.decode()
    assert not Connection.objects.filter(company=company).exists()


@pytest.mark.parametrize(("field", "what"), [("accounts_url", "Cova sign-in server"),
                                             ("api_url", "Cova API server")])
def test_cova_credential_page_refuses_private_server_urls(admin_client, company, field, what):
    connection = cova_connection_create(company=company)
    data = {"grant_type": "password", "client_id": "GREENLEAF.AIQ", "client_secret": "secret",
            "username": "AIQ.COVA.APIUser", "password": "pw", "cova_company_id": "4455",
            "sync_time": "02:30", field: "http://127.0.0.1:8000"}
    response = admin_client.post(reverse("cova_credential_create", args=[connection.pk]), data)
    assert response.status_code == 400
    assert (f'<div class="field-error">{refused_message(what, "http://127.0.0.1:8000", "127.0.0.1")}</div>'
            in response.content.decode())
    assert not CovaCredential.objects.filter(connection=connection).exists()


# -- S3 at sync time ------------------------------------------------------------------

def test_s3_sync_refuses_an_endpoint_that_now_resolves_to_loopback(company, local_server, fake_dns):
    # given an "S3 server" on 127.0.0.1 and a name that was public when the connection was saved
    internal = local_server(body=b"<ListBucketResult>internal</ListBucketResult>")
    fake_dns["s3.reports.example"] = ["93.184.216.34"]
    url = f"http://s3.reports.example:{internal.port}"
    connection = connection_create(company=company, name="Bucket", provider="s3", credentials=S3_CREDENTIALS,
                                   settings={"bucket": "reports", "endpoint_url": url})
    # when it points at 127.0.0.1 by the time the sync runs
    fake_dns["s3.reports.example"] = ["127.0.0.1"]
    failure, run = sync_failure(connection)
    # then the run fails with the reason, is not retried, and nothing reached the server
    assert failure.retryable is False
    assert run.state == "failed" and run.error == refused_message("S3 endpoint URL", url, "127.0.0.1")
    assert internal.requests == []


@pytest.mark.parametrize("address", ["10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254"])
def test_s3_sync_refuses_private_networks_without_connecting(company, address, connect_attempts):
    connection = s3_connection_saved_before(company, f"http://{address}:9000")
    failure, run = sync_failure(connection)
    assert failure.retryable is False and f"({address})" in run.error
    assert connect_attempts == []


def test_s3_client_checks_the_address_it_actually_connects_to(local_server, fake_dns):
    # given a name that is public when the settings are checked and 127.0.0.1 when botocore
    # connects (DNS rebinding between the check and the connection)
    internal = local_server(body=b"<ListBucketResult>internal</ListBucketResult>")
    answers = iter([["93.184.216.34"]])
    fake_dns["s3.rebind.example"] = lambda: next(answers, ["127.0.0.1"])
    url = f"http://s3.rebind.example:{internal.port}"
    provider = S3Provider(settings={"bucket": "reports", "endpoint_url": url}, credentials=S3_CREDENTIALS)
    # when the bucket is listed
    error = problem_of(provider.list_files)
    # then the connection is refused by its peer address before a request is sent
    assert error.problem == ConnectionProblem.MISCONFIGURED and not error.retryable
    assert error.message == (f"Not connecting to {url} for bucket 'reports': The address "
                             f"s3.rebind.example:{internal.port} points at a private or local address "
                             "(127.0.0.1); only public internet addresses are allowed.")
    assert internal.requests == []


def test_s3_allow_listed_endpoint_works_and_other_ports_do_not(company, local_server, outbound_allow):
    # given an allow-listed local "S3 server" and another one that is not
    allowed = local_server(status=404, body=b"<Error><Code>NoSuchBucket</Code></Error>",
                           headers={"Content-Type": "application/xml"})
    other = local_server()
    outbound_allow(allowed.url())
    # then the allowed one is reached and answers; the other is refused at save
    error = problem_of(S3Provider(settings={"bucket": "reports", "endpoint_url": allowed.url("")},
                                  credentials=S3_CREDENTIALS).list_files)
    assert error.problem == ConnectionProblem.NOT_FOUND and allowed.requests
    with pytest.raises(OutboundRefused, match="private or local address"):
        connection_create(company=company, name="Other", provider="s3",
                          settings={"bucket": "reports", "endpoint_url": other.url("")},
                          credentials=S3_CREDENTIALS)
    assert other.requests == []


# -- Cova and OneDrive at sync time --------------------------------------------------------

def test_cova_sync_to_another_name_for_an_allowed_server_is_refused(company, cova_server):
    # given the Cova fake allow-listed as 127.0.0.1:<port>, and a credential saved before the
    # rule that calls it "localhost"
    url = cova_server.url.replace("127.0.0.1", "localhost")
    connection = cova_connection_create(company=company)
    credential = CovaCredential(connection=connection, client_id=cova_server.client_id,
                                username=cova_server.username, cova_company_id=str(cova_server.company_id),
                                accounts_url=url, api_url=url)
    credential.set_secrets(client_secret=cova_server.client_secret, password=cova_server.password)
    credential.save()
    # when it syncs
    failure, run = sync_failure(connection, credential)
    # then the run fails with the reason, not retried, and the fake saw nothing
    assert failure.retryable is False
    assert run.error.startswith(f"Not calling Cova: The URL {url}/v1/oauth2/token points at a private")
    assert cova_server.requests_to("/") == []


def test_cova_redirect_to_an_internal_address_is_refused(local_server, outbound_allow):
    # given an allowed server that redirects Cova's sign-in to an internal service
    internal = local_server(body=b'{"access_token": "stolen"}')
    front = local_server(status=307, headers={"Location": internal.url("/v1/oauth2/token")})
    outbound_allow(front.url())
    client = CovaClient(client_id="X.AIQ", client_secret="s3cret", username="u", password="p4ss",
                        company_id=1, accounts_url=front.url(""), api_url=front.url(""), max_attempts=1)
    # when it signs in
    error = problem_of(client.token)
    # then the redirect hop is refused, not retried, and the internal service saw nothing
    assert error.problem == ConnectionProblem.MISCONFIGURED and not error.retryable
    assert "points at a private or local address (127.0.0.1)" in error.message
    assert front.requests == [("POST", "/v1/oauth2/token")] and internal.requests == []


def test_onedrive_download_redirect_to_an_internal_address_is_refused(graph_server, local_server):
    # given Graph handing out a download URL on an internal (not allow-listed) service
    graph_server.put_file(FOLDER, "day.csv", b"TransactionID,Patient Number\n1,P1\n")
    internal = local_server(body=b"internal secret")
    graph_server.download_origin = internal.url("").rstrip("/")
    provider = onedrive(graph_server)
    [file] = provider.list_files()
    # when the file is opened
    error = problem_of(lambda: provider.open(file))
    # then the download is refused and nothing reached the internal service
    assert error.problem == ConnectionProblem.MISCONFIGURED and not error.retryable
    assert "points at a private or local address (127.0.0.1)" in error.message
    assert internal.requests == []


def test_onedrive_sign_in_at_a_private_address_is_refused(graph_server, connect_attempts):
    provider = onedrive(graph_server, login_base_url="http://169.254.169.254")
    error = problem_of(provider.list_files)
    assert error.problem == ConnectionProblem.MISCONFIGURED
    assert "points at a private or local address (169.254.169.254)" in error.message
    assert connect_attempts == []
