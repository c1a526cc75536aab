"""A sync started by a request: the worker's line for the run carries the run id and the
request's X-Request-ID, so an operator goes from the click to the run's log lines."""

import os
import subprocess
import sys
import time
import uuid

import pytest
from django.conf import settings
from django.urls import reverse

from config.celery import app
from integrations.models import SyncRun
from tests.stores.test_metrics_processes import database_url, json_lines

HEADER = "ReceiptId,customerId,TransactionDate,Location,FirstName,ProductName,LineTotal,LineTax,PaymentMethod"


@pytest.fixture
def worker(tmp_path, reports_root):
    """A real Celery worker process (JSON logs) on a queue of its own that the sync is routed
    to: no other test's worker takes it, nor it theirs. Yields its log file."""
    queue = f"task-logs-{uuid.uuid4().hex[:8]}"
    routes = app.conf.task_routes
    app.conf.task_routes = {"integrations.tasks.connection_sync": {"queue": queue}}
    app.close()  # a fresh pool of broker connections, from the settings of now
    # The worker listens where this process's app publishes, whatever that is.
    env = os.environ | {"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                        "CELERY_BROKER_URL": app.conf.broker_url,
                        "PYTHONPATH": str(settings.BASE_DIR), "LOG_FORMAT": "json",
                        "REPORTS_ROOT": str(settings.REPORTS_ROOT)}
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo",
                                 "-Q", queue, "-l", "info", "--without-gossip", "--without-mingle",
                                 "--without-heartbeat"],
                                cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield log_path
    finally:
        app.conf.task_routes = routes
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.mark.django_db(transaction=True)
def test_a_sync_started_by_a_request_logs_its_run_with_the_request_id(
        admin_client, folder_connection, write_report, worker):
    # given a report in the folder and a worker on the real broker
    write_report("day1.csv", HEADER + "\nR1,C1,01/02/2026 10:15 AM,Denver,Ana,Gummies,10.00,0,Cash\n")
    # when an admin presses "Sync now"
    response = admin_client.post(reverse("connection_sync", args=[folder_connection.pk]))
    assert response.status_code == 302
    request_id = response["X-Request-ID"]
    run = SyncRun.objects.get(connection=folder_connection)

    def task_lines():
        return [line for line in json_lines(worker) if line.get("logger") == "loyalty.tasks"]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not task_lines():
        time.sleep(0.2)
    # then the worker wrote the run's line, with the request's id and the run id
    [line] = task_lines() or [worker.read_text()[-3000:]]
    assert line["task"] == "integrations.tasks.connection_sync"
    assert line["outcome"] == "success" and line["run_id"] == run.pk
    assert line["task_id"] and isinstance(line["duration_ms"], float)
    assert line["request_id"] == request_id
    run.refresh_from_db()
    assert run.state == SyncRun.State.SUCCEEDED
