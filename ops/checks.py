"""The readiness checks behind /readyz and `manage.py health`: django-health-check's
Database and Redis checks, and our own for the cache, migrations and the Celery heartbeats.
Each runs at once with the others and is cut off after CHECK_TIMEOUT seconds, so a dead
server never holds a probe."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime
import functools
import time
import uuid
from concurrent.futures import Executor, ThreadPoolExecutor

from django import db
from django.conf import settings
from django.core.cache import caches
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from health_check import Database, HealthCheck
from health_check.contrib.redis import Redis
from health_check.exceptions import ServiceUnavailable
from redis.asyncio import Redis as AsyncRedis
from redis.exceptions import RedisError

from .selectors import heartbeat_age

CHECK_TIMEOUT = 2.0  # seconds; all checks run at once, so /readyz answers within about this
CHECKS = ("database", "cache", "broker", "migrations", "worker", "beat")


@dataclasses.dataclass
class CacheRoundTrip(HealthCheck):
    """Writes a key to the cache and reads it back. health_check's own Cache check is async
    and reaches the cache through asgiref's one shared thread, which a stalled Redis would
    hold for every later probe; this one runs in the probe's own thread pool."""

    alias: str = "default"

    def run(self):
        key, value = f"health:probe:{uuid.uuid4().hex}", uuid.uuid4().hex
        cache = caches[self.alias]
        try:
            cache.set(key, value, timeout=10)
            if cache.get(key) != value:
                raise ServiceUnavailable("the value written was not read back")
            cache.delete(key)
        except (RedisError, OSError) as error:
            raise ServiceUnavailable(f"cannot reach the cache ({type(error).__name__})") from error


@dataclasses.dataclass
class DatabaseSelectOne(Database):
    """health_check's SELECT 1, with a message of our own: a driver's can name the server."""

    def run(self):
        try:
            super().run()
        except ServiceUnavailable as error:
            raise ServiceUnavailable("cannot reach the database") from error


@functools.cache
def migration_graph():
    """The migrations on disk, read once per process: they change only with a deploy."""
    return MigrationLoader(None, ignore_no_migrations=True).graph


def migrations_unapplied(applied) -> list[str]:
    """"app.name" of each migration on disk the database has not recorded (a squashed one
    counts as applied once everything it replaces is)."""
    return sorted(f"{app}.{name}" for (app, name), migration in migration_graph().nodes.items()
                  if (app, name) not in applied
                  and not (migration.replaces and all(key in applied for key in migration.replaces)))


@dataclasses.dataclass
class Migrations(HealthCheck):
    """Every migration in the code is applied: a web node of a newer release waits for
    `migrate` before it takes traffic."""

    alias: str = "default"

    def run(self):
        connection = connections[self.alias]
        try:
            with connection.temporary_connection():
                applied = MigrationRecorder(connection).applied_migrations()
        except db.Error as error:
            raise ServiceUnavailable("cannot read the applied migrations") from error
        missing = migrations_unapplied(applied)
        if missing:
            shown = ", ".join(missing[:3]) + (f" and {len(missing) - 3} more" if len(missing) > 3 else "")
            raise ServiceUnavailable(f"{len(missing)} not applied: {shown}")


@dataclasses.dataclass
class Heartbeat(HealthCheck):
    """A Celery worker (any) or beat wrote its heartbeat within HEALTH_HEARTBEAT_MAX_AGE.
    Reads one key: no broadcast to the workers on each probe."""

    role: str = "worker"
    detail: str = dataclasses.field(default="", init=False, repr=False)

    def run(self):
        try:
            age = heartbeat_age(role=self.role)
        except (RedisError, OSError) as error:
            raise ServiceUnavailable(f"cannot reach the cache ({type(error).__name__})") from error
        if age is None:
            raise ServiceUnavailable("no heartbeat on record")
        if age > settings.HEALTH_HEARTBEAT_MAX_AGE:
            raise ServiceUnavailable(f"last heartbeat {age:.0f} s ago, more than "
                                     f"{settings.HEALTH_HEARTBEAT_MAX_AGE} s")
        self.detail = f"last heartbeat {age:.0f} s ago"


