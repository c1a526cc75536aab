"""The merchant's pages for report connections: list, form, detail, header and store
mappings, sync runs and row errors. Thin: every read goes through the selectors (scoped by
the request's company, so another company's id is a 404) and every write through a service."""

import csv
import io
import re
import secrets

from django.contrib import messages
from django.core.cache import cache
from django.core.paginator import Paginator
from django.db import transaction
from django.http import Http404, HttpResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from stores.audit import audit_context, audit_record
from stores.errors import DomainError
from stores.tenancy import company_view, role_can

from . import fields as F
from . import selectors
from .connectors import report_choices, report_connectors
from .forms import (
    ConnectionDeleteForm,
    ConnectionForm,
    ProviderChoiceForm,
    StoreMappingForm,
    field_choices,
)
from .models import ImportedFile, SyncRun
from .providers import ProviderError, provider_class, provider_for
from .services.connections import (
    connection_create,
    connection_delete,
    connection_freeze,
    connection_header_map_save,
    connection_test,
    connection_test_start,
    connection_update,
    store_mapping_set,
    test_is_going,
)
from .services.sync import imported_file_purge, progress_key, sync_run_create
from .tasks import connection_sync

ROW_ERRORS_PAGE_SIZE = 50


def _redirect(request, url):
    """After a successful POST: a normal redirect, or an HX-Redirect for htmx."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _add_error(form, exc: DomainError) -> None:
    field = exc.extra.get("field")
    form.add_error(field if field in form.fields else None, exc.message)


def _detail_url(connection) -> str:
    return reverse("connection_detail", args=[connection.pk])


# -- list, create, edit ------------------------------------------------------------------

@company_view("integrations.manage")
def connection_list(request):
    return render(request, "integrations/connection_list.html", {
        "connections": selectors.connections_overview(company=request.company),
        "provider_form": ProviderChoiceForm(),
    })


def _form_page(request, form, connection=None):
    """htmx swaps only 2xx responses: an htmx re-render with errors is a 200 of the form
    alone, a plain POST with errors a 400 page."""
    template = "integrations/connection_form.html"
    status = 400 if form is not None and form.errors else 200
    if request.htmx and form is not None:
        template += "#connection-form"
        status = 200
    return render(request, template, {"form": form, "connection": connection,
                                      "provider_form": ProviderChoiceForm(),
                                      "report_choices": report_choices()}, status=status)


@company_view("integrations.manage")
def connection_create_view(request):
    provider = request.POST.get("provider") or request.GET.get("provider")
    if provider not in {cls.key for cls in report_connectors()}:
        return _form_page(request, None)  # which kind of source, first
    form = ConnectionForm(request.POST if request.method == "POST" else None,
                          company=request.company, provider=provider)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            connection = connection_create(
                company=request.company, name=data["name"], provider=provider,
                settings=form.settings_data(), credentials=form.credentials_data(),
                default_store=data["default_store"], enroll_new_customers=data["enroll_new_customers"],
                sync_time=data["sync_time"], audit=audit_context(request))
        except DomainError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Connection “{connection.name}” added. Test it, then sync.")
            return _redirect(request, _detail_url(connection))
    return _form_page(request, form)


@company_view("integrations.manage")
def connection_edit(request, connection_id):
    connection = selectors.connection_get(company=request.company, connection_id=connection_id)
    form = ConnectionForm(request.POST if request.method == "POST" else None, company=request.company,
                          provider=connection.provider, connection=connection)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            connection_update(
                connection=connection, name=data["name"], settings=form.settings_data(),
                credentials=form.credentials_data(), default_store=data["default_store"],
                enroll_new_customers=data["enroll_new_customers"], sync_time=data["sync_time"],
                audit=audit_context(request))
        except DomainError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Connection “{connection.name}” saved.")
            return _redirect(request, _detail_url(connection))
    return _form_page(request, form, connection)


@require_GET
@company_view("integrations.manage")
def report_template_csv(request, provider):
    """An empty report with exactly the headers a file of this provider should have."""
    if provider not in {cls.key for cls in report_connectors()}:
        raise Http404("No such provider.")
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{provider}-report-template.csv"'
    csv.writer(response).writerow(F.template_headers(provider))
    return response


# -- detail and its actions --------------------------------------------------------------

def _detail_context(request, connection, **extra) -> dict:
    cls = provider_class(connection.provider)
    runs = list(selectors.sync_runs(connection=connection, limit=10))
    return {
        "connection": connection,
        "provider_label": cls.label,
        "settings_rows": cls.settings_rows(connection.settings, company_slug=request.company.slug),
        "credential_rows": [(label, connection.credentials_hint.get(name, ""))
                            for name, label, _ in cls.credential_fields],
        "custom_headers": _custom_headers(connection),
        "store_mapping_count": connection.store_mappings.count(),
        "runs": runs,
        "active_run": next((r for r in runs if r.is_active), None),
        "files": selectors.connection_files(connection=connection),
        "can_purge": role_can(request.membership.role, "integrations.purge"),
        "required_headers": cls.required_headers,
    } | extra


def _custom_headers(connection) -> list[tuple[str, str]]:
    """The saved header mappings a file's names alone would not give: (header, field label)."""
    return [(header, F.BY_NAME[field].label if field else "ignored")
            for header, field in connection.header_map.items() if field != F.suggest(header)]


