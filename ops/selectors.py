"""Reads of the heartbeats that Celery workers and beat write (ops/services.py)."""

import time

from django.core.cache import cache

ROLES = ("worker", "beat")


def heartbeat_key(role: str, host: str | None = None) -> str:
    """`health:<role>` is the last heartbeat of any process in that role (what /readyz asks);
    `health:<role>:<host>` is one machine's (what a container's own probe asks)."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    return f"health:{role}:{host}" if host else f"health:{role}"


def heartbeat_age(*, role: str, host: str | None = None) -> float | None:
    """Seconds since the last heartbeat of `role` (on `host`, if given); None if none is
    on record. Redis errors are the caller's to handle."""
    stamp = cache.get(heartbeat_key(role, host))
    return None if stamp is None else max(0.0, time.time() - float(stamp))
