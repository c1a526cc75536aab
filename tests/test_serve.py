"""`python -m config.launcher serve`: the production node, started for real (gunicorn,
collectstatic, WhiteNoise), and its refusals of development secrets."""

import os
import re
import secrets
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
from cryptography.fernet import Fernet
from django.conf import settings

from config.launcher import MAX_DEFAULT_WEB_WORKERS, Refused, cores, web_command
from config.secrets_check import DEV_FIELD_ENCRYPTION_KEY, DEV_SECRET_KEY
from tests.childdb import database_url

# What a test sets itself, whatever the shell running the suite has.
OWN = ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "FIELD_ENCRYPTION_KEYS", "DEBUG", "HOST", "PORT",
       "STATIC_ROOT", "WEB_CONCURRENCY", "WEB_THREADS", "SERVE_MIGRATE", "SERVE_DEMO",
       "FORWARDED_ALLOW_IPS", "DATABASE_URL", "REDIS_URL", "VAR_DIR")




def fernet_key() -> str:
    return Fernet.generate_key().decode()


def production_env(**env) -> dict:
    environment = {k: v for k, v in os.environ.items()
                   if k not in OWN and not k.startswith(("SECURE_", "SESSION_"))}
    return environment | {"SECRET_KEY": secrets.token_urlsafe(50), "FIELD_ENCRYPTION_KEYS": fernet_key(),
                          "DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                          # plain http on the loopback; behind the proxy it stays on
                          "SECURE_SSL_REDIRECT": "0", **env}


def serve(*args: str, unset: tuple[str, ...] = (), **env) -> subprocess.CompletedProcess:
    """`serve ARGS` to its end, with real secrets but for `env` and the variables in `unset`."""
    environment = {k: v for k, v in production_env().items() if k not in unset} | env
    return subprocess.run([sys.executable, "-m", "config.launcher", "serve", *args], cwd=settings.BASE_DIR,
                          env=environment, capture_output=True, text=True, timeout=60)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def web_node(django_db_setup, tmp_path):
    """`serve web` on a free port, with its own STATIC_ROOT; yields (base URL, its output file)."""
    port = free_port()
    output = tmp_path / "serve.log"
    env = production_env(PORT=str(port), STATIC_ROOT=str(tmp_path / "static"), WEB_CONCURRENCY="2")
    with output.open("w") as out:
        node = subprocess.Popen([sys.executable, "-m", "config.launcher", "serve", "web"],
                                cwd=settings.BASE_DIR, env=env, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 90
        while True:
            assert node.poll() is None, f"serve web exited with {node.returncode}:\n{output.read_text()}"
            assert time.monotonic() < deadline, f"serve web did not answer:\n{output.read_text()}"
            try:
                requests.get(f"{base}/healthz", timeout=5)
                break
            except requests.RequestException:  # not listening yet, or its workers still booting
                time.sleep(0.2)
        yield base, output
    finally:
        os.killpg(node.pid, signal.SIGTERM)
        try:
            node.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait()


def test_serve_web_runs_gunicorn_with_hashed_compressed_static_files_and_debug_off(web_node):
    base, output = web_node
    # given a web node started with real secrets
    # when the login page is asked for
    login = requests.get(f"{base}/login/", timeout=10)
    # then gunicorn answers it, not Django's development server
    assert login.status_code == 200 and login.headers["Server"] == "gunicorn"
    # and the page links its stylesheet under a content-hashed name
    stylesheet = re.search(r'href="(/static/css/app\.[0-9a-f]{12}\.css)"', login.text)
    assert stylesheet, login.text

    # when that file is asked for by a browser that takes gzip
    css = requests.get(base + stylesheet.group(1), headers={"Accept-Encoding": "gzip, br"}, timeout=10)
    # then it comes compressed, cached for as long as browsers keep anything
    assert css.status_code == 200 and css.headers["Content-Encoding"] in ("gzip", "br")
    assert "immutable" in css.headers["Cache-Control"] and "max-age=315360000" in css.headers["Cache-Control"]
    assert ".card" in css.text
    # and by one that does not, as it is
    plain = requests.get(base + stylesheet.group(1), headers={"Accept-Encoding": "identity"}, timeout=10)
    assert "Content-Encoding" not in plain.headers and plain.text == css.text

    # when an address that does not exist is asked for
    missing = requests.get(f"{base}/no-such-page/", timeout=10)
    # then it is the site's own 404 page: DEBUG is off, nothing of Django's debug page
    assert missing.status_code == 404 and "Not found" in missing.text
    assert "URLconf" not in missing.text and "DEBUG = True" not in missing.text

    # and the node's output is gunicorn's, with an access log line per request
    log = output.read_text()
    assert "Starting gunicorn" in log and "development server" not in log.lower()
    assert '"GET /login/ HTTP/1.1" 200' in log
    assert "static files copied" in log  # collectstatic ran before gunicorn


@pytest.mark.parametrize("secret", [None, DEV_SECRET_KEY, "short"])
def test_serve_refuses_a_missing_development_or_weak_secret_key(secret, tmp_path):
    # given no SECRET_KEY, the development one, or one too short; and no database URL,
    # so the single-node role would otherwise start an embedded PostgreSQL under VAR_DIR
    env = {"VAR_DIR": str(tmp_path), "DATABASE_URL": "", "REDIS_URL": ""}
    if secret is None:
        result = serve("all", unset=("SECRET_KEY",), **env)
    else:
        result = serve("all", SECRET_KEY=secret, **env)
    # then it stops with exit code 2, naming the variable and how to make one
    assert result.returncode == 2, result.stdout + result.stderr
    assert "SECRET_KEY" in result.stderr and "secrets.token_urlsafe(50)" in result.stderr
    # having started nothing
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("variable", "value"), [
    ("FIELD_ENCRYPTION_KEYS", DEV_FIELD_ENCRYPTION_KEY),
    ("FIELD_ENCRYPTION_KEYS", "{real},{dev}"),  # the development key anywhere in the list
    ("FIELD_ENCRYPTION_KEY", DEV_FIELD_ENCRYPTION_KEY),  # the one-key form
])
def test_serve_refuses_the_development_encryption_key(variable, value):
    value = value.format(real=fernet_key(), dev=DEV_FIELD_ENCRYPTION_KEY)
    # given the development Fernet key, in either variable
    result = serve("web", unset=("FIELD_ENCRYPTION_KEYS",), **{variable: value})
    # then serve stops with exit code 2, naming the variable
    assert result.returncode == 2, result.stdout + result.stderr
    assert f"{variable} holds the development key" in result.stderr


