"""The Analytics page (HTMX filters, KPIs, charts, tables, CSV) and the home dashboard."""

from __future__ import annotations

import csv
from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.text import slugify

from integrations.models import SyncRun
from integrations.selectors import Status, integration_statuses, unmapped_location_count
from stores.audit import audit_context, audit_record
from stores.tenancy import company_view, role_can
from waitingroom.selectors import queue_access, queue_waiting_counts

from . import charts, selectors
from .forms import RANGES, AnalyticsFilterForm, comparison, preset_period
from .services import rollup_ensure_current

TEMPLATE = "analytics/page.html"
DASHBOARD_KPIS = ("net_sales", "orders", "average_order_value", "customers", "member_share")


def _form(request, stores: dict[int, str]) -> AnalyticsFilterForm:
    # Requests run in the company's time zone (CurrentCompanyMiddleware): today is theirs.
    return AnalyticsFilterForm(request.GET, stores=stores, now=timezone.localtime())


def _query(form: AnalyticsFilterForm) -> str:
    """The filters as a query string, for the CSV links (the same view, as a file)."""
    data = form.cleaned_data
    pairs = [("range", data["range"])]
    if data["range"] == "custom":
        pairs += [("start", data["period"].start.isoformat()), ("end", data["period"].end.isoformat())]
    pairs += [("store", s) for s in data["store"]]
    pairs += [(name, data[name]) for name in ("fulfillment", "customers") if data[name]]
    return urlencode(pairs)


@company_view("analytics.view")
def analytics_page(request):
    stores = selectors.store_names(company=request.company)
    form = _form(request, stores)
    context = {"form": form, "ranges": RANGES, "stores": stores,
               "currency": request.company.currency}
    if form.is_valid():
        filters = form.filters()
        rollup_ensure_current(company=request.company)
        report = selectors.sales_report(company=request.company, filters=filters)
        context.update(
            report=report, query=_query(form), period=charts.period_text(report),
            kpis=charts.kpis(report, request.company.currency),
            charts=[_chart_context(c, request.company.currency)
                    for c in charts.all_charts(report, context["stores"], request.company.currency)],
            chosen_stores=set(filters.store_ids),
        )
        status = 200
    else:
        context.update(errors=form.messages(), chosen_stores=set(), period=None)
        status = 400
    if request.htmx and not request.htmx.history_restore_request:
        return render(request, TEMPLATE + "#results", context)  # htmx swaps 200s only
    return render(request, TEMPLATE, context, status=status)


def _chart_context(chart: charts.Chart, currency: str) -> dict:
    rows, footer = chart.table(currency)
    return {"chart": chart, "rows": rows, "footer": footer, "figure_id": f"figure-{chart.key}",
            "data_id": f"figure-{chart.key}-data"}


@company_view("analytics.view")
def analytics_csv(request, chart_key):
    """One chart's data as a CSV file, for the same filters as the page."""
    if chart_key not in charts.CHARTS:
        raise Http404("No such chart.")
    stores = selectors.store_names(company=request.company)
    form = _form(request, stores)
    if not form.is_valid():
        return HttpResponse("\n".join(form.messages()) + "\n", status=400, content_type="text/plain")
    filters = form.filters()
    rollup_ensure_current(company=request.company)
    report = selectors.sales_report(company=request.company, filters=filters)
    currency = request.company.currency
    chart = charts.CHARTS[chart_key](report, stores, currency)
    period = filters.period
    name = f"{slugify(request.company.name)}-{chart_key}-{period.start}-to-{period.end}.csv"
    audit_record(audit=audit_context(request), company=request.company, kind="analytics.exported",
                 extra={"chart": chart_key, "file": name, "filters": _query(form)})
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    writer = csv.writer(response)
    writer.writerow(chart.csv_header(currency))
    writer.writerows(chart.csv_rows())
    return response


@login_required
def home(request):
    """The signed-in user's start page: the last 30 days at a glance (for those who may see
    sales), the latest syncs and what needs attention."""
    if request.membership is None:
        return render(request, "stores/no_company.html", status=403)
    company, role = request.company, request.membership.role
    context = {"can_sales": role_can(role, "analytics.view"),
               "can_integrations": role_can(role, "integrations.manage")}
    if context["can_sales"]:
        now = timezone.localtime()
        period = preset_period("30d", now.date())
        previous, until = comparison("30d", period, now)
        filters = selectors.Filters(period=period, previous_period=previous, previous_until=until)
        rollup_ensure_current(company=company)
        report = selectors.headline(company=company, filters=filters)
        context.update(kpis=charts.kpis(report, company.currency, only=DASHBOARD_KPIS),
                       period=charts.period_text(report))
    if role_can(role, "queue.view"):
        stores = queue_access(membership=request.membership).stores
        context["waiting"] = sum(queue_waiting_counts(stores=stores).values()) if stores else None
    if context["can_sales"] or context["can_integrations"]:
        context["runs"] = (SyncRun.objects.filter(company=company).select_related("connection", "credential")
                           .order_by("-created_at", "-id")[:6])
        statuses = integration_statuses(company=company)
        context["failing"] = [c for status in statuses.values() for c in status.connections
                              if c.state in (Status.FAILING, Status.NEEDS_LOOK)]
        if not role_can(role, "settings.manage"):  # admins see it on every page already
            context["unmapped"] = unmapped_location_count(company=company)
    return render(request, "analytics/dashboard.html", context)
