"""Version stamps in the shared cache, for what processes keep in memory (a company's
loyalty rules, checked API keys): a change bumps the stamp and every process reloads.

A process reads a stamp from Redis at most once a second (RECHECK_SECONDS): the POS's
every call would otherwise pay a Redis round trip per stamp. So a change reaches other
processes within a second, and the process that made it at once."""

import time
import uuid

from django.core.cache import cache
from django.db import transaction

RECHECK_SECONDS = 1.0
_read: dict[str, tuple[str, float]] = {}  # key -> (stamp, monotonic time read)
_client = None


def version_get(key: str) -> str:
    held = _read.get(key)
    now = time.monotonic()
    if held is not None and now - held[1] < RECHECK_SECONDS:
        return held[0]
    stamp = cache.get(key) or "0"
    _read[key] = (stamp, now)
    return stamp


def version_bump(key: str) -> None:
    """Now, and again once the change commits, so a process that reloaded in between does
    not keep what the transaction replaced."""

    def bump():
        stamp = uuid.uuid4().hex
        cache.set(key, stamp, None)
        _read[key] = (stamp, time.monotonic())

    bump()
    transaction.on_commit(bump)


def redis_client():
    """The shared cache's Redis client, held for the process: Django builds a new client
    object on every call, which costs more than the round trip on a hot path."""
    global _client
    if _client is None:
        _client = cache._cache.get_client(write=True)
    return _client
