"""Per-key request limits and usage, against a real gunicorn and a real Redis: past its
burst a key is answered 429 rate_limited with Retry-After, other keys are not, a changed
rate applies at once, and with Redis stopped every call passes. What was sent is counted,
flushed to the database and shown on Settings › API keys (only to the key's company)."""

import concurrent.futures
import datetime as dt
import subprocess
import sys
import time
import zoneinfo

import pytest
import requests
from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from stores.api_usage import api_key_usage_flush, api_usage_forget
from stores.models import ApiKey, ApiKeyError, ApiKeyUsageDay, AuditEvent
from stores.services import api_key_create, api_key_limits_update
from tests.loyalty.test_redis_outage import ROOT, env_for, free_port, stop, wait_for
from tests.loyalty.test_redis_outage import own_redis as own_redis  # a fixture

API = "/api/pos/v1/"


@pytest.fixture(autouse=True)
def usage_forgotten():
    """A new test database reuses key ids: counts an earlier run left in Redis are not ours."""
    api_usage_forget()
    yield
    api_usage_forget()


@pytest.fixture
def serve():
    """`serve(redis_url)`: gunicorn (1 worker, 32 threads) serving the app; the POS API's URL."""
    processes = []

    def start(redis_url: str) -> str:
        port = free_port()
        processes.append(subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi:application", "--bind", f"127.0.0.1:{port}",
             "--workers", "1", "--threads", "32", "--timeout", "60"],
            cwd=ROOT, env=env_for(redis_url), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        url = f"http://127.0.0.1:{port}{API}"
        wait_for(lambda: requests.get(url + "ping", timeout=2).status_code in (401, 403), what="gunicorn")
        return url

    yield start
    for process in processes:
        print(stop(process))


def headers_for(raw, company):
    return {"Authorization": f"Bearer {raw}", "X-Account-UID": str(company.account_uid)}


def all_at_once(n, call):
    """`n` calls released together, each on its own connection."""
    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        return list(pool.map(lambda _: call(), range(n)))


def today_of(company):
    return timezone.localtime(timezone.now(), zoneinfo.ZoneInfo(company.timezone)).date()


@pytest.mark.django_db(transaction=True)
def test_past_its_burst_a_key_gets_429_with_retry_after_and_other_keys_do_not(company, serve):
    # given a register's key held to 5 a second (bursts of 5), and another register's key
    limited, raw = api_key_create(company=company, name="Register 1", level=1, rate_per_second=5, burst=5)
    _, other_raw = api_key_create(company=company, name="Register 2", level=1)
    url = serve(settings.REDIS_URL)
    headers, other_headers = headers_for(raw, company), headers_for(other_raw, company)
    requests.get(url + "ping", headers=other_headers, timeout=10)  # the worker has its Redis script

    # when 30 calls of the first key arrive at once
    answers = all_at_once(30, lambda: requests.get(url + "ping", headers=headers, timeout=20))

    # then about 5 pass (a few more if the calls spread over more than a fifth of a second)
    codes = [a.status_code for a in answers]
    print(f"\n30 calls at once, 5/s bursts of 5: {codes.count(200)} passed, {codes.count(429)} refused")
    assert set(codes) == {200, 429} and 5 <= codes.count(200) <= 9, codes
    # and each refusal is the API's error shape, with Retry-After in whole seconds
    refused = [a for a in answers if a.status_code == 429]
    for answer in refused:
        body = answer.json()
        assert body["code"] == "rate_limited" and body["field"] is None
        assert body["request_id"] == answer.headers["X-Request-ID"]
        assert body["detail"].startswith("This API key may make 5 requests a second (bursts of 5); retry")
        assert int(answer.headers["Retry-After"]) >= 1
    # and the other key is not limited by the first one's calls
    other = all_at_once(10, lambda: requests.get(url + "ping", headers=other_headers, timeout=20))
    assert [a.status_code for a in other] == [200] * 10

    # when the register waits as long as it was told, it is answered again
    time.sleep(max(int(a.headers["Retry-After"]) for a in refused))
    assert requests.get(url + "ping", headers=headers, timeout=10).status_code == 200

    # when the merchant raises the key's rate, the running server applies it within a second
    api_key_limits_update(api_key=limited, rate_per_second=1000, burst=1000)
    time.sleep(1.2)
    assert {a.status_code for a in all_at_once(30, lambda: requests.get(
        url + "ping", headers=headers, timeout=20))} == {200}

    # and a refused or failed call is counted as an error; a lookup of nobody is one too
    missing = requests.post(url + "lookup", json={"phone": "+13035550000"}, headers=other_headers, timeout=10)
    assert missing.status_code == 404
    api_key_usage_flush()
    day = today_of(company)
    usage = ApiKeyUsageDay.objects.get(api_key=limited, day=day)
    assert (usage.requests, usage.errors) == (30 + 1 + 30, len(refused))
    other_usage = ApiKeyUsageDay.objects.get(api_key__name="Register 2", day=day)
    assert (other_usage.requests, other_usage.errors) == (1 + 10 + 1, 1)
    errors = ApiKeyError.objects.filter(api_key=limited)
    assert sorted(e.request_id for e in errors) == sorted(a.headers["X-Request-ID"] for a in refused)
    assert {(e.status, e.code, e.method, e.path) for e in errors} == {
        (429, "rate_limited", "GET", API + "ping")}
    assert list(ApiKeyError.objects.filter(api_key__name="Register 2").values_list(
        "status", "code", "path", "request_id")) == [
        (404, "not_found", API + "lookup", missing.headers["X-Request-ID"])]
    limited.refresh_from_db()
    assert timezone.now() - limited.last_used_at < dt.timedelta(minutes=1)

    # and a second flush adds nothing: the counts left Redis with the first
    assert api_key_usage_flush() == 0
    assert ApiKeyUsageDay.objects.get(api_key=limited, day=day).requests == 61


