"""Per-key request limits and usage, for the POS API.

On each call, one EVALSHA (RATE_SCRIPT) checks the key's token bucket and counts the
request in Redis: the day's requests, last used, and for a refusal its error too. An error
answer (known only after the response) adds one pipelined round trip; errors are rare.
Nothing is written to the database per request: `api_key_usage_flush` (every minute, and
before the Settings › API keys pages show usage) moves the counts into ApiKeyUsageDay,
last used into ApiKey and the errors into ApiKeyError (the newest API_ERRORS_KEPT per key).

With Redis away the limit fails open (the POS is answered), nothing is counted, and last
used is written to the database at most once a minute per process instead."""

from __future__ import annotations

import datetime as dt
import json
import logging
import math
import time
import zoneinfo
from collections import defaultdict

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from .models import ApiKey, ApiKeyError
from .redis_guard import REDIS_ERRORS, redis_failed, redis_up
from .versions import redis_client

logger = logging.getLogger(__name__)

API_ERRORS_KEPT = 50
USAGE_DAYS = 30

# Raw Redis keys, under the cache's KEY_PREFIX (parallel test workers each have their own).
PREFIX = f"{settings.CACHES['default'].get('KEY_PREFIX', '')}:api-usage:"
COUNTS = PREFIX + "counts"  # hash: "<key id>:<YYYY-MM-DD>:r" requests, ":e" errors
LAST_USED = PREFIX + "last"  # hash: key id -> unix seconds of its latest request
ERROR_KEYS = PREFIX + "error-keys"  # set: key ids with errors not yet flushed


def _errors_list(key_id: int) -> str:
    return f"{PREFIX}errors:{key_id}"  # list, newest first, at most API_ERRORS_KEPT


def _bucket(key_id: int) -> str:
    return f"{PREFIX}rate:{key_id}"


# GCRA, the token bucket as one stored time: the bucket's "theoretical arrival time" (µs).
# A request is admitted while that time, moved on by one interval, is at most `burst`
# intervals ahead of now. Redis's own clock, so every app server agrees. Returns -1 when
# admitted, or the milliseconds to wait.
RATE_SCRIPT = """
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = 1000000 / rate
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local new_tat = tat + interval
redis.call('HINCRBY', KEYS[2], ARGV[3] .. 'r', 1)
redis.call('HSET', KEYS[3], ARGV[4], t[1])
if new_tat - now > burst * interval then
  redis.call('HINCRBY', KEYS[2], ARGV[3] .. 'e', 1)
  redis.call('LPUSH', KEYS[4], cjson.encode({at = tonumber(ARGV[5]), status = 429, code = 'rate_limited',
    method = ARGV[6], path = ARGV[7], request_id = ARGV[8]}))
  redis.call('LTRIM', KEYS[4], 0, tonumber(ARGV[9]) - 1)
  redis.call('SADD', KEYS[5], ARGV[4])
  return math.ceil((new_tat - now - burst * interval) / 1000)
end
redis.call('SET', KEYS[1], string.format('%.0f', new_tat), 'PX', math.ceil((new_tat - now) / 1000) + 1)
return -1
"""
_script = None
_zones: dict[str, zoneinfo.ZoneInfo] = {}
_last_used_written: dict[int, float] = {}  # key id -> monotonic time, with Redis away


def _day(api_key: ApiKey, when: dt.datetime | None = None) -> str:
    """Today in the key's company's time zone: the day a merchant counts in."""
    name = api_key.company.timezone
    zone = _zones.get(name)
    if zone is None:
        zone = _zones[name] = zoneinfo.ZoneInfo(name)
    return timezone.localtime(when or timezone.now(), zone).date().isoformat()


def api_key_request_admit(*, api_key: ApiKey, method: str, path: str, request_id: str | None) -> int | None:
    """Count one request of `api_key` and check its rate. None: go on; a number: refused,
    retry after that many seconds. Redis away: always None (fail open)."""
    global _script
    if redis_up():
        try:
            if _script is None:
                _script = redis_client().register_script(RATE_SCRIPT)
            wait_ms = _script(
                keys=[_bucket(api_key.pk), COUNTS, LAST_USED, _errors_list(api_key.pk), ERROR_KEYS],
                args=[api_key.rate_per_second, api_key.burst, f"{api_key.pk}:{_day(api_key)}:", api_key.pk,
                      round(time.time(), 3), method, path[:200], request_id or "", API_ERRORS_KEPT])
        except REDIS_ERRORS as exc:
            redis_failed("API key limits", exc)
        else:
            return None if wait_ms < 0 else max(1, math.ceil(wait_ms / 1000))
    _last_used_to_database(api_key)
    return None


def _last_used_to_database(api_key: ApiKey) -> None:
    now = time.monotonic()
    if now - _last_used_written.get(api_key.pk, -math.inf) < 60:
        return
    _last_used_written[api_key.pk] = now
    try:
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=timezone.now())
    except Exception:  # the call is answered all the same
        logger.warning("Could not note API key %s as used.", api_key.pk, exc_info=True)


