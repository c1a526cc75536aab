"""/healthz, /readyz and `manage.py health`, against real parts: PostgreSQL, Redis, a Celery
worker and beat in their own processes, a closed port, and a port that accepts and never
answers."""

import copy
import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.core.cache import cache
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.db.migrations.recorder import MigrationRecorder

from ops.checks import CHECKS, migration_graph
from ops.selectors import ROLES, heartbeat_key
from tests.childdb import database_url

ROOT = Path(__file__).resolve().parents[2]
POD = "10.0.3.7:8000"  # a load balancer's probe names the pod's address, not the site's
HEARTBEAT_SECONDS, MAX_AGE = 1, 3  # the child processes' heartbeat, so the test is quick


@pytest.fixture
def no_heartbeats():
    keys = [heartbeat_key(role, host) for role in ROLES for host in (None, socket.gethostname())]
    cache.delete_many(keys)
    yield
    cache.delete_many(keys)


@pytest.fixture
def probe_settings(settings):
    """Production's: https enforced, only the site's own name allowed."""
    settings.SECURE_SSL_REDIRECT = True
    settings.ALLOWED_HOSTS = ["loyalty.example.com"]
    return settings


def get_readyz(client, query=""):
    started = time.perf_counter()
    response = client.get(f"/readyz{query}", HTTP_HOST=POD)
    return response.status_code, response.json(), time.perf_counter() - started


def child_env(settings) -> dict:
    return os.environ | {"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                         "HEALTH_HEARTBEAT_SECONDS": str(HEARTBEAT_SECONDS),
                         "HEALTH_HEARTBEAT_MAX_AGE": str(MAX_AGE)}