@company_view("integrations.manage")
def connection_detail(request, connection_id):
    connection = selectors.connection_get(company=request.company, connection_id=connection_id)
    if request.htmx and request.htmx.target == "test-result":  # the test result polls itself
        response = render(request, "integrations/connection_detail.html#test-result",
                          {"connection": connection, **_test_context(connection)})
    else:
        response = render(request, "integrations/connection_detail.html",
                          _detail_context(request, connection, **_test_context(connection)))
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_POST
@company_view("integrations.manage")
def connection_test_view(request, connection_id):
    """Reach the source and say exactly what failed, if anything. A folder on the server is
    read at once; S3 and OneDrive are reached in the background (the button answers at once
    even when they hang) and the result follows the test."""
    connection = selectors.connection_get(company=request.company, connection_id=connection_id)
    if provider_class(connection.provider).test_at_once:
        try:
            ok, message = connection_test(connection=connection)
        except DomainError as exc:  # e.g. a secret that can no longer be decrypted
            ok, message = False, exc.message
        result = {"ok": ok, "message": f"Connected: {message}" if ok else message}
    else:
        connection = connection_test_start(connection=connection)
        if not request.htmx:
            return redirect(_detail_url(connection))
        result = None
    if request.htmx:
        return render(request, "integrations/connection_detail.html#test-result",
                      {"connection": connection, **_test_context(connection, result)})
    return render(request, "integrations/connection_detail.html",
                  _detail_context(request, connection, **_test_context(connection, result)))


def _test_context(connection, result: dict | None = None) -> dict:
    """The test result as the page shows it: the folder's answer, or the background test's
    (polling while it is going)."""
    if result is not None:
        return {"test": result, "testing": False}
    testing = test_is_going(connection)
    test = None if testing or connection.test_ok is None else \
        {"ok": connection.test_ok, "message": connection.test_message}
    return {"test": test, "testing": testing}


@require_POST
@company_view("integrations.manage")
def connection_sync_now(request, connection_id):
    connection = selectors.connection_get(company=request.company, connection_id=connection_id)
    try:
        run = sync_run_create(connection=connection, trigger=SyncRun.Trigger.MANUAL,
                              audit=audit_context(request))
    except DomainError as exc:  # frozen, or a run is already queued or running
        if request.htmx:
            return render(request, "integrations/connection_detail.html#sync-error", {
                "connection": connection, "sync_error": exc.message,
                "busy_run_id": exc.extra.get("run_id")})
        messages.error(request, exc.message)
        return redirect(_detail_url(connection))
    transaction.on_commit(lambda: connection_sync.delay(run.pk))
    return _redirect(request, reverse("sync_run_detail", args=[run.pk]))


@require_POST
@company_view("integrations.manage")
def connection_freeze_view(request, connection_id):
    connection = selectors.connection_get(company=request.company, connection_id=connection_id)
    frozen = request.POST.get("frozen") == "1"
    connection_freeze(connection=connection, frozen=frozen, audit=audit_context(request))
    messages.success(request, f"{connection.name} is frozen: it will not sync until you unfreeze it."
                     if frozen else f"{connection.name} is unfrozen: it syncs again every night.")
    return _redirect(request, _detail_url(connection))


