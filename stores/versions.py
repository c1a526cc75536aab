"""Version stamps in the shared cache, for what processes keep in memory (a company's
loyalty rules, checked API keys): a change bumps the stamp and every process reloads.

A process reads a stamp from Redis at most once a second (RECHECK_SECONDS): the POS's
every call would otherwise pay a Redis round trip per stamp. So a change reaches other
processes within a second, and the process that made it at once.

With Redis away a process keeps the stamps it last read (what it holds may be stale until
Redis answers again); a change it makes itself still applies in it at once, and its stamp
is sent on the first read that reaches Redis again, so the other processes follow then."""

import time
import uuid

from django.core.cache import cache
from django.db import transaction

from .redis_guard import REDIS_ERRORS, redis_failed, redis_up

RECHECK_SECONDS = 1.0
_read: dict[str, tuple[str, float]] = {}  # key -> (stamp, monotonic time read)
_client = None
# Held for a stamp never read while Redis was away: what is built under it is rebuilt
# once Redis answers with the real one.
UNREAD = "unread"
_unsent: dict[str, str] = {}  # key -> stamp a bump could not write while Redis was away


def version_get(key: str) -> str:
    held = _read.get(key)
    now = time.monotonic()
    if held is not None and now - held[1] < RECHECK_SECONDS:
        return held[0]
    stamp = held[0] if held is not None else UNREAD
    if redis_up():
        try:
            if _unsent:
                _bumps_resend()
            stamp = cache.get(key) or "0"
        except REDIS_ERRORS as exc:
            redis_failed("version stamps", exc)
    _read[key] = (stamp, now)
    return stamp


def version_bump(key: str) -> None:
    """Now, and again once the change commits, so a process that reloaded in between does
    not keep what the transaction replaced."""

    def bump():
        stamp = uuid.uuid4().hex
        _read[key] = (stamp, time.monotonic())  # here at once, whatever Redis does
        if redis_up():
            try:
                cache.set(key, stamp, None)
                _unsent.pop(key, None)
                return
            except REDIS_ERRORS as exc:
                redis_failed("version stamps", exc)
        _unsent[key] = stamp

    bump()
    transaction.on_commit(bump)


def _bumps_resend() -> None:
    sent = dict(_unsent)
    cache.set_many(sent, None)
    for key, stamp in sent.items():
        if _unsent.get(key) == stamp:
            del _unsent[key]


def redis_client():
    """The shared cache's Redis client, held for the process: Django builds a new client
    object on every call, which costs more than the round trip on a hot path."""
    global _client
    if _client is None:
        _client = cache._cache.get_client(write=True)
    return _client
