"""Celery beat's heartbeat, written from the scheduler's own loop: a beat whose loop stalls
stops beating, not only one whose process died. CELERY_BEAT_SCHEDULER names this class."""

import logging
import socket
import time

from django.conf import settings
from django_celery_beat.schedulers import DatabaseScheduler

from .services import heartbeat_record

logger = logging.getLogger(__name__)


class HeartbeatDatabaseScheduler(DatabaseScheduler):
    """django-celery-beat's DatabaseScheduler, recording a heartbeat at most every
    HEALTH_HEARTBEAT_SECONDS and waking up at least that often to do so."""

    _heartbeat_at = None  # time.monotonic() of the last heartbeat written

    def tick(self, *args, **kwargs):
        interval = super().tick(*args, **kwargs)
        every = settings.HEALTH_HEARTBEAT_SECONDS
        now = time.monotonic()
        if self._heartbeat_at is None or now - self._heartbeat_at >= every:
            try:
                heartbeat_record(role="beat", host=socket.gethostname())
                self._heartbeat_at = now
            except Exception:  # the schedule goes on; the missing heartbeat is the signal
                logger.warning("Could not record the beat heartbeat", exc_info=True)
        return min(interval, every)
