"""The campaign report as staff get it: the partial the window picker swaps in and the
outcomes CSV; who may see them."""

import csv
import datetime as dt
import io
import json
import re

import pytest
import time_machine
from django.urls import reverse

from stores.models import AuditEvent, Role
from tests.campaigns.report_data import QUEUED_AT, campaign_make, click, recipient_add, sale
from tests.factories import MembershipFactory, PersonaFactory

pytestmark = pytest.mark.urls("tests.campaigns.urls")

DAY = dt.timedelta(days=1)
NOW = QUEUED_AT + 30 * DAY


@pytest.fixture(autouse=True)
def clock():
    with time_machine.travel(NOW, tick=False):
        yield


@pytest.fixture
def campaign(company):
    campaign = campaign_make(company, report_days=7)
    ana = PersonaFactory(company=company, first_name="=HYPERLINK(1)", last_name="Ana", phone="+13035550100")
    sent = recipient_add(campaign, persona=ana, state="delivered", sent_at=QUEUED_AT + dt.timedelta(hours=1))
    failed = recipient_add(campaign, state="failed", error_code="30006", error="-Landline or unreachable")
    recipient_add(campaign, state="pending")
    held = [recipient_add(campaign, group="holdout") for _ in range(2)]
    click(campaign, sent)
    click(campaign, sent)
    sale(ana, "42.50", QUEUED_AT + 2 * DAY)
    sale(ana, "10.00", QUEUED_AT + 10 * DAY)  # after 7 days; within 14
    sale(held[0].persona, "8.00", QUEUED_AT + DAY)
    campaign.fixture = {"ana": ana, "sent": sent, "failed": failed, "held": held}
    return campaign


def partial(client, campaign, query=""):
    return client.get(reverse("campaign_report_partial", args=[campaign.pk]) + query)


def outcomes(client, campaign, query=""):
    return client.get(reverse("campaign_outcomes_csv", args=[campaign.pk]) + query)


def test_the_partial_shows_outcomes_lift_and_charts(client, login, marketer_user, campaign):
    html = partial(login(client, marketer_user), campaign).content.decode()
    assert re.search(r'data-testid="kpi-sent-value">1<', html)
    assert re.search(r'data-testid="kpi-failed-value">1<', html)
    assert re.search(r'data-testid="kpi-waiting-value">1<', html)
    assert re.search(r'data-testid="kpi-held-out-value">2<', html)
    assert re.search(r'data-testid="kpi-clicks-value">1<', html)
    assert "2 clicks in all" in html
    # Three recipients (one bought $42.50) against two held out (one bought $8.00).
    assert "Recipients spent $10.17 more per person than the holdout over 7 days" in html
    assert "Everyone picked to receive the message counts as a recipient" in html
    for key in ("funnel", "conversion", "revenue"):
        assert f'data-testid="chart-{key}"' in html and f'data-testid="table-{key}"' in html
    figure = json.loads(re.search(r'<script id="campaign-figure-revenue-data" type="application/json">(.*?)'
                                  r'</script>', html, re.S).group(1))
    assert figure["data"][0]["y"] == [14.17, 4.0]
    assert "error_y" in figure["data"][0]
    # The picker swaps this partial; the CSV link keeps the window.
    assert f'hx-get="{reverse("campaign_report_partial", args=[campaign.pk])}"' in html
    assert 'hx-target="#campaign-report"' in html
    assert f'href="{reverse("campaign_outcomes_csv", args=[campaign.pk])}?days=7"' in html
    assert "Download outcomes (CSV)" in html
    assert "<script src=" not in html  # swapped in: the page already loaded the scripts


def test_the_window_picker(client, login, marketer_user, campaign):
    html = partial(login(client, marketer_user), campaign, "?days=14").content.decode()
    assert "Recipients spent $13.50 more per person than the holdout over 14 days" in html
    assert 'value="14"' in html and "Pick a window" not in html


