"""Audience pages: the list with its templates, the builder (HTMX), and the CSV export."""

from __future__ import annotations

import csv
import logging

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.db import DatabaseError
from django.db import transaction as db
from django.http import Http404, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.text import slugify
from django.views.decorators.http import require_POST

from stores.audit import audit_context, audit_record
from stores.errors import DomainError
from stores.exports import Echo
from stores.exports import spreadsheet_cell as _cell
from stores.tenancy import company_view, role_can

from . import selectors
from .compiler import empty_rules
from .forms import (
    AudienceForm,
    EditorBuilder,
    RulesJsonError,
    apply_action,
    describe_error,
    refused_parts,
    trait_groups,
    tree_from_request,
)
from .services import (
    AudienceRefused,
    audience_count,
    audience_delete,
    audience_preview,
    audience_refresh,
    audience_save,
    audiences_refresh_all,
    persona_facts_refresh,
    rules_validate,
)
from .templates import audience_from_template, template_get, templates_for

log = logging.getLogger(__name__)
TEMPLATE = "audiences/builder.html"
UNREADABLE = "The rules could not be read: check each condition has a trait and a value."


# --- list ----------------------------------------------------------------------------------------------

def _took(ms: int | None) -> str:
    if ms is None:
        return "—"
    return f"{ms} ms" if ms < 1000 else f"{ms / 1000:.1f} s"


@company_view("audiences.view")
def audience_list(request):
    audiences = list(selectors.audiences_list(company=request.company))
    for audience in audiences:
        audience.took = _took(audience.calculation_ms)
    return render(request, "audiences/list.html", {
        "audiences": audiences,
        "templates": templates_for(company=request.company),
        "can_manage": role_can(request.membership.role, "audiences.manage"),
    })


@require_POST
@company_view("audiences.manage")
def audience_from_template_view(request, key):
    if template_get(company=request.company, key=key) is None:
        raise Http404("No such template.")
    audience = audience_from_template(company=request.company, key=key, user=request.user,
                                      audit=audit_context(request))
    if audience.error:
        messages.error(request, f"“{audience.name}” was created, but calculating it failed: {audience.error}")
    else:
        messages.success(request, f"“{audience.name}” created: {audience.size:,} "
                                  f"customer{'s' if audience.size != 1 else ''}.")
    return redirect("audience_builder", audience_id=audience.pk)


@require_POST
@company_view("audiences.manage")
def audiences_refresh_all_view(request):
    outcome = audiences_refresh_all(company=request.company)
    text = f"Recalculated {outcome['calculated']} audience{'s' if outcome['calculated'] != 1 else ''}."
    if outcome["failed"]:
        messages.error(request, f"{text} {outcome['failed']} failed: see the error column.")
    else:
        messages.success(request, text)
    return redirect("audience_list")


@require_POST
@company_view("audiences.manage")
def audience_refresh_view(request, audience_id):
    audience = selectors.audience_get(company=request.company, audience_id=audience_id)
    persona_facts_refresh(company=request.company)
    try:
        audience = audience_refresh(audience=audience)
    except DomainError as exc:
        messages.error(request, f"“{audience.name}” could not be calculated: {exc.message}")
    else:
        messages.success(request, f"“{audience.name}” recalculated: {audience.size:,} "
                                  f"customer{'s' if audience.size != 1 else ''}.")
    return redirect("audience_list")


@require_POST
@company_view("audiences.manage")
def audience_delete_view(request, audience_id):
    audience = selectors.audience_get(company=request.company, audience_id=audience_id)
    try:
        audience_delete(audience=audience, audit=audit_context(request))
    except DomainError as exc:
        messages.error(request, f"“{audience.name}” was not deleted: {exc.message}")
    else:
        messages.success(request, f"Audience “{audience.name}” deleted.")
    return redirect("audience_list")


# --- builder -------------------------------------------------------------------------------------------

def _urls(audience) -> dict:
    if audience is None:
        return {"save_url": reverse("audience_new"), "editor_url": reverse("audience_editor_new"),
                "count_url": reverse("audience_count_new"), "facts_url": reverse("audience_facts_new")}
    args = {"audience_id": audience.pk}
    return {"save_url": reverse("audience_builder", kwargs=args),
            "editor_url": reverse("audience_editor", kwargs=args),
            "count_url": reverse("audience_count", kwargs=args),
            "facts_url": reverse("audience_facts", kwargs=args)}