@pytest.mark.django_db(transaction=True)
def test_with_redis_stopped_the_limit_fails_open(company, serve, own_redis):
    # given a key held to 1 a second, on a server whose Redis limits it
    key, raw = api_key_create(company=company, name="Register 1", level=1, rate_per_second=1, burst=1)
    headers = headers_for(raw, company)
    url = serve(own_redis.url)
    codes = [requests.get(url + "ping", headers=headers, timeout=10).status_code for _ in range(3)]
    assert codes[0] == 200 and 429 in codes

    # when Redis stops
    own_redis.stop()

    # then every call is answered, fast, and the key is still marked used (in the database)
    ApiKey.objects.filter(pk=key.pk).update(last_used_at=None)
    timings = []
    for _ in range(10):
        started = time.monotonic()
        response = requests.get(url + "ping", headers=headers, timeout=10)
        timings.append(time.monotonic() - started)
        assert response.status_code == 200, response.text
    assert max(timings) < 1.0, timings
    key.refresh_from_db()
    assert key.last_used_at is not None


@pytest.mark.django_db
def test_the_page_shows_usage_per_day_and_the_latest_errors(company, admin_client, client):
    # given a key that made 4 calls, 2 of them for nobody
    key, raw = api_key_create(company=company, name="Register 1", level=1)
    pos = {"HTTP_AUTHORIZATION": f"Bearer {raw}", "HTTP_X_ACCOUNT_UID": str(company.account_uid)}
    assert client.get(API + "ping", **pos).status_code == 200
    assert client.get(API + "ping", **pos).status_code == 200
    missing = [client.post(API + "lookup", {"phone": f"+1303555000{i}"}, content_type="application/json",
                           **pos) for i in range(2)]
    assert [m.status_code for m in missing] == [404, 404]

    # when the merchant opens the key (the page flushes what Redis counted first)
    response = admin_client.get(reverse("api_key_detail", args=[key.pk]))

    # then it shows 4 requests and 2 errors today, in the chart's figure and in words
    assert response.status_code == 200
    page = response.content.decode()
    assert 'data-testid="requests-total">4<' in page and 'data-testid="errors-total">2<' in page
    usage = response.context["usage"]
    assert [(d.requests, d.errors) for d in usage.days if d.requests] == [(4, 2)]
    assert usage.days[-1].day == today_of(company) and len(usage.days) == 30
    figure = response.context["figure"]  # drawn by static/js/api-usage.js from this JSON
    assert 'id="usage-figure-data" type="application/json"' in page
    assert 'data-figure="usage-figure-data"' in page
    assert [t["name"] for t in figure["data"]] == ["Requests", "Errors"]
    assert figure["data"][0]["y"][-1] == 4 and figure["data"][1]["y"][-1] == 2
    # and the errors with their code and request id, newest first
    assert [(e.status, e.code, e.request_id) for e in usage.errors] == [
        (404, "not_found", m["X-Request-ID"]) for m in reversed(missing)]
    for m in missing:
        assert m["X-Request-ID"] in page
    # and the list shows when it was last used and its rate
    listing = admin_client.get(reverse("api_key_list")).content.decode()
    assert "20/s" in listing and reverse("api_key_detail", args=[key.pk]) in listing
    key.refresh_from_db()
    assert key.last_used_at is not None