@contextmanager
def running(commands: dict, env: dict):
    procs = {name: subprocess.Popen(command, cwd=ROOT, env=env, start_new_session=True,
                                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
             for name, command in commands.items()}
    try:
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(30)


def manage_health(roles, env: dict) -> dict[str, subprocess.CompletedProcess]:
    """`manage.py health <role>` for each role, as an exec probe runs it (at once: each
    process spends seconds starting Django)."""
    procs = {role: subprocess.Popen([sys.executable, "manage.py", "health", role], cwd=ROOT, env=env,
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for role in roles}
    results = {}
    for role, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=60)
        results[role] = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    return results


def wait_for(condition, seconds: float):
    deadline = time.monotonic() + seconds
    while True:
        value = condition()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(0.25)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def redis_at(settings, url):
    """Cache and broker both at `url`, as when REDIS_URL points there."""
    caches = copy.deepcopy(settings.CACHES)
    caches["default"]["LOCATION"] = url
    settings.CACHES = caches
    settings.CELERY_BROKER_URL = url


def test_healthz_answers_a_plain_http_probe_naming_the_pod_without_the_database(client, probe_settings):
    # given production's https redirect and host list (and no database access in this test)
    # when a load balancer probes over plain http with the pod's address as Host
    health = client.get("/healthz", HTTP_HOST=POD)

    # then the process answers; a page asked the same way is refused
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    assert "no-store" in health.headers["Cache-Control"]
    assert client.get("/login/", HTTP_HOST=POD).status_code == 400


@pytest.mark.django_db(transaction=True)  # beat writes its schedule in the test database
def test_readyz_with_a_live_worker_and_beat_is_ok_until_the_worker_dies(client, settings, no_heartbeats,
                                                                        tmp_path):
    # given no Celery worker or beat has ever beaten
    status, answer, _ = get_readyz(client)
    assert status == 503 and answer["status"] == "failing"
    assert answer["checks"]["worker"] == {"ok": False, "ms": answer["checks"]["worker"]["ms"],
                                          "detail": "no heartbeat on record"}
    assert answer["checks"]["beat"]["detail"] == "no heartbeat on record"
    assert all(answer["checks"][name]["ok"] for name in ("database", "cache", "broker", "migrations"))

    # when a worker (on a queue of its own: it takes nobody's tasks) and beat start
    env = child_env(settings)
    celery = [sys.executable, "-m", "celery", "-A", "config"]
    queue = f"health-{os.getpid()}-{time.monotonic_ns()}"
    commands = {"worker": [*celery, "worker", "-P", "solo", "-Q", queue, "-n", f"{queue}@%h",
                           "--without-mingle", "--without-gossip", "-l", "warning"],
                "beat": [*celery, "beat", "-l", "warning", "--schedule", str(tmp_path / "schedule")]}
    with running(commands, env) as procs:
        ready = wait_for(lambda: get_readyz(client)[0] == 200, seconds=90)
        not_ok = {name: check for name, check in get_readyz(client)[1]["checks"].items() if not check["ok"]}
        assert ready, (not_ok, {name: proc.poll() for name, proc in procs.items()})

        # then every check passes, each with its time, the heartbeats with their age
        status, answer, _ = get_readyz(client)
        assert (status, answer["status"], set(answer["checks"])) == (200, "ok", set(CHECKS))
        for name, check in answer["checks"].items():
            assert check["ok"] is True and isinstance(check["ms"], float), name
        assert re.fullmatch(r"last heartbeat \d+ s ago", answer["checks"]["worker"]["detail"])
        assert re.fullmatch(r"last heartbeat \d+ s ago", answer["checks"]["beat"]["detail"])
        # and the containers' exec probes say so too
        for role, probe in manage_health(("worker", "beat"), env).items():
            assert probe.returncode == 0, probe.stderr
            assert re.search(rf"{role}.*: last heartbeat \d+ s ago", probe.stdout)

        # when the worker is killed and its heartbeat grows older than the window
        procs["worker"].send_signal(signal.SIGKILL)
        procs["worker"].wait(10)
        settings.HEALTH_HEARTBEAT_MAX_AGE = MAX_AGE
        failing = wait_for(lambda: get_readyz(client)[0] == 503, seconds=MAX_AGE + 10)

        # then /readyz fails on the worker alone, saying how long ago it last beat
        status, answer, _ = get_readyz(client)
        assert failing and answer["status"] == "failing"
        assert answer["checks"]["worker"]["ok"] is False
        assert re.fullmatch(rf"last heartbeat \d+ s ago, more than {MAX_AGE} s",
                            answer["checks"]["worker"]["detail"])
        assert [name for name, check in answer["checks"].items() if not check["ok"]] == ["worker"]
        # and the worker container's probe fails while beat's still passes
        probes = manage_health(("worker", "beat"), env)
        assert probes["worker"].returncode == 1 and f"more than {MAX_AGE} s" in probes["worker"].stderr
        assert probes["beat"].returncode == 0, probes["beat"].stderr


def test_readyz_fails_the_cache_and_broker_when_redis_is_a_closed_port(client, db, settings, probe_settings):
    # given REDIS_URL at a port nothing listens on
    port = free_port()
    redis_at(settings, f"redis://:secret-password@127.0.0.1:{port}/0")

    # when a load balancer probes
    status, answer, _ = get_readyz(client)

    # then it fails on everything Redis holds, each check with its time
    assert status == 503 and answer["status"] == "failing"
    failed = {name for name, check in answer["checks"].items() if not check["ok"]}
    assert failed == {"cache", "broker", "worker", "beat"}
    assert all(isinstance(check["ms"], float) for check in answer["checks"].values())
    assert answer["checks"]["cache"]["detail"] == "cannot reach the cache (ConnectionError)"
    # and names no address or password
    body = client.get("/readyz", HTTP_HOST=POD).content.decode()
    assert str(port) not in body and "secret" not in body and "127.0.0.1" not in body


def test_readyz_answers_within_2_5_s_when_redis_accepts_and_never_answers(client, db, settings):
    # given REDIS_URL at a port that accepts connections and then says nothing
    with socket.socket() as blackhole:
        blackhole.bind(("127.0.0.1", 0))
        blackhole.listen(64)
        redis_at(settings, f"redis://127.0.0.1:{blackhole.getsockname()[1]}/0")

        # when a load balancer probes
        status, answer, seconds = get_readyz(client)

    # then it answers in time, failing what waits on Redis, each check with its time
    assert seconds < 2.5
    assert status == 503
    assert {name for name, check in answer["checks"].items() if not check["ok"]} == {
        "cache", "broker", "worker", "beat"}
    # (the cache's own REDIS_SOCKET_TIMEOUT ends it first; the 2 s cut-off is the backstop)
    assert answer["checks"]["cache"]["detail"] in {"cannot reach the cache (TimeoutError)",
                                                   "no answer within 2 s"}
    assert answer["checks"]["cache"]["ms"] < 2500
    # (the broker's client gives up a little earlier, with its own reason, unless starved)
    assert answer["checks"]["broker"]["detail"] in {"Unable to connect to Redis: Timeout.",
                                                    "no answer within 2 s"}
    assert answer["checks"]["database"]["ok"] and answer["checks"]["migrations"]["ok"]


@pytest.mark.django_db(transaction=True)  # the check reads the migrations table on its own connection
def test_readyz_fails_while_a_migration_is_not_applied(client, probe_settings):
    # given the database lacks the latest waiting-room migration (as before `migrate` runs)
    app, name = migration_graph().leaf_nodes("waitingroom")[0]
    recorder = MigrationRecorder(connection)
    recorder.record_unapplied(app, name)
    try:
        # when the web node is probed (its own dependencies only)
        status, answer, _ = get_readyz(client, "?skip=worker,beat")
    finally:
        recorder.record_applied(app, name)

    # then it is not ready, for that reason alone
    assert status == 503
    assert answer["checks"]["migrations"] == {"ok": False, "ms": answer["checks"]["migrations"]["ms"],
                                              "detail": f"1 not applied: {app}.{name}"}
    assert all(check["ok"] for key, check in answer["checks"].items() if key != "migrations")
    # and once it is applied, ready
    assert get_readyz(client, "?skip=worker,beat")[0] == 200


def test_readyz_skip_leaves_the_celery_checks_out(client, db, probe_settings, no_heartbeats):
    # given no worker or beat heartbeat
    # when a web node's own readiness is asked
    status, answer, _ = get_readyz(client, "?skip=worker,beat")
    # then it is ready on its own dependencies
    assert (status, answer["status"]) == (200, "ok")
    assert set(answer["checks"]) == {"database", "cache", "broker", "migrations"}


def test_health_web_asks_the_local_server(live_server, monkeypatch, capsys):
    # given the web server listening on $PORT
    monkeypatch.setenv("PORT", str(live_server.thread.port))
    # when the container's probe runs
    call_command("health", "web")
    # then it passes
    assert capsys.readouterr().out.strip() == 'web: {"status": "ok"}'

    # and against a port nothing answers on, it fails with exit status 1
    with pytest.raises(CommandError) as failed:
        call_command("health", "web", "--url", f"http://127.0.0.1:{free_port()}/healthz")
    assert failed.value.returncode == 1 and "did not answer" in str(failed.value)


def test_broker_check_speaks_to_rabbitmq_when_it_is_the_broker(settings):
    """With CELERY_BROKER_URL=amqp://…, the broker check opens an AMQP connection (a Redis
    PING there would fail): ok against the machine's RabbitMQ, failing on a closed port."""
    import socket

    from ops.checks import broker_check, checks_run

    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
    except OSError:
        pytest.skip("no RabbitMQ on 127.0.0.1:5672")
    settings.CELERY_BROKER_URL = "amqp://guest:guest@127.0.0.1:5672//"
    assert checks_run({"broker": broker_check()})["broker"]["ok"] is True
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = sock.getsockname()[1]
    settings.CELERY_BROKER_URL = f"amqp://guest:secret@127.0.0.1:{closed}//"
    outcome = checks_run({"broker": broker_check()})["broker"]
    assert outcome["ok"] is False
    assert "secret" not in outcome["detail"] and str(closed) not in outcome["detail"]
