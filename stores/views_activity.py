"""Settings › Activity (admins): the company's audit trail, filtered, paged and as CSV."""

import csv
import zoneinfo

from django import forms
from django.core.paginator import Paginator
from django.http import StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET

from . import selectors
from .audit import audit_context, audit_record
from .exports import Echo, spreadsheet_cell
from .replica import reads_from_replica
from .tenancy import company_view

PAGE_SIZE = 50
TEMPLATE = "stores/activity.html"


class ActivityFilterForm(forms.Form):
    # Plain fields drawn as selects: a value that is not in the list (another company's
    # user, say) filters as asked and finds nothing, rather than being dropped.
    person = forms.IntegerField(required=False, widget=forms.Select)
    kind = forms.CharField(required=False, max_length=64, widget=forms.Select)
    object_type = forms.CharField(required=False, max_length=64, label="Object", widget=forms.Select)
    object = forms.CharField(required=False, max_length=100, label="Object id or name",
                             widget=forms.TextInput(attrs={"placeholder": "e.g. 1042 or Gold",
                                                           "type": "search"}))
    start = forms.DateField(required=False, label="From", widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(required=False, label="To", widget=forms.DateInput(attrs={"type": "date"}))

    def __init__(self, *args, choices: dict, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["person"].widget.choices = [("", "Anyone")] + list(choices["people"])
        self.fields["kind"].widget.choices = [("", "Any kind")] + [(k, k) for k in choices["kinds"]]
        self.fields["object_type"].widget.choices = [("", "Any object")] + [
            (t, t) for t in choices["object_types"]]

    def clean(self):
        data = super().clean()
        if data.get("start") and data.get("end") and data["end"] < data["start"]:
            self.add_error("end", "The end date is before the start date.")
        return data

    def filters(self) -> selectors.AuditFilters:
        """The valid fields as filters (an invalid one says why on the page and is left out)."""
        if not self.is_bound:
            return selectors.AuditFilters()
        self.is_valid()
        data = self.cleaned_data
        return selectors.AuditFilters(
            actor_id=data.get("person"), kind=data.get("kind") or "",
            object_type=data.get("object_type") or "", object_text=data.get("object") or "",
            start=data.get("start"), end=data.get("end"))


def _form(request) -> ActivityFilterForm:
    return ActivityFilterForm(request.GET or None,
                              choices=selectors.audit_filter_choices(company=request.company))


@require_GET
@company_view("settings.manage")
def activity(request):
    """Who changed what, newest first."""
    form = _form(request)
    events = selectors.audit_events(company=request.company, filters=form.filters())
    page = Paginator(events, PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context = {"form": form, "page": page, "query_string": params.urlencode()}
    template = TEMPLATE
    if request.htmx and request.htmx.target == "activity-results":
        template += "#activity-results"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


CSV_HEADER = ["when", "who", "email", "address", "kind", "object_type", "object_id", "object",
              "changes", "details"]


def _changes_text(event) -> str:
    return "; ".join(f"{field}: {before} → {after}" for field, before, after in event.change_rows)


def _csv_lines(events, zone):
    writer = csv.writer(Echo())
    yield writer.writerow(CSV_HEADER)
    for event in events.iterator(chunk_size=2000):
        with timezone.override(zone):  # moments in the changes, too, in the company's clock
            row = [timezone.localtime(event.created_at).isoformat(timespec="seconds"), event.actor_name,
                   event.actor_email, event.ip_address or "", event.kind, event.object_type,
                   event.object_id if event.object_id is not None else "", event.object_label,
                   _changes_text(event), "; ".join(f"{key}: {value}" for key, value in event.extra_rows)]
        yield writer.writerow([spreadsheet_cell(value) for value in row])


@require_GET
@company_view("settings.manage")
def activity_export(request):
    """The filtered trail as a CSV file; the download itself goes on the trail."""
    form = _form(request)
    filters = form.filters()
    with reads_from_replica() as alias:  # bound now: the rows are read after the view returns
        events = selectors.audit_events(company=request.company, filters=filters).using(alias)
    params = request.GET.copy()
    params.pop("page", None)
    recorded = audit_record(audit=audit_context(request), company=request.company, kind="audit.exported",
                            extra={"filters": params.urlencode(), "rows": events.count()})
    events = events.exclude(pk=recorded.pk)  # the file holds what was there when it was asked for
    # The rows are written after this view returns, outside the company's clock: say it.
    zone = zoneinfo.ZoneInfo(request.company.timezone)
    response = StreamingHttpResponse(_csv_lines(events, zone), content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime(timezone.now(), zone).strftime("%Y-%m-%d")
    response["Content-Disposition"] = f'attachment; filename="activity-{request.company.slug}-{stamp}.csv"'
    return response