@company_view("integrations.manage")
def connection_delete_view(request, connection_id):
    connection = selectors.connection_get(company=request.company, connection_id=connection_id)
    form = ConnectionDeleteForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        name = connection.name
        keep = form.cleaned_data["keep_data"] == "keep"
        removed = connection_delete(connection=connection, keep_data=keep, audit=audit_context(request))
        messages.success(request, f"Connection “{name}” deleted; its customers and sales stay." if keep else
                         f"Connection “{name}” deleted with its data: {removed} sale{'s' * (removed != 1)} "
                         "removed and their points taken back.")
        return _redirect(request, reverse("integration_catalog"))
    return render(request, "integrations/connection_delete.html",
                  {"connection": connection, "form": form,
                   "sales_count": connection.source.transactions.count()},
                  status=400 if form.errors else 200)


# -- header mapping ----------------------------------------------------------------------

SAMPLE_MAX_BYTES = 5 * 1024 * 1024  # far more than 20 rows need
SAMPLE_TTL = 60 * 60
TOKEN_RE = re.compile(r"^[0-9a-f]{32}$")


def _sample_key(connection, token: str) -> str:
    return f"report-sample:{connection.company_id}:{connection.pk}:{token}"


def _sample_save(connection, name: str, data: bytes) -> str:
    """Keep a sample between requests in the shared cache; the page carries only the token."""
    token = secrets.token_hex(16)
    cache.set(_sample_key(connection, token), {"name": name, "data": data}, SAMPLE_TTL)
    return token


def _sample_load(connection, token: str) -> dict | None:
    if not TOKEN_RE.match(token or ""):
        return None
    return cache.get(_sample_key(connection, token))


def _sample_from_request(request, connection) -> tuple[str, bytes]:
    """The uploaded sample, or the first 5 MB of the picked file in the source."""
    upload = request.FILES.get("sample")
    if upload:
        return upload.name, upload.read(SAMPLE_MAX_BYTES)
    key = request.POST.get("source_file", "")
    if not key:
        raise DomainError("Upload a sample file or pick one of the files in the source.")
    try:
        provider = provider_for(connection)
        file = next((f for f in provider.list_files() if f.key == key), None)
        if file is None:
            raise DomainError(f"{key} is no longer in the source; pick another file.")
        stream = provider.open(file)
        try:
            return file.key, stream.read(SAMPLE_MAX_BYTES)
        finally:
            stream.close()
    except ProviderError as exc:
        raise DomainError(exc.message) from exc


def _mapping_context(connection, sample: dict | None, token: str, choices: dict[str, str] | None,
                     error: str = "", error_header: str = "") -> dict:
    """The mapping table and the preview of the first 20 rows, under `choices`
    (header -> field; None: the connection's saved map)."""
    context = {"connection": connection, "token": token, "error": error, "preview": None}
    if sample is None:
        return context
    preview = selectors.report_preview(connection=connection, stream=io.BytesIO(sample["data"]),
                                       file_name=sample["name"], header_map=choices)
    labels = {f.name: f.label for f in F.FIELDS}
    columns = [{
        "index": i, "header": header, "field": preview.mapped.get(i, ""),
        "field_label": labels.get(preview.mapped.get(i, ""), ""),
        "suggested_label": labels.get(preview.suggested.get(i, ""), ""),
        "error": error if error_header and header == error_header else "",
    } for i, header in enumerate(preview.headers)]
    rows = [{
        "number": row.row_number, "too_old": row.too_old,
        "cells": [{"value": row.cells[i] if i < len(row.cells) else "", "problem": row.problems.get(i, "")}
                  for i in range(len(preview.headers))],
    } for row in preview.rows]
    context.update({
        "preview": preview, "columns": columns, "rows": rows, "choices": field_choices(),
        "matches_by_name": (preview.headers and not preview.missing_required
                            and F.resolve_headers(preview.headers, {}) == preview.mapped),
        "rows_with_problems": sum(1 for row in preview.rows if row.problems),
        "unmapped_required": _unmapped_required(connection, preview),
        "delimiter_label": {",": "comma", ";": "semicolon", "\t": "tab"}.get(preview.delimiter,
                                                                          repr(preview.delimiter)),
    })
    return context