def api_key_error_record(*, api_key: ApiKey, status: int, code: str, method: str, path: str,
                         request_id: str | None) -> None:
    """Count an error answer and keep it among the key's latest. Never raises."""
    if not redis_up():
        return
    entry = json.dumps({"at": round(time.time(), 3), "status": status, "code": code[:64], "method": method,
                        "path": path[:200], "request_id": request_id or ""})
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            pipe.hincrby(COUNTS, f"{api_key.pk}:{_day(api_key)}:e", 1)
            pipe.lpush(_errors_list(api_key.pk), entry)
            pipe.ltrim(_errors_list(api_key.pk), 0, API_ERRORS_KEPT - 1)
            pipe.sadd(ERROR_KEYS, api_key.pk)
            pipe.execute()
    except REDIS_ERRORS as exc:
        redis_failed("API key usage", exc)


# -- the flush --------------------------------------------------------------------------------

UPSERT_SQL = """
INSERT INTO stores_apikeyusageday (api_key_id, day, requests, errors)
SELECT * FROM unnest(%s::bigint[], %s::date[], %s::bigint[], %s::bigint[])
ON CONFLICT (api_key_id, day) DO UPDATE
SET requests = stores_apikeyusageday.requests + EXCLUDED.requests,
    errors = stores_apikeyusageday.errors + EXCLUDED.errors
"""


def api_key_usage_flush() -> int:
    """Move what Redis counted into the database. Each part is taken from Redis and
    removed in one MULTI, so concurrent flushes never take the same counts; when the
    database write fails they are given back to Redis. Returns the requests moved."""
    if not redis_up():
        return 0
    client = redis_client()
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.hgetall(COUNTS).delete(COUNTS).hgetall(LAST_USED).delete(LAST_USED)
            pipe.smembers(ERROR_KEYS).delete(ERROR_KEYS)
            counts, _, last_used, _, error_keys, _ = pipe.execute()
        errors: dict[int, list[bytes]] = {}
        for raw_id in error_keys:
            with client.pipeline(transaction=True) as pipe:
                pipe.lrange(_errors_list(int(raw_id)), 0, -1).delete(_errors_list(int(raw_id)))
                errors[int(raw_id)] = pipe.execute()[0]
    except REDIS_ERRORS as exc:
        redis_failed("API key usage flush", exc)
        return 0
    try:
        return _usage_to_database(counts, last_used, errors)
    except Exception:
        logger.warning("Could not write API key usage; given back to Redis.", exc_info=True)
        _usage_give_back(counts, last_used, errors)
        raise


def _usage_to_database(counts: dict, last_used: dict, errors: dict[int, list[bytes]]) -> int:
    days: dict[tuple[int, str], list[int]] = defaultdict(lambda: [0, 0])
    for field, value in counts.items():
        key_id, day, kind = field.decode().split(":")
        days[(int(key_id), day)][0 if kind == "r" else 1] += int(value)
    wanted = {k for k, _ in days} | {int(k) for k in last_used} | set(errors)
    existing = set(ApiKey.objects.filter(pk__in=wanted).values_list("pk", flat=True))  # deleted meanwhile
    rows = sorted((k, d, r, e) for (k, d), (r, e) in days.items() if k in existing)  # one lock order
    with transaction.atomic():
        if rows:
            with connection.cursor() as cursor:
                cursor.execute(UPSERT_SQL, [list(col) for col in zip(*rows, strict=True)])
        for raw_id, seconds in sorted(last_used.items()):
            at = dt.datetime.fromtimestamp(int(seconds), tz=dt.UTC)
            ApiKey.objects.filter(pk=int(raw_id)).exclude(last_used_at__gte=at).update(last_used_at=at)
        kept = []
        for key_id, entries in sorted(errors.items()):
            if key_id not in existing:
                continue
            for raw in entries:
                item = json.loads(raw)
                kept.append(ApiKeyError(
                    api_key_id=key_id, at=dt.datetime.fromtimestamp(item["at"], tz=dt.UTC),
                    status=item["status"], code=item["code"][:64], method=item["method"][:10],
                    path=item["path"][:200], request_id=item["request_id"][:128]))
        ApiKeyError.objects.bulk_create(kept)
        for key_id in sorted(k for k in errors if k in existing):
            newest = ApiKeyError.objects.filter(api_key_id=key_id).values("pk")[:API_ERRORS_KEPT]
            ApiKeyError.objects.filter(api_key_id=key_id).exclude(pk__in=newest).delete()
    return sum(r for _, _, r, _ in rows)


def _usage_give_back(counts: dict, last_used: dict, errors: dict[int, list[bytes]]) -> None:
    try:
        with redis_client().pipeline(transaction=False) as pipe:
            for field, value in counts.items():
                pipe.hincrby(COUNTS, field, int(value))
            for raw_id, seconds in last_used.items():
                pipe.hsetnx(LAST_USED, raw_id, seconds)
            for key_id, entries in errors.items():
                if entries:
                    pipe.rpush(_errors_list(key_id), *entries)  # older than any new ones
                    pipe.ltrim(_errors_list(key_id), 0, API_ERRORS_KEPT - 1)
                    pipe.sadd(ERROR_KEYS, key_id)
            pipe.execute()
    except REDIS_ERRORS as exc:
        redis_failed("API key usage flush", exc)


def api_usage_forget() -> None:
    """Drop every count and bucket held in Redis (tests: a new database reuses key ids)."""
    client = redis_client()
    names = list(client.scan_iter(match=PREFIX + "*", count=1000))
    if names:
        client.delete(*names)
