import os
import shutil
import socket
from urllib.parse import urlsplit

import pytest
from django.conf import settings as django_settings
from django.test import override_settings

from stores.models import Role

from .factories import PASSWORD, CompanyFactory, MembershipFactory, RetailStoreFactory
from .local_server import LocalServer

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests
# make around it are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def company(db):
    return CompanyFactory(name="Green Leaf", timezone="America/Denver")


@pytest.fixture
def other_company(db):
    return CompanyFactory(name="Other Co")


@pytest.fixture
def reports_root(settings, tmp_path):
    """REPORTS_ROOT in a temporary folder: each company's report files go in <root>/<slug>/."""
    root = tmp_path / "reports-root"
    root.mkdir()
    settings.REPORTS_ROOT = root
    return root


@pytest.fixture
def store(company):
    return RetailStoreFactory(company=company, name="Denver", state="CO")


def _member(company, role):
    return MembershipFactory(company=company, role=role).user


@pytest.fixture
def admin_user(company):
    return _member(company, Role.ADMIN)


@pytest.fixture
def marketer_user(company):
    return _member(company, Role.MARKETER)


@pytest.fixture
def budtender_user(company):
    return _member(company, Role.BUDTENDER)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def outbound_allow():
    """Let this test's outbound requests reach one local server: `allow(url)` adds the
    URL's exact host:port (or a "host:port" given as is) to OUTBOUND_ALLOW_HOSTS until the
    test ends. Every other private address stays refused."""
    overrides = []

    def allow(url: str) -> str:
        parts = urlsplit(url if "//" in url else f"//{url}")
        host = f"[{parts.hostname}]" if ":" in (parts.hostname or "") else parts.hostname
        entry = f"{host}:{parts.port or {'https': 443}.get(parts.scheme, 80)}"
        # override_settings, not the `settings` fixture: a test parametrized on a
        # "settings" argument would hide that one.
        override = override_settings(OUTBOUND_ALLOW_HOSTS=[*django_settings.OUTBOUND_ALLOW_HOSTS, entry])
        override.enable()
        overrides.append(override)
        return entry

    yield allow
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def local_server():
    """Start a recording HTTP server on 127.0.0.1: `local_server(status=..., body=...,
    headers=...)`. It is NOT allow-listed: outbound requests must not reach it."""
    servers = []

    def start(**kwargs) -> LocalServer:
        server = LocalServer(**kwargs).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def fake_dns(monkeypatch):
    """The DNS answer, and only it, for made-up names: `fake_dns["hooks.example.com"] =
    ["127.0.0.1"]`, or a function returning the addresses (a name that rebinds between
    calls). Other names resolve as usual."""
    answers: dict = {}
    real = socket.getaddrinfo

    def getaddrinfo(host, port, family=0, type=0, proto=0, flags=0):  # noqa: A002 - the stdlib's names
        if host not in answers:
            return real(host, port, family, type, proto, flags)
        addresses = answers[host]() if callable(answers[host]) else answers[host]
        port = int(port or 0)
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (a, port, 0, 0)) if ":" in a
                else (socket.AF_INET, socket.SOCK_STREAM, 6, "", (a, port)) for a in addresses]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return answers


@pytest.fixture
def connect_attempts(monkeypatch):
    """Every TCP connect this test makes to anything but loopback is recorded and refused on
    the spot, so no traffic ever goes to a real private network; tests assert it stays empty."""
    attempts = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def outside(address) -> bool:
        return isinstance(address, tuple) and address[0] not in ("127.0.0.1", "::1")

    def connect(sock, address):
        if outside(address):
            attempts.append(address[0])
            raise ConnectionRefusedError(f"test: no connections to {address[0]}")
        return real_connect(sock, address)

    def connect_ex(sock, address):
        if outside(address):
            attempts.append(address[0])
            return 111
        return real_connect_ex(sock, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    return attempts


@pytest.fixture
def login():
    """Log a user in on a test client, by role."""

    def do(client, user):
        client.force_login(user)
        return client

    return do


# --- Browser -------------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM:
        pytest.skip("Chromium is not installed: apt-get install chromium (see README)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"],
    }


@pytest.fixture
def password():
    return PASSWORD


@pytest.fixture(autouse=True)
def redis_guard_reset():
    """A test that pointed the cache at a dead Redis must not leave this process skipping
    Redis (stores/redis_guard.py's back-off) for the tests after it."""
    from stores import redis_guard

    redis_guard._down_until = 0.0
    yield
    redis_guard._down_until = 0.0


@pytest.fixture(autouse=True, scope="session")
def celery_publishes_to_the_suite_broker():
    """Celery makes its pool of broker connections on first use, from the settings of that
    moment: were that inside a test that points the broker at a dead port, every later
    task of this process would go there. Make it now, on the suite's own broker."""
    from config.celery import app

    app.pool  # noqa: B018
    yield