@dataclasses.dataclass
class BrokerConnect(HealthCheck):
    """Opens a connection to a broker that is not Redis (RabbitMQ: amqp://) with kombu, as
    Celery itself does, and closes it again."""

    url: str = dataclasses.field(default="", repr=False)

    def run(self):
        from kombu import Connection

        try:
            with Connection(self.url, connect_timeout=CHECK_TIMEOUT * 0.75) as connection:
                connection.ensure_connection(max_retries=1, interval_start=0, interval_step=0)
        except Exception as error:  # kombu wraps the transport's own errors in many types
            raise ServiceUnavailable(f"cannot reach the broker ({type(error).__name__})") from error


def broker_check() -> HealthCheck:
    """Pings the Celery broker on a connection of its own, with timeouts: Redis by PING,
    RabbitMQ by opening a connection."""
    url = settings.CELERY_BROKER_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return BrokerConnect(url=url)
    return Redis(client_factory=lambda: AsyncRedis.from_url(
        # Its own timeouts end it a little before CHECK_TIMEOUT, with Redis's reason.
        url, socket_connect_timeout=CHECK_TIMEOUT * 0.75, socket_timeout=CHECK_TIMEOUT * 0.75))


def readiness_checks(skip=()) -> dict[str, HealthCheck]:
    makers = {
        "database": DatabaseSelectOne,
        "cache": CacheRoundTrip,
        "broker": broker_check,
        "migrations": Migrations,
        "worker": lambda: Heartbeat(role="worker"),
        "beat": lambda: Heartbeat(role="beat"),
    }
    checks = {name: make() for name, make in makers.items() if name not in skip}
    for check in checks.values():
        check.timeout = datetime.timedelta(seconds=CHECK_TIMEOUT)
    return checks


def checks_run(checks: dict[str, HealthCheck]) -> dict[str, dict]:
    """Runs the checks at once: {name: {"ok": bool, "ms": float, "detail"?: str}}. A check
    still running after CHECK_TIMEOUT is reported failed and left to finish in its thread
    (the pool is not waited for), so the answer never waits on a hung connection."""
    executor = ThreadPoolExecutor(max_workers=max(len(checks), 1), thread_name_prefix="health")
    try:
        # In a thread of its own: the caller's thread may already run an event loop (an
        # ASGI server, or a greenlet-driven library), where asyncio.run() is refused.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="health-loop") as loop_thread:
            outcomes = loop_thread.submit(asyncio.run, _gather(checks, executor)).result()
    finally:
        executor.shutdown(wait=False, cancel_futures=True)
    return dict(zip(checks, outcomes, strict=True))


async def _gather(checks: dict[str, HealthCheck], executor: Executor) -> list[dict]:
    return await asyncio.gather(*(_outcome(check, executor) for check in checks.values()))


async def _outcome(check: HealthCheck, executor: Executor) -> dict:
    started = time.perf_counter()
    try:
        error = (await asyncio.wait_for(check.get_result(executor), CHECK_TIMEOUT)).error
    except TimeoutError:
        error = ServiceUnavailable(f"no answer within {CHECK_TIMEOUT:g} s")
    outcome = {"ok": error is None, "ms": round((time.perf_counter() - started) * 1000, 1)}
    # Messages are our own or django-health-check's fixed ones: no URL, host or password.
    detail = error.message if error is not None else getattr(check, "detail", "")
    if detail:
        outcome["detail"] = detail
    return outcome


def readiness(skip=()) -> dict:
    """What /readyz answers: {"status": "ok" | "failing", "checks": {...}}."""
    results = checks_run(readiness_checks(skip))
    return {"status": "ok" if all(r["ok"] for r in results.values()) else "failing", "checks": results}
