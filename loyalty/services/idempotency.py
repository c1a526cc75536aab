"""Idempotency-Key on the POS API: a key is reserved before the work starts, its answer is
kept after, and every retry gets that answer, even one sent while the first is still running.

The reservation is a row committed on its own (unique per company, API key and key), so
of twenty identical requests sent at once exactly one does the work; the others wait for
its answer. Callers run in autocommit (the API has no request-wide transaction)."""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass

from django.db import transaction as db
from django.utils import timezone

from stores.models import ApiKey, Company

from ..models import IdempotencyRecord

# How long a duplicate waits for the first request's answer before it is told to retry.
WAIT_SECONDS = 5.0
POLL_SECONDS = 0.05
# A reservation still in progress after this long belongs to a worker that died.
RESERVATION_STALE_AFTER = dt.timedelta(seconds=60)
# How long an answer is kept and replayed.
KEY_KEPT_FOR = dt.timedelta(hours=24)

RESERVED = "reserved"  # the caller does the work, then completes or releases
COMPLETED = "completed"  # replay record.response_status / response_body
IN_PROGRESS = "in_progress"  # another request still holds the key after the wait
REUSED = "reused"  # the key was used with another method, path or body


@dataclass(frozen=True)
class Claim:
    outcome: str
    record: IdempotencyRecord | None


def idempotency_claim(*, company: Company, api_key: ApiKey, key: str, method_path: str, request_hash: str,
                      wait_seconds: float | None = None) -> Claim:
    """Reserve `key` for this request, or say what became of the request that holds it,
    waiting up to `wait_seconds` for that one to finish."""
    deadline = time.monotonic() + (WAIT_SECONDS if wait_seconds is None else wait_seconds)
    while True:
        claim = _claim_once(company=company, api_key=api_key, key=key, method_path=method_path,
                            request_hash=request_hash)
        if claim.outcome != IN_PROGRESS or time.monotonic() >= deadline:
            return claim
        time.sleep(POLL_SECONDS)


def _claim_once(*, company, api_key, key, method_path, request_hash) -> Claim:
    now = timezone.now()
    with db.atomic():  # its own short transaction: the reservation is visible at once
        record, created = IdempotencyRecord.objects.get_or_create(
            company=company, api_key=api_key, key=key,
            defaults={"method_path": method_path, "request_hash": request_hash,
                      "state": IdempotencyRecord.IN_PROGRESS, "reserved_at": now, "created_at": now})
    if created:
        return Claim(RESERVED, record)
    if record.created_at <= now - KEY_KEPT_FOR:  # expired but not yet swept: a new key
        return _take_over(record, method_path=method_path, request_hash=request_hash, now=now)
    if record.method_path != method_path or record.request_hash != request_hash:
        return Claim(REUSED, record)
    if record.state == IdempotencyRecord.COMPLETED:
        return Claim(COMPLETED, record)
    if record.reserved_at <= now - RESERVATION_STALE_AFTER:
        return _take_over(record, method_path=method_path, request_hash=request_hash, now=now)
    return Claim(IN_PROGRESS, record)


def _take_over(record: IdempotencyRecord, *, method_path: str, request_hash: str, now) -> Claim:
    """Start the key afresh; of several retries taking over at once, one wins (the
    reservation time is compared and set in one UPDATE)."""
    taken = IdempotencyRecord.objects.filter(pk=record.pk, reserved_at=record.reserved_at).update(
        method_path=method_path, request_hash=request_hash, state=IdempotencyRecord.IN_PROGRESS,
        reserved_at=now, created_at=now, response_status=None, response_body=None)
    if not taken:
        return Claim(IN_PROGRESS, record)
    record.refresh_from_db()
    return Claim(RESERVED, record)


def idempotency_complete(*, record: IdempotencyRecord, status: int, body) -> None:
    """Keep the answer to replay. `body` must be JSON as the client received it."""
    IdempotencyRecord.objects.filter(pk=record.pk, reserved_at=record.reserved_at).update(
        state=IdempotencyRecord.COMPLETED, response_status=status, response_body=body)


def idempotency_release(*, record: IdempotencyRecord) -> None:
    """The work failed (5xx or a crash): free the key so a retry runs it again."""
    IdempotencyRecord.objects.filter(pk=record.pk, reserved_at=record.reserved_at).delete()


def idempotency_records_expire(*, now: dt.datetime | None = None) -> int:
    """Delete keys older than 24 hours (hourly). Returns how many were deleted."""
    cutoff = (now or timezone.now()) - KEY_KEPT_FOR
    deleted, _ = IdempotencyRecord.objects.filter(created_at__lte=cutoff).delete()
    return deleted
