"""Redis (the shared cache and the Celery broker) away: the POS keeps answering.

Every POS call touches Redis a little (version stamps, queued tasks). When it does not
answer, the client gives up after REDIS_SOCKET_TIMEOUT, and for the next
REDIS_BACKOFF_SECONDS nobody in this process tries again: requests stay as fast as without
Redis, and the warning is logged once per window, not once per request. Callers fall back
on what they hold (the stamp last read) or on the database (prompt firings, webhook
deliveries that stay pending for the sweep)."""

import logging
import time

from django.conf import settings
from kombu.exceptions import OperationalError
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

# What a Redis outage raises: the cache's client, the broker's (kombu), the socket.
REDIS_ERRORS = (RedisError, OperationalError, OSError)

_down_until = 0.0


def redis_up() -> bool:
    """False while a failure is recent: skip Redis and fall back."""
    return time.monotonic() >= _down_until


def redis_failed(what: str, exc: BaseException) -> None:
    """Record a failure: Redis is not tried again in this process for the back-off."""
    global _down_until
    now = time.monotonic()
    backoff = settings.REDIS_BACKOFF_SECONDS
    if now >= _down_until:  # the first failure of this window
        logger.warning("Redis did not answer (%s: %s: %s); not tried again for %s s.",
                       what, exc.__class__.__name__, exc, backoff)
    _down_until = now + backoff


def task_enqueue(task, args: tuple, *, what: str, **options) -> bool:
    """Queue a Celery task, or return False when the broker is away (logged, not raised):
    callers keep what was to be done in the database for a later sweep. No publish retries:
    a POS call must not wait for the broker."""
    if not redis_up():
        return False
    try:
        task.apply_async(args, retry=False, **options)
    except REDIS_ERRORS as exc:
        redis_failed(what, exc)
        return False
    return True