def _audience_or_none(request, audience_id):
    if audience_id is None:
        return None
    return selectors.audience_get(company=request.company, audience_id=audience_id)


def _others(request, audience):
    return selectors.audiences_other(company=request.company, exclude_id=audience.pk if audience else None)


def _posted_tree(request, audience):
    """The tree the request carries, and a message when it cannot even be read."""
    try:
        return tree_from_request(request.POST, audiences=_others(request, audience)), ""
    except RulesJsonError as exc:
        return None, str(exc)


def count_context(request, audience, tree, *, error: str = "") -> dict:
    """The live count and preview of a tree, or why there is none. Never raises."""
    context = {"count": None, "preview": [], "count_error": error,
               "total": selectors.persona_total(company=request.company)}
    if error:
        return context
    try:
        with db.atomic():
            cleaned = rules_validate(company=request.company, rules=tree, audience=audience)
            context["count"] = audience_count(company=request.company, rules=cleaned)
            context["preview"] = audience_preview(company=request.company, rules=cleaned)
    except AudienceRefused as exc:
        context["error_path"], context["count_error"] = describe_error(tree, *refused_parts(exc))
    except (TypeError, ValueError, AttributeError, KeyError):
        # The validator is meant to turn every bad tree into an AudienceRefused; a tree it
        # chokes on is still the marketer's typo, not a server error.
        log.exception("audience tree the validator could not read: %r", tree)
        context["count_error"] = UNREADABLE
    except DatabaseError:
        log.exception("audience count failed")
        context["count_error"] = "The count could not be calculated just now. Try again in a moment."
    if context["count"] is not None and context["total"]:
        context["share"] = round(100 * context["count"] / context["total"], 1)
    return context


def builder_context(request, audience, tree, *, form=None, form_error: str = "", new_path=None,
                    count: dict | None = None) -> dict:
    company = request.company
    others = _others(request, audience)
    count = count if count is not None else count_context(request, audience, tree)
    error_path = count.get("error_path", "")

    def suggest(kind, key=""):
        return selectors.suggestions(company=company, kind=kind, key=key)

    builder = EditorBuilder(suggest=suggest, stores=selectors.store_choices(company=company),
                            audiences=others, error_path=error_path, error=count.get("count_error", ""),
                            new_path=new_path)
    root = builder.build(tree)
    if form is None:
        form = AudienceForm(initial={"name": audience.name, "description": audience.description}
                            if audience else None)
    return {
        "audience": audience, "form": form, "form_error": form_error, "root": root,
        "trait_groups": trait_groups(selectors.custom_trait_keys(company=company), builder.customs_in_tree),
        "datalists": builder.datalists,
        "can_manage": role_can(request.membership.role, "audiences.manage"),
        **_urls(audience), **count,
    }


def _render_builder(request, audience, tree, *, status=200, **kwargs):
    return render(request, TEMPLATE, builder_context(request, audience, tree, **kwargs), status=status)