@pytest.mark.parametrize("days", ["0", "91", "abc", "7.5", "-3"])
def test_a_bad_window_keeps_the_default(client, login, marketer_user, campaign, days):
    response = partial(login(client, marketer_user), campaign, f"?days={days}")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Pick a window of 1 to 90 days" in html
    assert 'name="days" id="campaign-report-days" min="1" max="90" step="1" value="7"' in html
    assert "over 7 days" in html


def test_the_campaign_page_include_loads_the_scripts(campaign):
    from django.template.loader import render_to_string

    from campaigns.views_report import report_context

    html = render_to_string("campaigns/_report.html", report_context(campaign))
    assert "js/chart-cards.js" in html and "plotly-cartesian.min.js" in html
    assert 'id="campaign-report"' in html


def test_a_campaign_with_no_holdout_says_why(client, login, marketer_user, company):
    campaign = campaign_make(company, name="No holdout", holdout_percent=0)
    for _ in range(3):
        recipient_add(campaign)
    html = partial(login(client, marketer_user), campaign).content.decode()
    assert "No holdout group: lift can&#x27;t be measured." in html
    assert 'data-testid="lift-table"' not in html


def test_outcomes_csv(client, login, marketer_user, campaign):
    response = outcomes(login(client, marketer_user), campaign)
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="campaign-{campaign.pk}-outcomes.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["Persona id", "Name", "To", "Group", "State", "Sent at", "Error code", "Error",
                       "Clicks", "Converted in window", "Revenue in window"]
    assert len(rows) == 6
    f = campaign.fixture
    by_id = {row[0]: row for row in rows[1:]}
    ana = by_id[str(f["ana"].pk)]
    # Formula-like text is quoted; a phone number stays as it is. Times in the company's clock.
    assert ana == [str(f["ana"].pk), "'=HYPERLINK(1) Ana", "+13035550100", "Recipient", "Delivered",
                   "2026-03-02 10:00:00", "", "", "2", "yes", "42.50"]
    failed = by_id[str(f["failed"].persona.pk)]
    assert failed[4:11] == ["Failed", "", "30006", "'-Landline or unreachable", "0", "no", "0.00"]
    held = by_id[str(f["held"][0].persona.pk)]
    assert held[3:5] == ["Holdout", "Held out"] and held[9:] == ["yes", "8.00"]
    assert AuditEvent.objects.filter(company=campaign.company, kind="campaign.outcomes_exported",
                                     object_id=campaign.pk).count() == 1


def test_outcomes_csv_follows_the_window(client, login, marketer_user, campaign):
    response = outcomes(login(client, marketer_user), campaign, "?days=14")
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    ana = next(row for row in rows if row[0] == str(campaign.fixture["ana"].pk))
    assert ana[-1] == "52.50"


def test_another_companys_campaign_is_not_found(client, login, marketer_user, other_company):
    theirs = campaign_make(other_company, name="Theirs")
    recipient_add(theirs)
    client = login(client, marketer_user)
    assert partial(client, theirs).status_code == 404
    assert outcomes(client, theirs).status_code == 404
    assert not AuditEvent.objects.filter(kind="campaign.outcomes_exported").exists()


@pytest.mark.parametrize("role, status", [(Role.ADMIN, 200), (Role.MARKETER, 200), (Role.BUDTENDER, 403)])
def test_by_role(client, login, company, campaign, role, status):
    user = MembershipFactory(company=company, role=role).user
    client = login(client, user)
    assert partial(client, campaign).status_code == status
    assert outcomes(client, campaign).status_code == status


def test_signed_out(client, campaign):
    response = partial(client, campaign)
    assert response.status_code == 302 and "/login/" in response["Location"]


def test_a_campaign_not_sent_yet(client, login, marketer_user, company):
    draft = campaign_make(company, name="Draft", queued_at=None, status="draft")
    response = partial(login(client, marketer_user), draft)
    html = response.content.decode()
    assert response.status_code == 200
    assert "Not sent yet: there is nothing to compare." in html
    assert 'data-testid="empty-funnel"' in html and 'data-testid="chart-revenue"' not in html
