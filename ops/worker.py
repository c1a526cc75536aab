"""The Celery worker's heartbeat. A consumer bootstep (config/celery.py adds it) writes it
on the consumer's own timer: it stops when the worker stops consuming (broker lost, event
loop stuck), not only when the process dies. Imported before Django is set up: nothing
here touches Django at import time."""

import logging
import socket

from celery import bootsteps

logger = logging.getLogger(__name__)


def worker_heartbeat() -> None:
    from .services import heartbeat_record

    try:
        heartbeat_record(role="worker", host=socket.gethostname())
    except Exception:  # a heartbeat must never take the consumer down; a missed one is the signal
        logger.warning("Could not record the worker heartbeat", exc_info=True)


class WorkerHeartbeat(bootsteps.StartStopStep):
    requires = ("celery.worker.consumer.tasks:Tasks",)  # once the worker consumes

    def __init__(self, c, **kwargs):
        super().__init__(c, **kwargs)
        self.tref = None

    def start(self, c):
        from django.conf import settings

        worker_heartbeat()
        self.tref = c.timer.call_repeatedly(settings.HEALTH_HEARTBEAT_SECONDS, worker_heartbeat)

    def stop(self, c):
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None

    shutdown = stop
