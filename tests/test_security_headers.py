"""Security headers on every page, https in production, and a deploy check with nothing to fix.

The browser side (no page breaks under the policy) is tests/browser/test_csp.py."""

import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.waitingroom.conftest import queue_store  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db


def policy(response) -> dict[str, list[str]]:
    header = response.headers["Content-Security-Policy"]
    return {name: values for name, *values in (part.split() for part in header.split(";"))}


def assert_locked_down(response):
    csp = policy(response)
    assert csp["default-src"] == ["'self'"]
    assert csp["script-src"][0] == "'self'"
    assert not {"'unsafe-inline'", "'unsafe-eval'", "data:", "*"} & set(csp["script-src"])
    assert csp["style-src"] == ["'self'"]
    assert csp["object-src"] == ["'none'"]
    assert csp["base-uri"] == ["'self'"]
    assert csp["frame-ancestors"] == ["'none'"]
    assert csp["form-action"] == ["'self'"]
    assert csp["img-src"] == ["'self'", "data:"]
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    assert response.headers["Cross-Origin-Opener-Policy"] == "same-origin"


def test_staff_page_has_the_content_security_policy(admin_client):
    # given a signed-in admin
    # when they open a settings page
    response = admin_client.get("/settings/api-keys/")
    # then scripts and styles may come only from the site, and no other site may frame it
    assert response.status_code == 200
    assert_locked_down(response)


def test_kiosk_page_has_the_content_security_policy(client, queue_store):  # noqa: F811
    # given the public check-in page of a store, opened by a tablet nobody signed in on
    response = client.get(f"/queue/check-in/{queue_store.checkin_token}/")
    # then it carries the same policy
    assert response.status_code == 200
    assert_locked_down(response)


def test_api_docs_load_their_script_from_a_file(client):
    # given the API docs, whose start-up script would otherwise be inline
    page = client.get("/api/docs/")
    # then the page has no inline script or style, and its script is served on its own
    html = page.content.decode()
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>|<style", html)
    script = re.search(r'<script src="([^"]+\?[^"]*script=[^"]*)"', html).group(1)
    response = client.get(script.replace("&amp;", "&"))
    assert response.status_code == 200 and "SwaggerUIBundle" in response.content.decode()


# Inline code the policy refuses: a <script> without src, on*="" handlers, javascript: URLs,
# style="" attributes and <style> elements, and htmx attributes that evaluate code.
INLINE = re.compile(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+\s*=|javascript:|\sstyle\s*=|<style"
                    r"|\shx-on|\shx-vars|js:|hx-trigger=\"[^\"]*\[", re.IGNORECASE)


# Campaign emails are styled inline, as mail programs need (no stylesheet reaches them); in
# the campaign page's preview frame they have a policy of their own. No code in them either.
EMAIL_TEMPLATES = Path("campaigns") / "templates" / "campaigns" / "email"
INLINE_CODE = re.compile(r"<script|\son[a-z]+\s*=|javascript:", re.IGNORECASE)


def test_templates_have_no_inline_script_handler_or_style():
    # given every template of the project
    templates = [path for path in Path(settings.BASE_DIR).glob("**/templates/**/*.html")
                 if ".venv" not in path.parts]
    assert len(templates) > 40
    # then none holds code or styles inline (the browser would refuse them), emails no code
    base = Path(settings.BASE_DIR)
    emails = {path for path in templates if path.relative_to(base).is_relative_to(EMAIL_TEMPLATES)}
    found = [f"{path.relative_to(settings.BASE_DIR)}: {match.group(0).strip()}"
             for path in templates
             for match in (INLINE_CODE if path in emails else INLINE).finditer(path.read_text())]
    assert found == []
    assert emails, "the email templates are checked for code"


# --- https in production ------------------------------------------------------------------

def test_ssl_redirect_spares_the_health_check(client, settings):
    # given https is enforced (as with DEBUG=0)
    settings.SECURE_SSL_REDIRECT = True
    # when a load balancer asks /healthz over plain http
    health = client.get("/healthz")
    # then it answers, while a page moves to https
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    page = client.get("/login/")
    assert page.status_code == 301 and page.headers["Location"] == "https://testserver/login/"