@pytest.mark.django_db
def test_errors_kept_are_the_newest_fifty(company, client):
    key, raw = api_key_create(company=company, name="Register 1", level=1, rate_per_second=1000, burst=1000)
    pos = {"HTTP_AUTHORIZATION": f"Bearer {raw}", "HTTP_X_ACCOUNT_UID": str(company.account_uid)}
    ids = []
    for _flush in range(2):  # two flushes: the database keeps 50 across them
        for _call in range(35):
            ids.append(client.post(API + "lookup", {"phone": "+13035550000"}, content_type="application/json",
                                   **pos)["X-Request-ID"])
        api_key_usage_flush()
    kept = list(ApiKeyError.objects.filter(api_key=key).values_list("request_id", flat=True))
    assert kept == list(reversed(ids))[:50]
    assert ApiKeyUsageDay.objects.get(api_key=key).errors == 70


@pytest.mark.django_db
def test_rate_edit_is_audited_and_held_to_its_bounds(company, admin_client, admin_user):
    key, _ = api_key_create(company=company, name="Register 1", level=1)
    url = reverse("api_key_detail", args=[key.pk])

    response = admin_client.post(url, {"rate_per_second": "50", "burst": "100"})
    assert response.status_code == 302
    key.refresh_from_db()
    assert (key.rate_per_second, key.burst) == (50, 100)
    event = AuditEvent.objects.get(kind="api_key.limits_updated")
    assert event.actor_id == admin_user.pk and event.object_id == key.pk
    assert event.changes == {"rate_per_second": [20, 50], "burst": [40, 100]}

    for data, field in [({"rate_per_second": "0", "burst": "10"}, "rate_per_second"),
                        ({"rate_per_second": "10001", "burst": "20000"}, "rate_per_second"),
                        ({"rate_per_second": "10", "burst": "9"}, "burst"),
                        ({"rate_per_second": "10", "burst": "20001"}, "burst"),
                        ({"rate_per_second": "ten", "burst": "10"}, "rate_per_second")]:
        response = admin_client.post(url, data)
        assert response.status_code == 400, data
        assert response.context["form"].errors.get(field), (data, response.context["form"].errors)
        assert 'class="field-error"' in response.content.decode()
    key.refresh_from_db()
    assert (key.rate_per_second, key.burst) == (50, 100)
    assert AuditEvent.objects.filter(kind="api_key.limits_updated").count() == 1

    # and the database refuses what the form would
    for rate, burst in [(0, 10), (10, 9), (10_001, 20_000)]:
        with pytest.raises(IntegrityError), transaction.atomic():
            ApiKey.objects.filter(pk=key.pk).update(rate_per_second=rate, burst=burst)


@pytest.mark.django_db
def test_another_companys_key_is_not_found(company, other_company, admin_client):
    theirs, _ = api_key_create(company=other_company, name="Their register", level=1)
    url = reverse("api_key_detail", args=[theirs.pk])
    assert admin_client.get(url).status_code == 404
    assert admin_client.post(url, {"rate_per_second": "1", "burst": "1"}).status_code == 404
    theirs.refresh_from_db()
    assert (theirs.rate_per_second, theirs.burst) == (20, 40)
    assert not AuditEvent.objects.filter(kind="api_key.limits_updated").exists()