def test_serve_refuses_missing_or_broken_encryption_keys():
    result = serve("web", unset=("FIELD_ENCRYPTION_KEYS",))
    assert result.returncode == 2 and "FIELD_ENCRYPTION_KEYS is not set" in result.stderr
    result = serve("web", FIELD_ENCRYPTION_KEYS=f"{fernet_key()},not-a-key")
    assert result.returncode == 2 and "key 2 of 2 is not a Fernet key" in result.stderr
    assert "not-a-key" not in result.stderr


def test_a_single_role_needs_the_shared_servers_and_sane_numbers():
    # given real secrets but no REDIS_URL: a worker alone cannot share an embedded one
    result = serve("worker", REDIS_URL="")
    assert result.returncode == 2 and "set REDIS_URL" in result.stderr
    # given a worker count that is not one
    result = serve("web", WEB_CONCURRENCY="lots")
    assert result.returncode == 2 and "WEB_CONCURRENCY must be a whole number" in result.stderr


def test_web_command_takes_its_numbers_from_the_environment():
    default = web_command({})
    assert option(default, "--workers") == str(min(2 * cores() + 1, MAX_DEFAULT_WEB_WORKERS))
    assert option(default, "--bind") == "127.0.0.1:8000"
    assert option(default, "--forwarded-allow-ips") == "127.0.0.1,::1"
    chosen = web_command({"WEB_CONCURRENCY": "3", "WEB_THREADS": "4", "HOST": "0.0.0.0", "PORT": "9000",
                          "FORWARDED_ALLOW_IPS": "10.0.0.5", "WEB_GRACEFUL_TIMEOUT": "45"})
    assert [option(chosen, name) for name in ("--workers", "--threads", "--bind", "--forwarded-allow-ips",
                                              "--graceful-timeout")] == ["3", "4", "0.0.0.0:9000",
                                                                         "10.0.0.5", "45"]
    with pytest.raises(Refused, match="WEB_THREADS"):
        web_command({"WEB_THREADS": "0"})


def option(command: list[str], name: str) -> str:
    return command[command.index(name) + 1]

