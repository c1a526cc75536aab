"""One JSON access line per request: who called (company, user or API key), the route,
status and duration, and the request id the response returned in X-Request-ID."""

import json
import logging
import os
import subprocess
import sys

import pytest
from cryptography.fernet import Fernet
from django.conf import settings
from django.urls import reverse

from stores.logs import JsonFormatter
from stores.models import Role
from stores.requestid import RequestIdFilter
from stores.services import api_key_create
from tests.factories import MembershipFactory


class Lines(logging.Handler):
    """The lines a logger writes, formatted as production writes them (LOG_FORMAT=json)."""

    def __init__(self):
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.addFilter(RequestIdFilter())
        self.lines: list[str] = []

    def emit(self, record):
        self.lines.append(self.format(record))

    def parsed(self) -> list[dict]:
        return [json.loads(line) for line in self.lines]


@pytest.fixture
def access_lines():
    handler = Lines()
    logger = logging.getLogger("loyalty.access")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


def test_a_pos_call_writes_one_line_with_its_key_company_and_request_id(client, company, access_lines):
    # given a POS with an API key
    key, raw = api_key_create(company=company, name="Register 1", level=1)
    # when it calls the API, with a token in the query string
    response = client.get("/api/pos/v1/ping?access_token=secret-in-query", HTTP_AUTHORIZATION=f"Bearer {raw}",
                          HTTP_X_ACCOUNT_UID=str(company.account_uid))
    assert response.status_code == 200
    # then one access line says who, what and how long, with the id the response returned
    [line] = access_lines.parsed()
    assert line["logger"] == "loyalty.access" and line["level"] == "INFO"
    assert line["method"] == "GET" and line["path"] == "/api/pos/v1/ping" and line["route"] == "pos_ping"
    assert line["status"] == 200 and isinstance(line["duration_ms"], float)
    assert line["company_id"] == company.pk and line["company"] == company.slug
    assert line["api_key_id"] == key.pk and "user_id" not in line
    assert line["request_id"] == response["X-Request-ID"]
    # and neither the key nor the query string is in it
    assert raw not in access_lines.lines[0] and "secret-in-query" not in access_lines.lines[0]


def test_a_refused_pos_call_is_logged_without_a_caller(client, company, access_lines):
    response = client.post("/api/pos/v1/lookup", {"phone": "+13035550100"}, content_type="application/json",
                           HTTP_AUTHORIZATION="Bearer lk_wrong", HTTP_X_ACCOUNT_UID=str(company.account_uid))
    assert response.status_code == 401
    [line] = access_lines.parsed()
    assert line["status"] == 401 and line["route"] == "pos_lookup"
    assert "api_key_id" not in line and "company" not in line
    assert "lk_wrong" not in access_lines.lines[0]


def test_a_staff_page_writes_the_user_and_their_company(admin_client, admin_user, company, access_lines):
    response = admin_client.get(reverse("home"), HTTP_X_REQUEST_ID="lb-trace-42")
    assert response.status_code == 200
    [line] = access_lines.parsed()
    assert line["user_id"] == admin_user.pk and line["company"] == company.slug
    assert line["route"] == "home" and line["request_id"] == "lb-trace-42" == response["X-Request-ID"]


def test_an_unknown_path_is_labelled_unmatched_not_by_its_path(client, db, access_lines):
    client.get("/no/such/page/12345")
    [line] = access_lines.parsed()
    assert line["status"] == 404 and line["route"] == "unmatched" and line["path"] == "/no/such/page/12345"


LOG_SETUP = ("import django, logging; django.setup(); from django.conf import settings; "
             "print(settings.LOG_FORMAT); "
             "logging.getLogger('loyalty.access').info('hello', extra={'status': 200})")


def start(**env):
    environment = {k: v for k, v in os.environ.items() if k not in ("LOG_FORMAT", "DEBUG")} | env
    return subprocess.run([sys.executable, "-c", LOG_SETUP], env=environment, capture_output=True,
                          text=True, cwd=settings.BASE_DIR, timeout=60)


def test_log_format_is_json_in_production_and_plain_in_development():
    production = start(DEBUG="0", SECRET_KEY="x" * 50, FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
                       ALLOWED_HOSTS="shop.example")
    assert production.returncode == 0, production.stderr
    assert production.stdout.strip() == "json"
    [line] = [json.loads(text) for text in production.stderr.splitlines() if '"loyalty.access"' in text]
    assert line["message"] == "hello" and line["status"] == 200 and line["request_id"] == "-"

    development = start(DEBUG="1")
    assert development.stdout.strip() == "plain"
    assert "INFO loyalty.access [-]: hello" in development.stderr

    chosen = start(DEBUG="1", LOG_FORMAT="json")
    assert chosen.stdout.strip() == "json"
    assert start(DEBUG="1", LOG_FORMAT="xml").returncode != 0


def test_a_forbidden_page_logs_one_line_without_a_traceback(client, company, caplog, capsys):
    # given a budtender, whose role may not manage settings
    user = MembershipFactory(company=company, role=Role.BUDTENDER).user
    client.force_login(user)
    caplog.set_level(logging.INFO)
    caplog.clear()
    capsys.readouterr()
    # when they open a settings page
    response = client.get(reverse("store_list"))
    assert response.status_code == 403
    # then the log has one line for it, the access line, and no traceback anywhere
    records = [r for r in caplog.records if not r.name.startswith("axes")]
    assert [(r.name, r.levelname) for r in records] == [("loyalty.access", "INFO")]
    assert records[0].status == 403 and records[0].exc_info is None
    written = capsys.readouterr()
    assert "Traceback" not in written.err + written.out
    assert "Traceback" not in caplog.text
