"""The one guarded path for requests on a merchant's behalf (stores/outbound.py): which
addresses are refused, when a URL is saved and when the request is made, with real
sockets on 127.0.0.1, redirects, names that resolve (or rebind) to loopback, and the
operator's exact host:port allow-list."""

import socket

import pytest
import requests
from django.contrib.auth import get_user_model
from django.urls import reverse

from stores.errors import OutboundRefused
from stores.outbound import (
    address_is_public,
    outbound_session,
    outbound_socket_check,
    outbound_url_check,
)

# Written as a merchant would type them; the address the message names.
PRIVATE_URLS = [
    ("http://127.0.0.1:8000/admin/", "127.0.0.1"),
    ("http://[::1]:8000/", "::1"),
    ("http://10.0.0.1/", "10.0.0.1"),
    ("http://172.16.0.1/", "172.16.0.1"),
    ("http://192.168.1.1/", "192.168.1.1"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://localhost:8000/", "127.0.0.1"),
    ("http://[::ffff:127.0.0.1]:8000/", "::ffff:127.0.0.1"),
    ("http://[fe80::1]/", "fe80::1"),
    ("http://[fd00::1]/", "fd00::1"),
    ("http://0.0.0.0:8000/", "0.0.0.0"),
    ("http://2130706433/", "127.0.0.1"),  # 127.0.0.1 as one number
]
# Addresses outside loopback: refused by address, never sent a packet.
NEVER_CONTACTED = ["10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254"]


def refusal(call) -> OutboundRefused:
    with pytest.raises(OutboundRefused) as caught:
        call()
    return caught.value


# -- addresses ---------------------------------------------------------------------------

@pytest.mark.parametrize("address", [
    "127.0.0.1", "127.8.9.10", "::1", "10.0.0.1", "172.16.0.1", "172.31.255.254", "192.168.1.1",
    "169.254.169.254", "fe80::1", "fc00::1", "fd12:3456::1", "224.0.0.1", "ff02::1", "240.0.0.1",
    "255.255.255.255", "0.0.0.0", "::", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254",
    "100.64.0.1", "fec0::1", "64:ff9b::a00:1", "2002:7f00:1::1",
])
def test_address_is_public_refuses_local_private_and_reserved(address):
    assert address_is_public(address) is False


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:93.184.216.34"])
def test_address_is_public_accepts_internet_addresses(address):
    assert address_is_public(address) is True


# -- when a URL is saved -----------------------------------------------------------------

@pytest.mark.parametrize(("url", "address"), PRIVATE_URLS)
def test_outbound_url_check_refuses_private_and_local_urls(url, address):
    # when a private or local URL is checked
    error = refusal(lambda: outbound_url_check(url, what="Webhook URL", field="url"))
    # then the message says which URL, which address and what is allowed
    assert error.message == (f"Webhook URL {url} points at a private or local address ({address}); "
                             "only public internet addresses are allowed.")
    assert error.extra == {"url": url, "address": address, "field": "url"}


def test_outbound_url_check_refuses_a_name_when_any_address_is_private(fake_dns):
    # given a name with a public and a loopback address
    fake_dns["pos.example.com"] = ["93.184.216.34", "127.0.0.1"]
    # then it is refused for the loopback one
    error = refusal(lambda: outbound_url_check("https://pos.example.com/hook"))
    assert error.extra["address"] == "127.0.0.1"


def test_outbound_url_check_accepts_public_and_unresolvable_names(fake_dns):
    fake_dns["pos.example.com"] = ["93.184.216.34", "2606:4700::1111"]
    outbound_url_check("https://pos.example.com/hook")
    outbound_url_check("https://93.184.216.34:8443/hook")
    # a name that does not resolve (yet) cannot point anywhere; sending checks it again
    outbound_url_check("https://not-yet.example.invalid/hook")


@pytest.mark.parametrize("url", ["ftp://pos.example.com/x", "file:///etc/passwd", "gopher://127.0.0.1:6379/_",
                                 "pos.example.com/hook", "http:///nohost"])
def test_outbound_url_check_refuses_other_schemes(url):
    error = refusal(lambda: outbound_url_check(url, what="Webhook URL"))
    assert "is not an http:// or https:// address" in error.message


def test_outbound_url_check_lets_only_allow_listed_host_port_pairs_through(outbound_allow):
    # given one exact pair on the allow-list
    outbound_allow("127.0.0.1:8765")
    # then that pair passes, and the same host on another port, or another name for it, does not
    outbound_url_check("http://127.0.0.1:8765/v1")
    for url in ("http://127.0.0.1:8766/", "http://localhost:8765/", "http://[::1]:8765/", "http://127.0.0.1/"):
        refusal(lambda url=url: outbound_url_check(url))


# -- when the request is made ------------------------------------------------------------

def test_outbound_session_refuses_loopback_and_sends_nothing(local_server):
    # given an internal service on 127.0.0.1, not allow-listed
    internal = local_server(body=b"root:x:0:0 internal secret")
    for url in (internal.url("/admin/"), internal.url("/admin/", host="localhost"),
                internal.url("/", host="[::ffff:127.0.0.1]")):
        # when the session is asked to fetch it
        error = refusal(lambda url=url: outbound_session().get(url, timeout=2))
        # then it is refused, naming the address
        assert "points at a private or local address (127.0.0.1)" in error.message
    # and the service never saw a request
    assert internal.requests == []


def test_outbound_session_refuses_ipv6_loopback():
    error = refusal(lambda: outbound_session().get("http://[::1]:9/", timeout=2))
    assert error.extra["address"] == "::1"


@pytest.mark.parametrize("address", NEVER_CONTACTED)
def test_outbound_session_refuses_private_networks_before_connecting(address, connect_attempts):
    # when a request to a private network is made
    error = refusal(lambda: outbound_session().post(f"http://{address}/latest/meta-data/", data=b"x",
                                                    timeout=2))
    # then it is refused by its address, without a connection being tried
    assert error.extra["address"] == address
    assert connect_attempts == []


def test_outbound_session_reaches_an_allow_listed_server(local_server, outbound_allow):
    # given a local server whose exact host:port is allow-listed
    server = local_server(body=b"hello")
    outbound_allow(server.url())
    # when it is fetched, then it answers
    response = outbound_session().get(server.url("/ping"), timeout=2)
    assert (response.status_code, response.text, server.requests) == (200, "hello", [("GET", "/ping")])


def test_outbound_session_refuses_a_redirect_to_a_private_address(local_server, outbound_allow):
    # given an allowed server that redirects to an internal one on another (not allowed) port
    internal = local_server(body=b"internal secret")
    front = local_server(status=302, headers={"Location": internal.url("/admin/")})
    outbound_allow(front.url())
    # when the allowed URL is fetched, following redirects
    error = refusal(lambda: outbound_session().get(front.url("/start"), timeout=2))
    # then the redirect hop is refused and the internal service saw nothing
    assert error.extra == {"url": internal.url("/admin/"), "address": "127.0.0.1"}
    assert front.requests == [("GET", "/start")] and internal.requests == []


def test_outbound_session_refuses_a_name_that_rebinds_to_loopback(local_server, fake_dns):
    # given a name that resolves to a public address when the URL is saved...
    internal = local_server(body=b"internal secret")
    answers = iter([["93.184.216.34"]])
    fake_dns["hooks.example.com"] = lambda: next(answers, ["127.0.0.1"])
    url = f"http://hooks.example.com:{internal.port}/hook"
    outbound_url_check(url)
    # ...and to 127.0.0.1 when the request is made
    error = refusal(lambda: outbound_session().post(url, data=b"{}", timeout=2))
    # then the request is refused and nothing reached the internal service
    assert error.extra["address"] == "127.0.0.1"
    assert internal.requests == []


def test_outbound_session_ignores_the_hosts_proxy_settings(local_server, outbound_allow, monkeypatch,
                                                           connect_attempts):
    # given this host's proxy variables pointing at a local (allow-listed) server
    proxy = local_server(body=b"proxied")
    outbound_allow(proxy.url())
    for name in ("HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(name, proxy.url())
    # when a public URL is fetched (the test refuses the connection itself: no traffic leaves)
    with pytest.raises(requests.ConnectionError):
        outbound_session().get("http://93.184.216.34/", timeout=2)
    # then it went straight to the address, never through the proxy
    assert connect_attempts == ["93.184.216.34"] and proxy.requests == []


# -- sockets opened by other clients (boto3) ---------------------------------------------

def test_outbound_socket_check_refuses_a_loopback_peer_and_closes_it(local_server, outbound_allow):
    server = local_server()
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=2)
    # when the connected socket is checked, then it is refused and closed
    error = refusal(lambda: outbound_socket_check(sock, host="s3.example.com", port=server.port))
    assert error.extra["address"] == "127.0.0.1" and sock.fileno() == -1
    # an allow-listed host:port passes
    outbound_allow(f"127.0.0.1:{server.port}")
    with socket.create_connection(("127.0.0.1", server.port), timeout=2) as sock:
        outbound_socket_check(sock, host="127.0.0.1", port=server.port)
        assert sock.fileno() != -1


# -- the operator's page -----------------------------------------------------------------

def test_admin_index_shows_the_allow_list(client, db, settings):
    operator = get_user_model().objects.create_superuser("operator", "op@example.com", "pw-long-enough-1")
    client.force_login(operator)
    # in production: empty
    settings.OUTBOUND_ALLOW_HOSTS = []
    page = client.get(reverse("admin:index")).content.decode()
    box = page.split('data-testid="outbound-allow-hosts"')[1].split("</div>")[0]
    assert "Outbound requests allowed to private addresses:" in box and "<strong>none</strong>" in box
    assert "OUTBOUND_ALLOW_HOSTS" in box
    # with local fakes listed: each pair shown
    settings.OUTBOUND_ALLOW_HOSTS = ["127.0.0.1:8765", "localhost:9000"]
    page = client.get(reverse("admin:index")).content.decode()
    box = page.split('data-testid="outbound-allow-hosts"')[1].split("</div>")[0]
    assert "<code>127.0.0.1:8765</code>, <code>localhost:9000</code>" in box
