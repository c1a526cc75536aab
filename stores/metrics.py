"""Prometheus metrics, served at /metrics in the text format to a scraper that sends
`Authorization: Bearer <METRICS_TOKEN>`.

Gunicorn's workers and Celery's pool processes each keep their own numbers. With
PROMETHEUS_MULTIPROC_DIR set (the same folder for the web server and the workers, emptied
before they start) every process writes its samples there and a scrape adds them up, so
the answer is the same whichever worker serves it. Without it, a scrape sees only the
numbers of the process that answers: right for `runserver`, wrong for several workers.
Only counters and histograms live in the processes (no gauges), so a process that exits
needs no clean-up hook: its counts stay in the sums, as counts should.

Gauges that describe the world rather than this process (queue depth, age of the last
sync) are computed when scraped, by collectors apps register here (`scrape_collector_register`).
"""

import hmac
import logging
import os
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import Http404, HttpResponse
from prometheus_client import (
    REGISTRY,
    CollectorRegistry,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4
from prometheus_client.multiprocess import MultiProcessCollector

log = logging.getLogger(__name__)
disable_created_metrics()  # the *_created series only double what a scraper stores

HTTP_REQUEST_SECONDS = Histogram(
    "loyalty_http_request_duration_seconds", "Time to answer a request, by route name.",
    ["method", "route", "status"])
POS_LOOKUP_SECONDS = Histogram(
    "loyalty_pos_lookup_duration_seconds", "Time a POS lookup takes (lookup, balance, ledger).",
    ["endpoint", "status"], buckets=(0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 5.0))
TASK_SECONDS = Histogram(
    "loyalty_task_duration_seconds", "Time a Celery task run takes, by task and outcome.",
    ["task", "outcome"], buckets=(0.05, 0.1, 0.5, 1, 5, 15, 60, 300, 900, 3600, 4 * 3600))


# Any word is a method to Django (answered 405): a client must not grow the label set.
_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}


def http_request_observe(*, method: str, route: str, status: int, seconds: float) -> None:
    method = method if method in _METHODS else "other"
    HTTP_REQUEST_SECONDS.labels(method, route, str(status)).observe(seconds)


# --- computed at scrape ---------------------------------------------------------------------

ScrapeCollector = Callable[[], Iterable[Metric]]
_scrape_collectors: list[ScrapeCollector] = []


def scrape_collector_register(collect: ScrapeCollector) -> None:
    """`collect()` yields metric families, read fresh at each scrape. Apps above `stores`
    register theirs from their AppConfig.ready."""
    if collect not in _scrape_collectors:
        _scrape_collectors.append(collect)


QUEUE_TIMEOUT_SECONDS = 0.5


def queue_depths() -> Iterable[Metric]:
    """Messages waiting in each Celery queue. Read from Redis (a list per queue); another
    broker is skipped, and an unreachable Redis gives no sample rather than a slow scrape."""
    family = GaugeMetricFamily("loyalty_celery_queue_length", "Messages waiting in a Celery queue.",
                               labels=["queue"])
    broker = settings.CELERY_BROKER_URL or ""
    if urlsplit(broker).scheme in ("redis", "rediss"):
        import redis
        from celery import current_app

        names = sorted(current_app.amqp.queues) or [current_app.conf.task_default_queue]
        try:
            client = redis.Redis.from_url(broker, socket_timeout=QUEUE_TIMEOUT_SECONDS,
                                          socket_connect_timeout=QUEUE_TIMEOUT_SECONDS)
            with client.pipeline(transaction=False) as pipe:
                for name in names:
                    pipe.llen(name)
                lengths = pipe.execute()
            client.close()
        except redis.RedisError as exc:
            log.warning("queue depth not read: %s", exc)
        else:
            for name, length in zip(names, lengths, strict=True):
                family.add_metric([name], length)
    yield family


scrape_collector_register(queue_depths)


class _Scraped:
    """The registered collectors, as one prometheus_client collector."""

    def collect(self):
        for collect in _scrape_collectors:
            yield from collect()


def metrics_text() -> bytes:
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
    else:
        processes = REGISTRY
    scraped = CollectorRegistry()
    scraped.register(_Scraped())
    return generate_latest(processes) + generate_latest(scraped)


def metrics_view(request):
    """No METRICS_TOKEN: 404, as if there were no such page (never exposed by accident).
    Otherwise the token as a bearer token, compared in constant time."""
    token = settings.METRICS_TOKEN
    if not token:
        raise Http404()
    given = request.headers.get("Authorization", "")
    scheme, _, value = given.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(value.strip().encode(), token.encode()):
        response = HttpResponse("A bearer token (METRICS_TOKEN) is needed.\n", status=401,
                                content_type="text/plain")
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    return HttpResponse(metrics_text(), content_type=CONTENT_TYPE_PLAIN_0_0_4)
