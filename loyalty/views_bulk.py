"""Bulk actions on the personas list: the confirmation page that states the count, the
run (now, or queued for a worker), and the CSV export."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from urllib.parse import urlencode

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.http import QueryDict, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.text import slugify

from stores.audit import audit_context
from stores.errors import DomainError
from stores.exports import Echo, spreadsheet_cell
from stores.tenancy import company_view, role_can

from . import selectors
from .models import PersonaBulkJob
from .services.bulk import (
    BULK_AT_ONCE,
    BULK_TARGETS,
    bulk_job_start,
    personas_export_record,
    personas_export_rows,
)
from .views import persona_filters_from


@dataclass(frozen=True)
class BulkAction:
    key: str
    label: str  # the button on the list
    permissions: tuple[str, ...]


# Editing personas (enrolling them) opens the bulk bar; each action also needs its own right.
BULK_ACTIONS = {
    a.key: a for a in [
        BulkAction("enrol", "Enrol in loyalty", ("personas.enroll",)),
        BulkAction("audience_add", "Add to audience", ("personas.enroll", "audiences.manage")),
        BulkAction("audience_remove", "Remove from audience", ("personas.enroll", "audiences.manage")),
        BulkAction("export", "Export CSV", ("personas.enroll", "personas.export")),
    ]
}
FILTER_FIELDS = ("q", "member", "store", "source", "sort", "dir")
SAMPLE_SIZE = 5  # names the confirmation shows


def bulk_actions_for(role) -> list[BulkAction]:
    return [a for a in BULK_ACTIONS.values() if all(role_can(role, p) for p in a.permissions)]


def _plural(n: int) -> str:
    return f"{n:,} persona{'s' if n != 1 else ''}"


def bulk_question(action: str, count: int) -> str:
    return {
        "enrol": f"Enrol {_plural(count)} in the loyalty program?",
        "audience_add": f"Add {_plural(count)} to a static audience?",
        "audience_remove": f"Remove {_plural(count)} from a static audience?",
        "export": f"Export {_plural(count)} as CSV?",
    }[action]


def bulk_job_summary(job: PersonaBulkJob) -> str:
    """What the job did, in the merchant's words."""
    done = _plural(job.changed)
    n = job.skipped
    were = f"{n:,} {'were' if n != 1 else 'was'}"
    if job.action == "enrol":
        text = f"Enrolled {done} in the loyalty program."
        if n:
            text += f" {were} already {'members' if n != 1 else 'a member'}, left as they were."
    elif job.action == "audience_add":
        text = f"Added {done} to “{job.target_label}”." + (f" {were} already in it." if n else "")
    else:
        text = f"Removed {done} from “{job.target_label}”." + (f" {were} not in it." if n else "")
    if job.state == PersonaBulkJob.State.FAILED:
        return f"Stopped after {job.processed:,} of {job.total:,}: {job.error} {text}"
    return text


JOB_TITLES = {  # action -> (while it runs, once it is over)
    "enrol": ("Enrolling {many} in the loyalty program", "Enrolment of {many} in the loyalty program"),
    "audience_add": ("Adding {many} to “{audience}”", "{many} added to “{audience}”"),
    "audience_remove": ("Removing {many} from “{audience}”", "{many} removed from “{audience}”"),
}


def bulk_job_title(job: PersonaBulkJob) -> str:
    running, over = JOB_TITLES[job.action]
    return (over if job.is_over else running).format(many=_plural(job.total), audience=job.target_label)


def _selection(request, data: QueryDict):
    """(personas, selection fields to carry on, the list's query string) of a bulk request."""
    filters = persona_filters_from(request, data)
    all_matching = data.get("all") == "1"
    ids = [int(v) for v in data.getlist("persona") if v.isdigit()]
    personas = selectors.personas_selected(company=request.company, filters=filters, persona_ids=ids,
                                           all_matching=all_matching)
    list_query = urlencode([(k, data[k]) for k in FILTER_FIELDS if data.get(k)])
    carried = [(k, data[k]) for k in FILTER_FIELDS if data.get(k)]
    carried += [("all", "1")] if all_matching else [("persona", str(i)) for i in sorted(set(ids))]
    return personas, carried, list_query


def _back(list_query: str) -> str:
    return reverse("persona_list") + (f"?{list_query}" if list_query else "")


@company_view("personas.view")
def persona_bulk(request):
    """GET: the question with the count. POST: do it."""
    data = request.POST if request.method == "POST" else request.GET
    action = BULK_ACTIONS.get(data.get("action", ""))
    if action is None or action not in bulk_actions_for(request.membership.role):
        raise PermissionDenied("Your role cannot do this to personas.")
    personas, carried, list_query = _selection(request, data)
    count = personas.count()
    if not count:
        messages.error(request, "Select at least one persona first.")
        return redirect(_back(list_query))
    targets = BULK_TARGETS["audience"].choices(request.company) if action.key.startswith("audience") else []
    error = ""
    if request.method == "POST":
        try:
            if action.key == "export":
                return _export(request, personas, count)
            return _run(request, action.key, personas, list_query, targets)
        except DomainError as exc:
            error = exc.message
    return render(request, "loyalty/persona_bulk_confirm.html", {
        "action": action, "count": count, "question": bulk_question(action.key, count),
        "sample": [p.display_name for p in personas[:SAMPLE_SIZE]], "more": max(count - SAMPLE_SIZE, 0),
        "carried": carried, "back": _back(list_query), "targets": targets, "error": error,
        "chosen_target": data.get("audience", ""), "new_name": data.get("new_audience", ""),
        "background": action.key != "export" and count > BULK_AT_ONCE,
    }, status=400 if error else 200)


def _run(request, action: str, personas, list_query: str, targets):
    audit = audit_context(request)
    target_id, target_label = None, ""
    if action.startswith("audience"):
        chosen = request.POST.get("audience", "")
        new_name = request.POST.get("new_audience", "").strip()
        if action == "audience_add" and chosen == "new":
            target_id, target_label = BULK_TARGETS["audience"].create(
                company=request.company, name=new_name, user=request.user, audit=audit)
        else:
            target_id, target_label = next(((pk, name) for pk, name in targets if str(pk) == chosen),
                                           (None, ""))
            if target_id is None:
                raise DomainError("Choose the audience.")
    job = bulk_job_start(company=request.company, action=action,
                         persona_ids=personas, target_id=target_id,
                         target_label=target_label, audit=audit)
    if job.in_background:
        messages.success(request, f"{bulk_job_title(job)}: this runs in the background; "
                                  "its progress shows below.")
    elif job.state == PersonaBulkJob.State.FAILED:
        messages.error(request, bulk_job_summary(job))
    else:
        messages.success(request, bulk_job_summary(job))
    return redirect(_back(list_query))


def _export(request, personas, count: int):
    personas_export_record(company=request.company, count=count, audit=audit_context(request))
    writer = csv.writer(Echo())
    rows = (writer.writerow([spreadsheet_cell(v) for v in row])
            for row in personas_export_rows(personas=personas))
    response = StreamingHttpResponse(rows, content_type="text/csv; charset=utf-8")
    stamp = timezone.localtime().strftime("%Y-%m-%d")
    response["Content-Disposition"] = (f'attachment; filename="{slugify(request.company.name)}-personas-'
                                       f'{stamp}.csv"')
    return response