def _unmapped_required(connection, preview) -> list[dict]:
    """Each required field no column is mapped to, with the unmapped columns likely to be it."""
    free = [h for i, h in enumerate(preview.headers) if i not in preview.mapped and h]
    mapped = set(preview.mapped.values())
    return [{"header": F.required_headers(connection.provider)[F.REQUIRED.index(name)],
             "likely": F.likely_headers(name, free)}
            for name in F.REQUIRED if name not in mapped]


@company_view("integrations.manage")
def header_mapping(request, connection_id):
    """Pick or upload a sample, map its headers, see the first rows as they would import."""
    connection = selectors.connection_get(company=request.company, connection_id=connection_id)
    sample, token, choices, error, error_header = None, "", None, "", ""
    if request.method == "POST":
        token = request.POST.get("token", "")
        if token:  # a dropdown changed, or "Save mapping"
            sample = _sample_load(connection, token)
            if sample is None:
                error, token = "The sample has expired; pick or upload it again.", ""
            else:
                headers = selectors.report_preview(connection=connection, stream=io.BytesIO(sample["data"]),
                                                   file_name=sample["name"], limit=0).headers
                choices = {h: request.POST.get(f"field-{i}", "") for i, h in enumerate(headers)}
                if "save" in request.POST:
                    try:
                        connection_header_map_save(connection=connection, mapping=choices,
                                                   audit=audit_context(request))
                    except DomainError as exc:
                        error, error_header = exc.message, exc.extra.get("field", "")
                    else:
                        messages.success(request, f"Header mapping of {connection.name} saved.")
                        return _redirect(request, _detail_url(connection))
        else:  # a new sample
            try:
                name, data = _sample_from_request(request, connection)
            except DomainError as exc:
                error = exc.message
            else:
                token = _sample_save(connection, name, data)
                sample = {"name": name, "data": data}
    context = _mapping_context(connection, sample, token, choices, error, error_header)
    status = 400 if error and request.method == "POST" else 200
    if request.htmx and request.method == "POST":
        response = render(request, "integrations/header_mapping.html#mapping", context)
    else:
        context |= _source_files(connection) | {"custom_headers": _custom_headers(connection)}
        response = render(request, "integrations/header_mapping.html", context, status=status)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _source_files(connection) -> dict:
    try:
        return {"source_files": provider_for(connection).list_files(), "source_error": ""}
    except ProviderError as exc:
        return {"source_files": [], "source_error": exc.message}
    except DomainError as exc:
        return {"source_files": [], "source_error": exc.message}


# -- store mappings ----------------------------------------------------------------------

def _store_mappings_context(connection, form=None) -> dict:
    stores = list(connection.company.stores.order_by("name"))
    return {
        "connection": connection,
        "mappings": connection.store_mappings.select_related("store").order_by("external_location_id"),
        "unknown": selectors.unknown_store_values(connection=connection),
        "stores": stores,
        "form": form or StoreMappingForm(company=connection.company),
    }


@company_view("integrations.manage")
def store_mappings(request, connection_id):
    """Location values in the reports -> our stores; plus the values the last imports
    did not know, to map in one click."""
    connection = selectors.connection_get(company=request.company, connection_id=connection_id)
    form = None
    if request.method == "POST":
        form = StoreMappingForm(request.POST, company=request.company)
        if form.is_valid():
            value, store = form.cleaned_data["external_location_id"], form.cleaned_data["store"]
            try:
                store_mapping_set(connection=connection, external_location_id=value, store=store,
                                  audit=audit_context(request))
            except DomainError as exc:
                _add_error(form, exc)
            else:
                note = (f"“{value}” now means {store.name}." if store
                        else f"“{value}” is no longer mapped.")
                if not request.htmx:
                    messages.success(request, note)
                    return redirect("connection_store_mappings", connection_id=connection.pk)
                context = _store_mappings_context(connection) | {"note": note}
                return render(request, "integrations/store_mappings.html#mappings", context)
    context = _store_mappings_context(connection, form)
    if request.htmx and request.method == "POST":
        return render(request, "integrations/store_mappings.html#mappings", context)
    return render(request, "integrations/store_mappings.html", context,
                  status=400 if form is not None and form.errors else 200)


