"""One log line and one latency sample per Celery task run, and the request id of the
request that started a task carried into the task's log lines.

A task published while a request runs gets the request's id in a message header
(before_task_publish, in the web process); the worker puts it back in the logging context
for the run (task_prerun) and writes the run's line when it ends (task_postrun, whatever
the outcome: success, failure, retry)."""

import logging
import time

from celery.signals import before_task_publish, task_postrun, task_prerun

from . import metrics
from .requestid import request_id_bind, request_id_current, request_id_reset

log = logging.getLogger("loyalty.tasks")

HEADER = "x_request_id"
# The sync task's run id goes on its line (connection_sync(run_id)), to find the run's page.
RUN_ID_TASKS = {"integrations.tasks.connection_sync"}

_OUTCOMES = {"SUCCESS": "success", "FAILURE": "failure", "RETRY": "retry"}
_running: dict[str, tuple[float, object]] = {}


@before_task_publish.connect(dispatch_uid="stores.taskruns.publish")
def request_id_to_headers(headers=None, **kwargs):
    request_id = request_id_current()
    if request_id and headers is not None:
        headers.setdefault(HEADER, request_id)


@task_prerun.connect(dispatch_uid="stores.taskruns.prerun")
def task_started(task_id=None, task=None, **kwargs):
    # An eager task runs inside the request: the id is already current.
    given = getattr(task.request, HEADER, None) or request_id_current()
    _running[task_id] = (time.perf_counter(), request_id_bind(given))


@task_postrun.connect(dispatch_uid="stores.taskruns.postrun")
def task_finished(task_id=None, task=None, args=None, kwargs=None, state=None, **rest):
    started, token = _running.pop(task_id, (None, None))
    if started is None:
        return
    try:
        duration = time.perf_counter() - started
        outcome = _OUTCOMES.get(state, (state or "unknown").lower())
        metrics.TASK_SECONDS.labels(task.name, outcome).observe(duration)
        fields = {"task": task.name, "task_id": task_id, "duration_ms": round(duration * 1000, 2),
                  "outcome": outcome}
        if task.name in RUN_ID_TASKS:
            fields["run_id"] = (kwargs or {}).get("run_id", (args or [None])[0])
        run = f" run {fields['run_id']}" if "run_id" in fields else ""
        log.info("task %s %s %.1fms%s", task.name, outcome, fields["duration_ms"], run, extra=fields)
    finally:
        request_id_reset(token)
