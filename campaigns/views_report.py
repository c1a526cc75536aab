"""A campaign's report: the partial the window picker swaps in, and each recipient's outcome
as a CSV file."""

import csv

from django.http import Http404, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.views.decorators.http import require_GET

from stores.audit import audit_context, audit_record
from stores.exports import Echo, spreadsheet_cell
from stores.replica import reads_from_replica
from stores.tenancy import company_view

from .charts import report_charts
from .models import Campaign
from .report import campaign_report, clean_days, outcome_rows

OUTCOME_COLUMNS = ["Persona id", "Name", "To", "Group", "State", "Sent at", "Error code", "Error", "Clicks",
                   "Converted in window", "Revenue in window"]


def _campaign(request, campaign_id) -> Campaign:
    try:
        return Campaign.objects.select_related("company").get(company=request.company, pk=campaign_id)
    except Campaign.DoesNotExist:
        raise Http404("No such campaign.") from None


def report_context(campaign: Campaign, days=None, *, now=None) -> dict:
    """What _report.html needs; `days` as asked for (a bad value: the campaign's own window
    and a message saying so)."""
    days, error = clean_days(days, campaign.report_days)
    with reads_from_replica() as alias:
        report = campaign_report(campaign=campaign, days=days, now=now, using=alias)
    return {"campaign": campaign, "report": report, "charts": report_charts(report, report.currency),
            "days": days, "days_error": error}


@require_GET
@company_view("campaigns.view")
def campaign_report_partial(request, campaign_id):
    campaign = _campaign(request, campaign_id)
    context = report_context(campaign, request.GET.get("days"))
    context["swapped"] = True
    return render(request, "campaigns/_report.html", context)


@require_GET
@company_view("campaigns.view")
def campaign_outcomes_csv(request, campaign_id):
    """One row per recipient: what became of their message, their clicks, and what they
    bought in the report window. The download goes on the audit trail."""
    campaign = _campaign(request, campaign_id)
    days, _ = clean_days(request.GET.get("days"), campaign.report_days)
    audit_record(audit=audit_context(request), company=request.company, kind="campaign.outcomes_exported",
                 obj=campaign, extra={"days": days})
    zone = timezone.get_current_timezone()
    now = timezone.now()
    with reads_from_replica() as alias:
        rows = outcome_rows(campaign=campaign, days=days, now=now, using=alias)
    response = StreamingHttpResponse(_csv_lines(rows, zone), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="campaign-{campaign.pk}-outcomes.csv"'
    return response


def _csv_lines(rows, zone):
    writer = csv.writer(Echo())
    yield writer.writerow(OUTCOME_COLUMNS)
    for row in rows:
        sent_at = row.sent_at.astimezone(zone).strftime("%Y-%m-%d %H:%M:%S") if row.sent_at else ""
        values = [row.persona_id, row.name, row.to, row.group_label, row.state_label, sent_at, row.error_code,
                  row.error, row.clicks, row.converted, row.revenue]
        yield writer.writerow([spreadsheet_cell(value) for value in values])


