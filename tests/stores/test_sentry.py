"""With SENTRY_DSN set, an exception in a view reaches Sentry: its type and message, and
never the request body or the API key (send_default_pii off, no bodies)."""

import gzip
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from django.conf import settings

from stores.services import api_key_create
from tests.childdb import database_url

from .test_metrics_processes import free_port


class FakeSentry:
    """A real HTTP server that keeps every envelope posted to it, decompressed."""

    def __init__(self):
        self.envelopes: list[str] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                fake.envelopes.append(f"{self.path}\n{body.decode('utf-8', 'replace')}")
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                         daemon=True).start()


@pytest.fixture
def sentry():
    fake = FakeSentry()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def test_a_view_that_raises_is_reported_without_the_body_or_the_key(transactional_db, company, sentry,
                                                                   tmp_path):
    _, raw = api_key_create(company=company, name="Register 1", level=0)
    port = free_port()
    env = os.environ | {"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                        "PYTHONPATH": str(settings.BASE_DIR),
                        "DJANGO_SETTINGS_MODULE": "tests.stores.sentry_settings",
                        "SENTRY_DSN": f"http://publickey@127.0.0.1:{sentry.port}/1",
                        "SENTRY_ENVIRONMENT": "staging-test"}
    log = (tmp_path / "web.log").open("w")
    server = subprocess.Popen([sys.executable, "-m", "gunicorn", "config.wsgi", "-w", "1",
                               "-b", f"127.0.0.1:{port}"],
                              cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                requests.get(f"http://127.0.0.1:{port}/healthz", timeout=10)
                break
            except requests.RequestException:
                time.sleep(0.2)
        # when the POS calls a view that raises
        response = requests.post(f"http://127.0.0.1:{port}/api/pos/v1/boom?token=query-secret",
                                 json={"note": "body-secret-marker"}, timeout=10,
                                 headers={"Authorization": f"Bearer {raw}",
                                          "X-Account-UID": company.account_uid})
        assert response.status_code == 500
        assert response.json()["request_id"] == response.headers["X-Request-ID"]
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any("CounterBroke" in e for e in sentry.envelopes):
            time.sleep(0.1)
    finally:
        server.terminate()
        server.wait(timeout=20)
    # then Sentry got the exception, in its environment
    [event] = [e for e in sentry.envelopes if "CounterBroke" in e]
    assert event.startswith("/api/1/envelope/")
    assert "the counter broke" in event and "staging-test" in event
    # and not the body, the API key or the request's credentials
    assert "body-secret-marker" not in event
    assert raw not in event and raw[:12] not in event and "query-secret" not in event
    # and it names the request id the POS was given, to find the request's log lines
    assert f'"request_id":"{response.headers["X-Request-ID"]}"' in event
