"""A merchant checks a register's API key in a real browser: its calls and errors per day
drawn by Plotly under the Content-Security-Policy, its latest errors with their request
ids, and its rate limit changed (and refused past its bounds).

Set SCREENSHOTS=/tmp/shots to keep a picture of the page."""

import os
from pathlib import Path

import pytest
import requests
from django.urls import reverse
from playwright.sync_api import expect

from stores.api_usage import api_usage_forget
from stores.models import ApiKey, AuditEvent, Role
from stores.services import api_key_create
from tests.browser.pages import log_in
from tests.browser.test_csp import Watch
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_merchant_sees_a_keys_usage_and_changes_its_rate(page, live_server, company):
    api_usage_forget()  # a new test database reuses key ids
    MembershipFactory(company=company, role=Role.ADMIN, user__username="owner")
    key, raw = api_key_create(company=company, name="Register 1", level=1, rate_per_second=2, burst=2)
    pos = {"Authorization": f"Bearer {raw}", "X-Account-UID": str(company.account_uid)}
    api = f"{live_server.url}/api/pos/v1/"
    codes = [requests.get(api + "ping", headers=pos, timeout=10).status_code for _ in range(4)]
    missing = requests.post(api + "lookup", json={"phone": "+13035550000"}, headers=pos, timeout=10)
    assert 429 in codes
    assert missing.status_code in (404, 429)

    page.set_viewport_size({"width": 1360, "height": 1000})
    watch = Watch(page, live_server)
    log_in(page, live_server, "owner")
    page.goto(live_server.url + reverse("api_key_list"))
    page.get_by_role("link", name="Register 1").click()

    # the chart is drawn, nothing refused, and the numbers are the calls made
    expect(page.locator("#usage-figure .main-svg").first).to_be_visible()
    watch.check()
    assert watch.problems == []
    expect(page.get_by_test_id("requests-total")).to_have_text("5")
    errors = codes.count(429) + 1
    expect(page.get_by_test_id("errors-total")).to_have_text(str(errors))
    table = page.get_by_test_id("error-table")
    expect(table.locator("tbody tr")).to_have_count(errors)
    expect(table).to_contain_text("rate_limited")
    expect(table).to_contain_text(missing.headers["X-Request-ID"])
    if os.environ.get("SCREENSHOTS"):
        Path(os.environ["SCREENSHOTS"]).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(os.environ["SCREENSHOTS"]) / "api-key.png"), full_page=True)

    # a burst under the rate is refused on its field (the page answers 400, as forms do)
    page.fill("#id_rate_per_second", "30")
    page.fill("#id_burst", "10")
    page.get_by_role("button", name="Save").click()
    expect(page.locator(".field-error")).to_contain_text("at least the rate")
    watch.check()
    assert [p for p in watch.problems if "400 (Bad Request)" not in p] == []
    watch.problems.clear()
    key.refresh_from_db()
    assert (key.rate_per_second, key.burst) == (2, 2)

    # a good one is saved and audited
    page.fill("#id_burst", "60")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_contain_text("30 requests a second, in bursts of 60")
    assert ApiKey.objects.values_list("rate_per_second", "burst").get(pk=key.pk) == (30, 60)
    assert AuditEvent.objects.filter(kind="api_key.limits_updated", object_id=key.pk).count() == 1
    watch.check()
    assert watch.problems == []
