"""A marketer reads a campaign's results in a real browser: the charts are drawn under the
page's CSP, a chart turns into its table, and a new window swaps the results in place."""

import datetime as dt

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from stores.models import Role
from tests.browser.pages import log_in
from tests.campaigns.report_data import campaign_make, recipient_add, sale
from tests.factories import MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True),
              pytest.mark.urls("tests.campaigns.urls")]


def test_results_in_a_browser(page, live_server, company):
    MembershipFactory(company=company, role=Role.MARKETER, user__username="reader")
    queued = timezone.now() - dt.timedelta(days=20)
    campaign = campaign_make(company, queued_at=queued)
    buyers = [recipient_add(campaign, state="delivered") for _ in range(4)]
    held = [recipient_add(campaign, group="holdout") for _ in range(3)]
    sale(buyers[0].persona, "30", queued + dt.timedelta(days=1))
    sale(buyers[1].persona, "20", queued + dt.timedelta(days=10))  # only in a longer window
    sale(held[0].persona, "6", queued + dt.timedelta(days=2))
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))

    log_in(page, live_server, "reader")
    page.goto(f"{live_server.url}/test-campaigns/{campaign.pk}/")
    report = page.locator("#campaign-report")
    expect(report.locator("[data-testid=lift-sentence]")).to_contain_text(
        "Recipients spent $5.50 more per person than the holdout over 7 days")
    for key in ("funnel", "conversion", "revenue"):
        expect(report.locator(f"#campaign-figure-{key} .main-svg").first).to_be_visible()

    card = report.locator("[data-testid=chart-revenue]")
    card.get_by_role("button", name="Table").click()
    expect(card.locator("[data-testid=table-revenue]")).to_be_visible()
    expect(card.locator("#campaign-figure-revenue")).to_be_hidden()

    page.fill("#campaign-report-days", "14")
    page.get_by_role("button", name="Show").click()
    expect(report.locator("[data-testid=lift-sentence]")).to_contain_text(
        "Recipients spent $10.50 more per person than the holdout over 14 days")
    expect(page).to_have_url(f"{live_server.url}/test-campaigns/{campaign.pk}/")  # swapped, not loaded
    expect(report.locator("#campaign-figure-funnel .main-svg").first).to_be_visible()
    # The revenue card stays on its table after the swap.
    expect(report.locator("[data-testid=table-revenue]")).to_be_visible()
    page.screenshot(path="/tmp/wtr/report.png", full_page=True)
    assert errors == []