# -- runs, files, row errors -------------------------------------------------------------

@require_GET
@company_view("integrations.manage")
def sync_run_detail(request, run_id):
    """A run's counts; while it is queued or running the status block polls itself."""
    run = selectors.sync_run_get(company=request.company, run_id=run_id)
    context = {
        "run": run, "connection": run.connection,
        "rows_read": cache.get(progress_key(run.pk)) if run.state == SyncRun.State.RUNNING else None,
        "files": selectors.sync_run_files(run=run),
        "rejected_again": selectors.sync_run_rejected_again(run=run),
        "can_purge": role_can(request.membership.role, "integrations.purge"),
    }
    template = "integrations/sync_run.html"
    if request.htmx and request.htmx.target == "run-status":
        template += "#run-status"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_POST
@company_view("integrations.manage")
def sync_run_again(request, run_id):
    """"Run again" on an interrupted or failed run: a new run of the same, like Sync now."""
    run = selectors.sync_run_get(company=request.company, run_id=run_id)
    try:
        again = sync_run_create(connection=run.connection, credential=run.credential,
                                trigger=SyncRun.Trigger.MANUAL, audit=audit_context(request))
    except DomainError as exc:  # frozen, or another run is already queued or running
        messages.error(request, exc.message)
        return _redirect(request, reverse("sync_run_detail", args=[run.pk]))
    transaction.on_commit(lambda: connection_sync.delay(again.pk))
    return _redirect(request, reverse("sync_run_detail", args=[again.pk]))


@require_GET
@company_view("integrations.manage")
def row_errors(request, file_id):
    imported_file = selectors.imported_file_get(company=request.company, file_id=file_id)
    page = Paginator(selectors.imported_file_row_errors(imported_file=imported_file),
                     ROW_ERRORS_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "integrations/row_errors.html", {
        "file": imported_file, "connection": imported_file.connection, "page": page})


class _Echo:
    def write(self, value):
        return value


@require_GET
@company_view("integrations.manage")
def row_errors_csv(request, file_id):
    """The rejected rows as they were in the file, plus why each was rejected."""
    imported_file = selectors.imported_file_get(company=request.company, file_id=file_id)
    width = len(imported_file.headers)
    writer = csv.writer(_Echo())

    def lines():
        yield writer.writerow([*imported_file.headers, "error"])
        errors = selectors.imported_file_row_errors(imported_file=imported_file)
        for error in errors.iterator(chunk_size=2000):
            cells = list(error.row) + [""] * (width - len(error.row))
            reason = f"{error.column}: {error.reason}" if error.column else error.reason
            yield writer.writerow([*cells, reason])

    audit_record(audit=audit_context(request), company=request.company, kind="imported_file.errors_exported",
                 obj=imported_file, extra={"rows": imported_file.rows_rejected})
    stem = imported_file.name.rsplit(".", 1)[0] or "report"
    response = StreamingHttpResponse(lines(), content_type="text/csv; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{_safe_filename(stem)}-rejected-rows.csv"'
    return response


def _safe_filename(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-") or "report"


@company_view("integrations.purge")
def imported_file_purge_view(request, file_id):
    """Support's action for a file deleted from OneDrive: remove the data it brought in."""
    imported_file = selectors.imported_file_get(company=request.company, file_id=file_id)
    connection = imported_file.connection
    if imported_file.state != ImportedFile.State.REMOVED:
        messages.error(request, f"{imported_file.name} is {imported_file.get_state_display().lower()}: "
                                "only a file removed from the source can have its data purged.")
        return redirect(_detail_url(connection))
    if request.method == "POST":
        try:
            removed = imported_file_purge(imported_file=imported_file, audit=audit_context(request))
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"The data of {imported_file.name} is removed: {removed} "
                                      f"sale{'s' * (removed != 1)} deleted and their points taken back.")
        return _redirect(request, _detail_url(connection))
    return render(request, "integrations/file_purge.html", {
        "file": imported_file, "connection": connection,
        "sales_count": imported_file.transactions})