def test_proxy_header_marks_https_and_gets_hsts(client, settings):
    # given a proxy that ends TLS and says so in X-Forwarded-Proto
    settings.SECURE_SSL_REDIRECT = True
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.SECURE_HSTS_SECONDS = 31536000
    settings.SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # when a request arrives through it over https
    response = client.get("/login/", headers={"X-Forwarded-Proto": "https"})
    # then the page is served, with HSTS
    assert response.status_code == 200
    assert response.headers["Strict-Transport-Security"] == "max-age=31536000; includeSubDomains"
    assert response.cookies["csrftoken"]["httponly"]


PRINT_SETTINGS = ("import django, json; django.setup(); from django.conf import settings as s; "
                  "print(json.dumps({n: getattr(s, n) for n in ('SECURE_SSL_REDIRECT', "
                  "'SECURE_PROXY_SSL_HEADER', 'SECURE_HSTS_SECONDS', 'SECURE_HSTS_PRELOAD', "
                  "'SESSION_COOKIE_AGE', 'SESSION_COOKIE_SECURE')}))")


def production(*args, **env):
    from cryptography.fernet import Fernet

    environment = {k: v for k, v in os.environ.items()
                   if not k.startswith(("SECURE_", "SESSION_", "DJANGO_ALLOW_ASYNC"))}
    environment |= {"DEBUG": "0", "SECRET_KEY": secrets.token_urlsafe(50),
                    "FIELD_ENCRYPTION_KEY": Fernet.generate_key().decode(), **env}
    return subprocess.run([sys.executable, *args], env=environment, capture_output=True, text=True,
                          cwd=settings.BASE_DIR, timeout=120)


def test_deploy_check_finds_nothing_to_fix():
    # given production settings: DEBUG=0 and real secrets, nothing else
    # when Django's deployment check runs
    result = production("manage.py", "check", "--deploy")
    # then it passes with no warning at all
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert "WARNINGS" not in output and "?: (security." not in output, output
    assert "no issues" in output


def test_production_defaults_and_their_overrides():
    import json

    # given DEBUG=0: https only, a year of HSTS, a 12-hour sign-in
    defaults = production("-c", PRINT_SETTINGS)
    assert json.loads(defaults.stdout) == {
        "SECURE_SSL_REDIRECT": True, "SECURE_PROXY_SSL_HEADER": None, "SECURE_HSTS_SECONDS": 31536000,
        "SECURE_HSTS_PRELOAD": True, "SESSION_COOKIE_AGE": 43200, "SESSION_COOKIE_SECURE": True}, \
        defaults.stderr
    # when the environment says otherwise, it wins
    chosen = production("-c", PRINT_SETTINGS, SECURE_SSL_REDIRECT="0", SECURE_HSTS_PRELOAD="0",
                        SECURE_PROXY_SSL_HEADER="HTTP_X_FORWARDED_PROTO", SECURE_HSTS_SECONDS="600",
                        SESSION_COOKIE_AGE="3600")
    assert json.loads(chosen.stdout) == {
        "SECURE_SSL_REDIRECT": False, "SECURE_PROXY_SSL_HEADER": ["HTTP_X_FORWARDED_PROTO", "https"],
        "SECURE_HSTS_SECONDS": 600, "SECURE_HSTS_PRELOAD": False, "SESSION_COOKIE_AGE": 3600,
        "SESSION_COOKIE_SECURE": True}, chosen.stderr


@pytest.mark.parametrize(("env", "message"), [
    ({"SECURE_PROXY_SSL_HEADER": "X-Forwarded-Proto"}, "e.g. HTTP_X_FORWARDED_PROTO"),
    ({"SESSION_COOKIE_AGE": "12h"}, "SESSION_COOKIE_AGE must be a whole number of seconds"),
    ({"SESSION_COOKIE_AGE": "0"}, "SESSION_COOKIE_AGE must be a whole number of seconds, at least 60"),
    ({"SECURE_HSTS_SECONDS": "-1"}, "SECURE_HSTS_SECONDS must be a whole number of seconds"),
])
def test_bad_security_settings_stop_the_start_and_say_which(env, message):
    # given a value the settings cannot use
    result = production("-c", PRINT_SETTINGS, **env)
    # then the process stops, naming the setting and what it wants
    assert result.returncode != 0
    assert message in result.stderr