@company_view("audiences.view")
def audience_builder(request, audience_id=None):
    """New (`/audiences/new/`) or existing audience: GET draws it, POST saves it."""
    audience = _audience_or_none(request, audience_id)
    if audience is not None and audience.kind == audience.Kind.STATIC:
        messages.info(request, f"“{audience.name}” is a static audience: its members are chosen on the "
                               "Personas list (tick them, then Add to audience or Remove from audience).")
        return redirect("audience_list")
    if request.method != "POST":
        return _render_builder(request, audience, audience.rules if audience else empty_rules())
    if not role_can(request.membership.role, "audiences.manage"):
        raise PermissionDenied("Your role cannot change audiences.")
    form = AudienceForm(request.POST)
    tree, json_error = _posted_tree(request, audience)
    if json_error:
        return _render_builder(request, audience, empty_rules(), form=form, form_error=json_error,
                               count={"count_error": json_error, "count": None, "preview": [], "total": 0},
                               status=400)
    if form.is_valid():
        try:
            saved = audience_save(company=request.company, name=form.cleaned_data["name"], rules=tree,
                                  audience=audience, description=form.cleaned_data["description"],
                                  user=request.user, audit=audit_context(request))
        except (TypeError, ValueError, AttributeError, KeyError):
            log.exception("audience tree the validator could not read: %r", tree)
            return _render_builder(request, audience, empty_rules(), form=form, form_error=UNREADABLE,
                                   status=400)
        except AudienceRefused as exc:
            if exc.extra.get("field") == "name":
                form.add_error("name", exc.message)
                return _render_builder(request, audience, tree, form=form, status=400)
            if "path" not in exc.extra:
                return _render_builder(request, audience, tree, form=form, form_error=exc.message, status=400)
            error_path, message = describe_error(tree, *refused_parts(exc))
            count = {"count": None, "preview": [], "count_error": message, "error_path": error_path,
                     "total": selectors.persona_total(company=request.company)}
            return _render_builder(request, audience, tree, form=form, form_error=message, count=count,
                                   status=400)
        try:
            saved = audience_refresh(audience=saved)
        except DomainError as exc:
            messages.error(request, f"“{saved.name}” is saved, but calculating it failed: {exc.message}")
        else:
            messages.success(request, f"Audience “{saved.name}” saved: {saved.size:,} "
                                      f"customer{'s' if saved.size != 1 else ''}.")
        return redirect("audience_list")
    return _render_builder(request, audience, tree, form=form, status=400)


@require_POST
@company_view("audiences.view")
def audience_editor(request, audience_id=None):
    """A builder button or a new trait/operator: the tree again, with its count."""
    audience = _audience_or_none(request, audience_id)
    tree, json_error = _posted_tree(request, audience)
    if json_error:
        tree = empty_rules()
    tree, new_path = apply_action(tree, request.POST.get("action", ""))
    if request.htmx:
        return render(request, f"{TEMPLATE}#editor-response",
                      builder_context(request, audience, tree, new_path=new_path))
    # Without JavaScript the buttons post the whole page: draw it again, name as typed.
    form = AudienceForm(initial={"name": request.POST.get("name", ""),
                                 "description": request.POST.get("description", "")})
    return _render_builder(request, audience, tree, form=form, new_path=new_path)


@require_POST
@company_view("audiences.view")
def audience_count_view(request, audience_id=None):
    """The live count and 20-member preview; an unusable tree says why (never a 500)."""
    audience = _audience_or_none(request, audience_id)
    tree, json_error = _posted_tree(request, audience)
    return render(request, f"{TEMPLATE}#count", count_context(request, audience, tree, error=json_error)
                  | {"can_manage": role_can(request.membership.role, "audiences.manage"), **_urls(audience)})


@require_POST
@company_view("audiences.manage")
def audience_facts_refresh_view(request, audience_id=None):
    """Recompute spend, orders and segments, then count the posted tree again."""
    audience = _audience_or_none(request, audience_id)
    persona_facts_refresh(company=request.company)
    if not request.htmx:
        messages.success(request, "Purchase totals recalculated.")
        return redirect("audience_builder", audience_id=audience.pk) if audience else redirect("audience_new")
    tree, json_error = _posted_tree(request, audience)
    return render(request, f"{TEMPLATE}#count", count_context(request, audience, tree, error=json_error)
                  | {"can_manage": True, "facts_refreshed": True, **_urls(audience)})


# --- export --------------------------------------------------------------------------------------------

EXPORT_HEADER = ["persona_id", "first_name", "last_name", "email", "phone", "sms_opt_in", "email_opt_in",
                 "loyalty_member", "points_balance", "tier", "favourite_store", "market"]


def _csv_lines(rows):
    writer = csv.writer(Echo())
    yield writer.writerow(EXPORT_HEADER)
    for row in rows:
        yield writer.writerow([_cell(v) for v in row])


@company_view("audiences.view")
def audience_export(request, audience_id):
    """The audience's current members (as last calculated), streamed."""
    audience = selectors.audience_get(company=request.company, audience_id=audience_id)
    audit_record(audit=audit_context(request), company=request.company, kind="audience.exported",
                 obj=audience, extra={"members": audience.size})
    response = StreamingHttpResponse(_csv_lines(selectors.audience_export_rows(audience=audience)),
                                     content_type="text/csv; charset=utf-8")
    filename = f"{slugify(audience.name) or 'audience'}.csv"
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
