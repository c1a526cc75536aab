"""The one way the server calls a URL a merchant typed: webhooks, an S3-compatible endpoint,
OneDrive's Graph and sign-in servers, Cova's servers.

Such a URL must never reach this network's own machines (SSRF): not loopback, private,
link-local (169.254.169.254, the cloud metadata service), unique-local, multicast,
reserved or unspecified addresses, nor any of them written as IPv4-mapped IPv6. Two checks:

- when the URL is saved, `outbound_url_check` resolves its host and refuses it if ANY of
  its addresses is not public, so the merchant sees the mistake on the form;
- when the request is made, `outbound_session()` (requests-hardened) resolves the host
  again, refuses a non-public address and connects to exactly the address it checked, on
  every redirect hop; a name that changed its answer since (DNS rebinding) is caught here.
  Clients that are not `requests` (boto3) call `outbound_socket_check` on each socket they
  open, which looks at the address actually connected to.

The only way through to a private address is an exact `host:port` listed in
settings.OUTBOUND_ALLOW_HOSTS (local test servers and demo fakes); production leaves it
empty. There is deliberately no switch that lets every private address through.
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from requests.adapters import HTTPAdapter
from requests_hardened import Config, HTTPSession
from requests_hardened.ip_filter import EXTRA_BLOCKED_NET_RANGES, InvalidIPAddress
from requests_hardened.ip_filter_adapter import IPFilterAdapter

from .errors import OutboundRefused

DEFAULT_PORTS = {"http": 80, "https": 443}
# Used only where a caller forgets its own timeout: (connect, read) seconds.
DEFAULT_TIMEOUT = (5, 30)

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


# -- addresses ---------------------------------------------------------------------------

def _address(value) -> IPAddress:
    if isinstance(value, ipaddress.IPv4Address | ipaddress.IPv6Address):
        return value
    return ipaddress.ip_address(str(value).strip("[]"))


def address_is_public(value) -> bool:
    """True for an address on the public internet; False for loopback, private, link-local,
    unique-local, site-local, multicast, reserved, unspecified and shared (CG-NAT)
    addresses, and for the translation ranges (NAT64, 6to4) that can lead to them."""
    ip = _address(value)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    if (ip.is_private or ip.is_loopback or ip.is_link_local or ip.is_multicast or ip.is_reserved
            or ip.is_unspecified or getattr(ip, "is_site_local", False)):
        return False
    if any(ip in network for network in EXTRA_BLOCKED_NET_RANGES):
        return False
    return ip.is_global


# -- the allow-list ----------------------------------------------------------------------

def _normal_host(host: str) -> str:
    return (host or "").strip().strip("[]").rstrip(".").lower()


def outbound_allow_hosts() -> list[str]:
    """settings.OUTBOUND_ALLOW_HOSTS as listed (for the operator's page)."""
    return list(getattr(settings, "OUTBOUND_ALLOW_HOSTS", ()) or ())


def _allowed_pairs() -> set[tuple[str, int]]:
    pairs = set()
    for entry in outbound_allow_hosts():
        host, _, port = entry.strip().rpartition(":")
        if not host or not port.isdigit():
            raise ImproperlyConfigured(
                f"OUTBOUND_ALLOW_HOSTS entry '{entry}' is not host:port, e.g. 127.0.0.1:8765.")
        pairs.add((_normal_host(host), int(port)))
    return pairs


def host_allowed(host: str, port: int | None) -> bool:
    """True when exactly this host:port is on the operator's allow-list."""
    return port is not None and (_normal_host(host), int(port)) in _allowed_pairs()


def _shown(address) -> str:
    try:
        ip = _address(address)
    except ValueError:
        return str(address)
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return f"::ffff:{ip.ipv4_mapped}"  # as people write it, not ::ffff:7f00:1
    return str(ip)


def _refused(url: str, address, what: str, field: str | None = None) -> OutboundRefused:
    address = _shown(address)
    return OutboundRefused(
        f"{what} {url} points at a private or local address ({address}); "
        "only public internet addresses are allowed.",
        extra={"url": url, "address": address, **({"field": field} if field else {})})


# -- when a URL is saved -----------------------------------------------------------------

def outbound_url_check(url: str, *, what: str = "The URL", field: str | None = None) -> None:
    """Raise OutboundRefused unless `url` is http(s) and every address its host resolves to
    is public (or its exact host:port is allow-listed). `what` starts the message, e.g.
    "Webhook URL"; `field` names the form field in the error's `extra`. A name that does
    not resolve now passes: it cannot point anywhere yet, and the request itself is checked
    again when it is made."""
    url = (url or "").strip()
    where = {"field": field} if field else {}
    parts = urlsplit(url)
    if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
        raise OutboundRefused(f"{what} {url} is not an http:// or https:// address.",
                              extra={"url": url, **where})
    try:
        port = parts.port or DEFAULT_PORTS[parts.scheme]
    except ValueError:
        raise OutboundRefused(f"{what} {url} has an invalid port.", extra={"url": url, **where}) from None
    host = parts.hostname
    if host_allowed(host, port):
        return
    try:
        addresses = [_address(host)]
    except ValueError:  # a name, not an address
        try:
            answers = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            return
        addresses = [_address(answer[4][0]) for answer in answers
                     if answer[0] in (socket.AF_INET, socket.AF_INET6)]
    for address in addresses:
        if not address_is_public(address):
            raise _refused(url, address, what, field=field)


# -- when a request is made --------------------------------------------------------------

class GuardedAdapter(IPFilterAdapter):
    """requests-hardened's adapter (resolve once, refuse non-public, pin the connection to
    the checked address, for every request including each redirect hop), with our stricter
    idea of "public" and the operator's exact host:port exceptions."""

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
        parts = urlsplit(request.url)
        host = parts.hostname or ""
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
        if host_allowed(host, port):
            # An operator's exception (a local test server): connect as usual.
            return HTTPAdapter.build_connection_pool_key_attributes(self, request, verify, cert)
        try:
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        except InvalidIPAddress as exc:
            raise _refused(request.url, exc.args[0] if exc.args else host, "The URL") from None
        # The library pinned the connection to this address; hold it to our rules too.
        if not address_is_public(host_params["host"]):
            raise _refused(request.url, host_params["host"].strip("[]"), "The URL")
        return host_params, pool_kwargs


def outbound_session() -> requests.Session:
    """A requests Session for calls on a merchant's behalf. A URL that is (or redirects to)
    a private or local address raises OutboundRefused before anything is sent to it.

    It ignores this host's proxy variables and ~/.netrc (`trust_env`): a merchant's URL
    never picks up the server's own credentials."""
    session = HTTPSession(Config(ip_filter_enable=True, ip_filter_allow_loopback_ips=False,
                                 never_redirect=False, default_timeout=DEFAULT_TIMEOUT))
    session.mount("http://", GuardedAdapter(is_https_proto=False))
    session.mount("https://", GuardedAdapter(is_https_proto=True))
    session.trust_env = False
    return session


def outbound_socket_check(sock: socket.socket, *, host: str, port: int, url: str = "") -> None:
    """For clients that open their own sockets (boto3): refuse a connected socket whose peer
    is not public, unless host:port is allow-listed. Checking the peer, not a DNS answer,
    means a name that resolves (or rebinds) to a private address is caught. Nothing has
    been sent on the socket yet; it is closed before OutboundRefused is raised."""
    if host_allowed(host, port):
        return
    try:
        address = sock.getpeername()[0]
    except OSError:
        sock.close()
        raise
    if not address_is_public(address):
        sock.close()
        shown_host = f"[{host}]" if ":" in host else host
        raise _refused(url or f"{shown_host}:{port}", address, "The address")


# -- aiohttp (the twilio library's asynchronous client) --------------------------------------

def outbound_aiohttp_session(url: str, *, timeout: float = 30):
    """An aiohttp ClientSession for calls to `url`'s host on a merchant's behalf, held to the
    same rules as outbound_session: `url` itself is checked (an address in it never reaches
    a resolver), and every name the session resolves must resolve to public addresses only
    (it connects to the addresses checked), unless its exact host:port is allow-listed. No
    proxy variables or .netrc (trust_env off). `timeout`: seconds for each whole request.
    Make it inside the event loop that uses it."""
    import aiohttp

    outbound_url_check(url)

    class GuardedResolver(aiohttp.ThreadedResolver):
        async def resolve(self, host, port=0, family=socket.AF_INET):
            answers = await super().resolve(host, port, family)
            if not host_allowed(host, port):
                for answer in answers:
                    if not address_is_public(answer["host"]):
                        raise _refused(f"{host}:{port}", answer["host"], "The address")
            return answers

    return aiohttp.ClientSession(connector=aiohttp.TCPConnector(resolver=GuardedResolver(), limit=100),
                                 timeout=aiohttp.ClientTimeout(total=timeout), trust_env=False)
