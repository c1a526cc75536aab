"""A sync started by a request: the worker's line for the run carries the run id and the
request's X-Request-ID, so an operator goes from the click to the run's log lines."""

import contextlib
import logging
import time
import uuid

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections
from django.urls import reverse

from integrations.models import SyncRun
from tests.stores.test_logs import Lines

HEADER = "ReceiptId,customerId,TransactionDate,Location,FirstName,ProductName,LineTotal,LineTax,PaymentMethod"


def _close_db_connections(**kwargs):
    connections.close_all()  # the worker thread's own connection, so the test database can be dropped


@pytest.fixture
def worker():
    """A real Celery worker (solo pool, in a thread) on the real broker, on a queue of its
    own that the sync is routed to: no other test's worker takes it, nor it theirs."""
    import integrations.tasks  # noqa: F401
    from config.celery import app

    queue = f"task-logs-{uuid.uuid4().hex[:8]}"
    routes = app.conf.task_routes
    app.conf.task_routes = {"integrations.tasks.connection_sync": {"queue": queue}}
    task_postrun.connect(_close_db_connections, weak=False)
    with contextlib.ExitStack() as stack:
        stack.callback(setattr, app.conf, "task_routes", routes)
        stack.callback(task_postrun.disconnect, _close_db_connections)
        stack.enter_context(start_worker(app, perform_ping_check=False, pool="solo", shutdown_timeout=30,
                                         queues=[queue]))
        yield


@pytest.fixture
def task_lines():
    handler = Lines()
    logger = logging.getLogger("loyalty.tasks")
    logger.addHandler(handler)
    yield handler
    logger.removeHandler(handler)


@pytest.mark.django_db(transaction=True)
def test_a_sync_started_by_a_request_logs_its_run_with_the_request_id(
        admin_client, folder_connection, write_report, worker, task_lines):
    # given a report in the folder and a worker on the real broker
    write_report("day1.csv", HEADER + "\nR1,C1,01/02/2026 10:15 AM,Denver,Ana,Gummies,10.00,0,Cash\n")
    # when an admin presses "Sync now"
    response = admin_client.post(reverse("connection_sync", args=[folder_connection.pk]))
    assert response.status_code == 302
    request_id = response["X-Request-ID"]
    run = SyncRun.objects.get(connection=folder_connection)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any(line.get("task") for line in task_lines.parsed()):
        time.sleep(0.1)
    # then the worker wrote the run's line, with the request's id and the run id
    [line] = [line for line in task_lines.parsed() if line.get("task")]
    assert line["task"] == "integrations.tasks.connection_sync"
    assert line["outcome"] == "success" and line["run_id"] == run.pk
    assert line["task_id"] and isinstance(line["duration_ms"], float)
    assert line["request_id"] == request_id
    run.refresh_from_db()
    assert run.state != SyncRun.State.QUEUED
