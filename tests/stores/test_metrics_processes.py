"""Under gunicorn with several workers and a Celery prefork worker, /metrics adds up every
process's numbers (PROMETHEUS_MULTIPROC_DIR), and the processes write JSON log lines;
a task published while a request id is current logs that id in the worker."""

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import pytest
import requests
from django.conf import settings
from prometheus_client.parser import text_string_to_metric_families

from config.celery import app
from stores.requestid import request_id_bind, request_id_reset
from tests.childdb import database_url

TOKEN = "scrape-token"
TASK = "loyalty.tasks.idempotency_keys_expire"




def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> dict[tuple, float]:
    response = requests.get(f"http://127.0.0.1:{port}/metrics",
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert response.status_code == 200, response.text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(response.text) for s in family.samples}


def json_lines(path) -> list[dict]:
    lines = []
    for text in path.read_text().splitlines():
        if text.startswith("{"):
            lines.append(json.loads(text))
    return lines


@pytest.fixture
def processes(transactional_db, tmp_path):
    """Start gunicorn (2 workers) and a Celery prefork worker (2 processes, on a queue of
    its own) sharing one PROMETHEUS_MULTIPROC_DIR; stop them at the end."""
    started: list[subprocess.Popen] = []
    env = os.environ | {"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                        "PYTHONPATH": str(settings.BASE_DIR), "LOG_FORMAT": "json",
                        "METRICS_TOKEN": TOKEN, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}

    def start(command, log_name):
        log = (tmp_path / log_name).open("w")
        proc = subprocess.Popen(command, cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
        started.append(proc)
        return tmp_path / log_name

    yield start
    for proc in started:
        proc.terminate()
    for proc in started:
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_web_and_worker_metrics_add_up_across_processes(processes):
    port = free_port()
    queue = f"metrics-test-{uuid.uuid4().hex[:8]}"
    web_log = processes([sys.executable, "-m", "gunicorn", "config.wsgi", "-w", "2",
                         "-b", f"127.0.0.1:{port}"], "web.log")
    worker_log = processes([sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "prefork",
                            "-c", "2", "-Q", queue, "-l", "info", "--without-gossip", "--without-mingle",
                            "--without-heartbeat"], "worker.log")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            requests.get(f"http://127.0.0.1:{port}/metrics", timeout=10)
            break
        except requests.RequestException:  # not listening yet, or the workers still booting
            time.sleep(0.2)

    # when 30 requests reach the two web workers, each on its own connection
    for _ in range(30):
        assert requests.get(f"http://127.0.0.1:{port}/login/", timeout=10).status_code == 200
    # and a task is published while a request id is current
    token = request_id_bind("trace-from-the-web")
    try:
        app.send_task(TASK, queue=queue)
    finally:
        request_id_reset(token)

    # then whichever worker answers, the scrape counts all 30 requests
    logins = ("loyalty_http_request_duration_seconds_count",
              (("method", "GET"), ("route", "login"), ("status", "200")))
    for _ in range(4):
        assert scrape(port)[logins] == 30
    # and the Celery worker's run shows up in the web server's scrape
    task = ("loyalty_task_duration_seconds_count", (("outcome", "success"), ("task", TASK)))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and task not in scrape(port):
        time.sleep(0.3)
    assert scrape(port).get(task) == 1, worker_log.read_text()[-3000:]

    # and every request wrote one JSON access line; the task's line has the publisher's id
    access = [line for line in json_lines(web_log) if line["logger"] == "loyalty.access"
              and line["path"] == "/login/"]
    assert len(access) == 30 and len({line["request_id"] for line in access}) == 30
    [run] = [line for line in json_lines(worker_log) if line.get("task") == TASK]
    assert run["outcome"] == "success" and run["request_id"] == "trace-from-the-web"
