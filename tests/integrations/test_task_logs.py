"""A sync queued during a request: the worker's line for the run carries the run id and the
request's id, so an operator goes from the click to the run's log lines. (That a request's
X-Request-ID is the id current while it runs is tests/stores/test_logs.py's.)"""

import time
import uuid

import pytest
from django.conf import settings

from config.celery import app
from integrations.models import SyncRun
from integrations.services.sync import sync_run_create
from stores.requestid import request_id_bind, request_id_reset
from tests.celery_worker import celery_worker_process
from tests.stores.test_metrics_processes import json_lines

HEADER = "ReceiptId,customerId,TransactionDate,Location,FirstName,ProductName,LineTotal,LineTax,PaymentMethod"


@pytest.fixture
def worker(tmp_path, reports_root):
    """A real Celery worker process (JSON logs) on a queue of its own: no other test's
    worker takes its tasks, nor it theirs. Yields (queue, log file)."""
    queue = f"task-logs-{uuid.uuid4().hex[:8]}"
    log_path = tmp_path / "worker.log"
    with celery_worker_process(queue, log_path, LOG_FORMAT="json", REPORTS_ROOT=str(settings.REPORTS_ROOT)):
        yield queue, log_path


@pytest.mark.django_db(transaction=True)
def test_a_sync_queued_during_a_request_logs_its_run_with_the_request_id(
        folder_connection, write_report, worker):
    queue, log_path = worker
    # given a report in the folder, and a run queued while a request's id is current
    write_report("day1.csv", HEADER + "\nR1,C1,01/02/2026 10:15 AM,Denver,Ana,Gummies,10.00,0,Cash\n")
    run = sync_run_create(connection=folder_connection, trigger=SyncRun.Trigger.MANUAL)
    token = request_id_bind("sync-now-click")
    try:
        app.send_task("integrations.tasks.connection_sync", args=[run.pk], queue=queue)
    finally:
        request_id_reset(token)

    def task_lines():
        return [line for line in json_lines(log_path) if line.get("logger") == "loyalty.tasks"]

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not task_lines():
        time.sleep(0.2)
    # then the worker wrote the run's line, with the request's id and the run id
    lines = task_lines()
    assert len(lines) == 1, log_path.read_text()[-3000:]
    [line] = lines
    assert line["task"] == "integrations.tasks.connection_sync"
    assert line["outcome"] == "success" and line["run_id"] == run.pk
    assert line["task_id"] and isinstance(line["duration_ms"], float)
    assert line["request_id"] == "sync-now-click"
    run.refresh_from_db()
    assert run.state == SyncRun.State.SUCCEEDED
