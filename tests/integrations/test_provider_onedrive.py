"""OneDriveProvider against a local Microsoft Graph fake over HTTP: token, listing, paging,
streaming without leaking the token, and every failure mapped to its ConnectionProblem."""

import datetime as dt
import socket
import time

import pytest

from integrations.providers.base import ConnectionProblem, ProviderError
from integrations.providers.onedrive import OneDriveProvider

from . import graph_fake
from .graph_fake import DEFAULT_SECRET, onedrive_settings

# pytest finds fixtures by name in the test module (an assignment keeps ruff's F811 quiet).
graph_server = graph_fake.graph_server
FOLDER = "POS Reports/Daily"


def provider_for(fake, folder=FOLDER, **overrides):
    settings, credentials = onedrive_settings(fake, folder)
    for name, value in overrides.items():
        (credentials if name.startswith("client_") else settings)[name] = value
    return OneDriveProvider(settings=settings, credentials=credentials)


def problem_of(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def test_interface_attributes():
    assert OneDriveProvider.kind == "onedrive"
    assert OneDriveProvider.label == "OneDrive folder"
    assert OneDriveProvider.required_headers == ("TransactionID", "Patient Number")
    assert OneDriveProvider.deletion_removes_data is False
    assert [f[0] for f in OneDriveProvider.credential_fields] == ["client_id", "client_secret"]
    assert {"tenant_id", "drive_path", "folder_path"} <= {f[0] for f in OneDriveProvider.setting_fields}


def test_token_uses_client_credentials_and_is_reused(graph_server):
    item = graph_server.put_file(FOLDER, "sales.csv", b"TransactionID,Patient Number\n1,P1\n")
    provider = provider_for(graph_server)

    provider.list_files()
    provider.list_files()
    with provider.open(provider.list_files()[0]) as stream:
        stream.read()

    assert len(graph_server.token_requests) == 1
    assert graph_server.token_requests[0] == {
        "client_id": "0c8a5e6d-2f41-4b37-9d1e-a6b5c4d3e2f1",
        "client_secret": DEFAULT_SECRET,
        "scope": "https://graph.microsoft.com/.default",
        "grant_type": "client_credentials",
    }
    assert item.id  # the file was there to open


def test_token_is_renewed_when_it_expires(graph_server):
    graph_server.put_file(FOLDER, "sales.csv", b"x")
    provider = provider_for(graph_server)
    graph_server.token_lifetime = 1  # shorter than the renewal margin: never cached

    provider.list_files()
    provider.list_files()

    assert len(graph_server.token_requests) == 2


def test_revoked_token_is_replaced_once(graph_server):
    graph_server.put_file(FOLDER, "sales.csv", b"x")
    provider = provider_for(graph_server)
    provider.list_files()
    graph_server.revoke_tokens()

    assert [f.key for f in provider.list_files()] == [f"{FOLDER}/sales.csv"]
    assert len(graph_server.token_requests) == 2


def test_lists_only_csv_files_with_their_metadata(graph_server):
    sales = graph_server.put_file(FOLDER, "sales.csv", b"TransactionID,Patient Number\n1,P1\n")
    upper = graph_server.put_file(FOLDER, "RETURNS.CSV", b"TransactionID,Patient Number\n")
    graph_server.put_file(FOLDER, "notes.txt", b"not a report")
    graph_server.put_file(FOLDER, "sales.csv.bak", b"old")
    graph_server.put_file(f"{FOLDER}/archive", "old.csv", b"in a subfolder")
    graph_server.put_file("POS Reports", "elsewhere.csv", b"parent folder")

    files = provider_for(graph_server).list_files()

    assert [f.key for f in files] == [f"{FOLDER}/RETURNS.CSV", f"{FOLDER}/sales.csv"]
    by_name = {f.key.rsplit("/", 1)[1]: f for f in files}
    assert by_name["sales.csv"].item_id == sales.id
    assert by_name["RETURNS.CSV"].item_id == upper.id
    assert by_name["sales.csv"].size == len(b"TransactionID,Patient Number\n1,P1\n")
    assert by_name["sales.csv"].etag.startswith('"c:{')  # the content tag, not the eTag
    assert isinstance(by_name["sales.csv"].modified_at, dt.datetime)
    assert by_name["sales.csv"].modified_at.tzinfo is not None
    # The query asked Graph for just the fields it needs.
    listing_url = graph_server.graph_requests[0][0]
    assert "/root:/POS%20Reports/Daily:/children" in listing_url
    assert "select=id%2Cname%2CeTag%2CcTag%2Csize%2ClastModifiedDateTime%2Cfile%2Cfolder" in listing_url


def test_follows_next_link_pages(graph_server):
    graph_server.page_size = 2
    for n in range(7):
        graph_server.put_file(FOLDER, f"day-{n}.csv", b"a,b\n")
    graph_server.put_file(FOLDER, "readme.txt", b"skip me")

    files = provider_for(graph_server).list_files()

    assert [f.key for f in files] == [f"{FOLDER}/day-{n}.csv" for n in range(7)]
    assert len(graph_server.graph_requests) == 4  # 8 items, 2 a page


def test_open_streams_the_exact_bytes_without_leaking_the_token(graph_server):
    data = b"TransactionID,Patient Number\n" + b"".join(b"%d,P%d\n" % (n, n) for n in range(20000))
    graph_server.put_file(FOLDER, "big.csv", data)
    provider = provider_for(graph_server)
    [file] = provider.list_files()

    stream = provider.open(file)
    chunks = []
    while chunk := stream.read(10_000):
        chunks.append(chunk)
    stream.close()

    assert b"".join(chunks) == data
    assert stream.closed
    [(_, download_headers)] = graph_server.download_requests
    assert "Authorization" not in download_headers
    content_request = graph_server.graph_requests[-1]
    assert content_request[0].endswith(f"/items/{file.item_id}/content")
    assert content_request[1]["Authorization"].startswith("Bearer ")


def test_download_on_the_same_host_gets_no_token_either(graph_server):
    graph_server.download_on_graph_host = True
    graph_server.put_file(FOLDER, "sales.csv", b"TransactionID,Patient Number\n1,P1\n")
    provider = provider_for(graph_server)

    with provider.open(provider.list_files()[0]) as stream:
        assert stream.read() == b"TransactionID,Patient Number\n1,P1\n"
    assert "Authorization" not in graph_server.download_requests[0][1]


def test_changed_content_changes_the_etag_but_metadata_does_not(graph_server):
    graph_server.put_file(FOLDER, "sales.csv", b"v1")
    provider = provider_for(graph_server)
    [before] = provider.list_files()

    graph_server.touch_metadata(FOLDER, "sales.csv")
    [touched] = provider.list_files()
    graph_server.put_file(FOLDER, "sales.csv", b"v2 longer")
    [after] = provider.list_files()

    assert touched.etag == before.etag
    assert after.etag != before.etag
    assert after.item_id == before.item_id
    assert after.size == len(b"v2 longer")


def test_deleted_file_disappears_from_the_list(graph_server):
    graph_server.put_file(FOLDER, "a.csv", b"1")
    graph_server.put_file(FOLDER, "b.csv", b"2")
    provider = provider_for(graph_server)
    graph_server.delete_file(FOLDER, "a.csv")

    assert [f.key for f in provider.list_files()] == [f"{FOLDER}/b.csv"]


def test_opening_a_deleted_file_is_not_found(graph_server):
    graph_server.put_file(FOLDER, "a.csv", b"1")
    provider = provider_for(graph_server)
    [file] = provider.list_files()
    graph_server.delete_file(FOLDER, "a.csv")

    error = problem_of(lambda: provider.open(file))
    assert error.problem == ConnectionProblem.NOT_FOUND
    assert file.key in error.message


def test_bad_client_secret_is_bad_credentials_without_the_secret(graph_server):
    graph_server.make_folder(FOLDER)
    wrong = "Wr0ng~secret.value_abcdefghijk"

    error = problem_of(provider_for(graph_server, client_secret=wrong).list_files)

    assert error.problem == ConnectionProblem.BAD_CREDENTIALS
    assert "AADSTS7000215" in error.message
    assert wrong not in error.message and DEFAULT_SECRET not in error.message
    assert "Trace ID" not in error.message
    assert not error.retryable
    assert graph_server.graph_requests == []


def test_unknown_client_id_is_bad_credentials(graph_server):
    error = problem_of(provider_for(graph_server, client_id="ffffffff-0000-0000-0000-000000000000").test)

    assert error.problem == ConnectionProblem.BAD_CREDENTIALS
    assert "ffffffff-0000-0000-0000-000000000000" in error.message
    assert "AADSTS700016" in error.message


def test_unknown_tenant_is_misconfigured_and_named(graph_server):
    error = problem_of(provider_for(graph_server, tenant_id="contoso-typo.onmicrosoft.com").test)

    assert error.problem == ConnectionProblem.MISCONFIGURED
    assert "contoso-typo.onmicrosoft.com" in error.message
    assert "AADSTS90002" in error.message


def test_missing_folder_is_not_found_naming_the_folder(graph_server):
    graph_server.make_folder("POS Reports")

    error = problem_of(provider_for(graph_server, folder="POS Reports/Dayly").list_files)

    assert error.problem == ConnectionProblem.NOT_FOUND
    assert "'POS Reports/Dayly'" in error.message


def test_unknown_user_drive_is_not_found(graph_server):
    graph_server.make_folder(FOLDER)

    error = problem_of(provider_for(graph_server, drive_path="/users/nobody@contoso.com/drive").list_files)

    assert error.problem == ConnectionProblem.NOT_FOUND
    assert "/users/nobody@contoso.com/drive" in error.message


def test_denied_folder_is_no_permission(graph_server):
    graph_server.put_file(FOLDER, "sales.csv", b"x")
    graph_server.deny(FOLDER)

    error = problem_of(provider_for(graph_server).list_files)

    assert error.problem == ConnectionProblem.NO_PERMISSION
    assert FOLDER in error.message
    assert "accessDenied" in error.message


def test_graph_401_is_bad_credentials(graph_server):
    graph_server.make_folder(FOLDER)
    provider = provider_for(graph_server)
    graph_server.token_lifetime = -100  # every token it issues is already expired

    error = problem_of(provider.list_files)

    assert error.problem == ConnectionProblem.BAD_CREDENTIALS
    assert "InvalidAuthenticationToken" in error.message


def test_throttled_graph_is_unreachable_and_retryable(graph_server):
    graph_server.make_folder(FOLDER)
    graph_server.fail_next_graph_request(503, "serviceNotAvailable", "Service unavailable")

    error = problem_of(provider_for(graph_server).list_files)

    assert error.problem == ConnectionProblem.UNREACHABLE
    assert error.retryable


def test_closed_port_is_unreachable_quickly(outbound_allow):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    outbound_allow(f"127.0.0.1:{port}")
    provider = OneDriveProvider(
        settings={"tenant_id": "t", "drive_path": "/drives/b!x", "folder_path": FOLDER,
                  "graph_base_url": f"http://127.0.0.1:{port}/v1.0",
                  "login_base_url": f"http://127.0.0.1:{port}"},
        credentials={"client_id": "c", "client_secret": "s3cr3t-value"},
    )

    started = time.monotonic()
    error = problem_of(provider.list_files)

    assert time.monotonic() - started < 3
    assert error.problem == ConnectionProblem.UNREACHABLE
    assert f"127.0.0.1:{port}" in error.message
    assert error.retryable


def test_slow_graph_times_out_as_unreachable(graph_server):
    graph_server.make_folder(FOLDER)
    provider = provider_for(graph_server)
    provider.read_timeout = 0.3
    graph_server.stall_seconds = 2

    error = problem_of(provider.list_files)

    assert error.problem == ConnectionProblem.UNREACHABLE
    assert "127.0.0.1" in error.message


@pytest.mark.parametrize(("name", "value", "expected"), [
    ("tenant_id", "", "tenant id"),
    ("drive_path", "", "drive"),
    ("drive_path", "/me/drive", "/me/drive"),
    ("folder_path", "  ", "folder path"),
    ("graph_base_url", "graph.microsoft.com/v1.0", "graph.microsoft.com"),
    ("client_id", "", "client id"),
    ("client_secret", None, "client secret"),
])
def test_missing_settings_are_misconfigured_before_any_call(graph_server, name, value, expected):
    provider = provider_for(graph_server, **{name: value})

    error = problem_of(provider.list_files)

    assert error.problem == ConnectionProblem.MISCONFIGURED
    assert expected in error.message
    assert graph_server.token_requests == [] and graph_server.graph_requests == []


def test_drive_id_setting_addresses_the_drive(graph_server):
    graph_server.put_file(FOLDER, "sales.csv", b"x")
    settings, credentials = onedrive_settings(graph_server, FOLDER)
    del settings["drive_path"]
    settings["drive_id"] = "b!fakeDriveId-0123456789"

    files = OneDriveProvider(settings=settings, credentials=credentials).list_files()

    assert [f.key for f in files] == [f"{FOLDER}/sales.csv"]


def test_test_reports_the_folder_and_count(graph_server):
    graph_server.put_file(FOLDER, "a.csv", b"1")
    graph_server.put_file(FOLDER, "b.csv", b"2")
    graph_server.put_file(FOLDER, "c.xlsx", b"3")

    message = provider_for(graph_server).test()

    assert message == "OneDrive folder 'POS Reports/Daily' is reachable: 2 CSV files."
