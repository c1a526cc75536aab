"""Heartbeats: Celery workers and beat write one every HEALTH_HEARTBEAT_SECONDS from their
own loops (ops/worker.py, ops/beat.py), in the shared cache (Redis)."""

import time

from django.core.cache import cache

from .selectors import heartbeat_key

# A heartbeat is kept a day, so a stale one still says how long ago it was, rather than
# vanishing into "none on record" after the freshness window.
KEEP_SECONDS = 24 * 3600


def heartbeat_record(*, role: str, host: str) -> float:
    """Records that a `role` process on `host` is alive now; returns the time written."""
    now = time.time()
    cache.set_many({heartbeat_key(role): now, heartbeat_key(role, host): now}, timeout=KEEP_SECONDS)
    return now
