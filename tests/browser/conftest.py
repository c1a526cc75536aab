import contextlib

import pytest
from celery.contrib.testing.worker import start_worker
from celery.signals import task_postrun
from django.db import connections


def _close_db_connections(**kwargs):
    # The worker thread opens its own connection to the test database; close it after
    # each task so nothing holds the database when the test run drops it.
    connections.close_all()


@pytest.fixture
def celery_worker_start():
    """Start an in-process Celery worker (solo pool, in a thread) on the real broker, when
    the test says so: a task queued before that waits in the broker, as in production."""
    import integrations.tasks  # noqa: F401  (registers the tasks before the worker starts)
    from config.celery import app

    app.control.purge()  # leftovers of an earlier, interrupted run are not ours
    stack = contextlib.ExitStack()

    def start():
        task_postrun.connect(_close_db_connections, weak=False)
        stack.callback(task_postrun.disconnect, _close_db_connections)
        return stack.enter_context(start_worker(app, perform_ping_check=False, pool="solo",
                                                shutdown_timeout=30))

    yield start
    stack.close()
