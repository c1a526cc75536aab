"""/metrics: the token guard, request and POS lookup latency counted by route, queue
depth and the age of each connection's last sync."""

import datetime as dt
import time

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from integrations.models import Connection
from integrations.services.connections import connection_create
from stores.services import api_key_create


def samples(text: str) -> dict[tuple, float]:
    """{(name, sorted labels): value} of a scrape."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def scrape(client, token="scrape-token") -> dict[tuple, float]:
    response = client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return samples(response.content.decode())


@pytest.fixture
def token(settings):
    settings.METRICS_TOKEN = "scrape-token"
    return settings.METRICS_TOKEN


def test_without_a_token_setting_there_is_no_metrics_page(client, db, settings):
    settings.METRICS_TOKEN = ""
    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer anything").status_code == 404


def test_the_metrics_page_needs_the_token(client, db, token):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Basic {token}").status_code == 401
    assert client.get("/metrics", HTTP_AUTHORIZATION=f"Bearer {token}").status_code == 200


def test_requests_and_pos_lookups_are_counted_by_route(client, company, token):
    _, raw = api_key_create(company=company, name="Register 1", level=1)
    pos = {"HTTP_AUTHORIZATION": f"Bearer {raw}", "HTTP_X_ACCOUNT_UID": str(company.account_uid)}
    count = ("loyalty_http_request_duration_seconds_count",
             (("method", "POST"), ("route", "pos_lookup"), ("status", "404")))
    lookups = ("loyalty_pos_lookup_duration_seconds_count", (("endpoint", "lookup"), ("status", "404")))
    before = scrape(client)
    # when the POS looks up three unknown customers
    for i in range(3):
        response = client.post("/api/pos/v1/lookup", {"phone": f"+1303555010{i}"},
                               content_type="application/json", **pos)
        assert response.status_code == 404
    # then both histograms counted them, under the route's name (never a path with ids)
    after = scrape(client)
    assert after[count] - before.get(count, 0) == 3
    assert after[lookups] - before.get(lookups, 0) == 3
    assert not any("/api/" in value for _, labels in after for _, value in labels)


def test_a_made_up_method_does_not_grow_the_labels(client, db, token):
    client.generic("BREW", "/login/")
    found = scrape(client)
    assert ("loyalty_http_request_duration_seconds_count",
            (("method", "other"), ("route", "login"), ("status", "405"))) in found
    assert not any(("method", "BREW") in labels for _, labels in found)


def test_each_synced_connection_has_the_age_of_its_last_sync(client, company, store, token, reports_root):
    synced = connection_create(company=company, name="Nightly", provider="folder",
                               settings={"path": "daily"}, credentials={})
    never = connection_create(company=company, name="Never", provider="folder",
                              settings={"path": "other"}, credentials={})
    Connection.objects.filter(pk=synced.pk).update(last_synced_at=timezone.now() - dt.timedelta(hours=2))
    found = scrape(client)
    age = found[("loyalty_connection_last_sync_age_seconds",
                 (("company", company.slug), ("connection_id", str(synced.pk))))]
    assert 7200 <= age < 7200 + 60
    ages = [dict(labels) for name, labels in found if name == "loyalty_connection_last_sync_age_seconds"]
    assert str(never.pk) not in [labels["connection_id"] for labels in ages]


def test_queue_depth_is_read_from_redis(client, db, token):
    from config.celery import app

    queue = app.conf.task_default_queue
    found = scrape(client)
    waiting = redis.Redis.from_url(settings.CELERY_BROKER_URL).llen(queue)
    assert found[("loyalty_celery_queue_length", (("queue", queue),))] == waiting


def test_an_unreachable_or_other_broker_leaves_queue_depth_out(client, db, token, settings):
    for broker in ("redis://127.0.0.1:1/0", "amqp://guest@127.0.0.1:1//"):
        settings.CELERY_BROKER_URL = broker
        started = time.monotonic()
        found = scrape(client)
        assert time.monotonic() - started < 3
        assert not any(name == "loyalty_celery_queue_length" for name, _ in found)
