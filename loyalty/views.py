import uuid

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from stores.audit import audit_context
from stores.errors import DomainError
from stores.tenancy import company_view, role_can

from . import selectors
from .card import persona_card_facts
from .errors import InsufficientPoints, PointsOutOfRange
from .forms import PointsAdjustForm, WalletGrantForm
from .models import ErasureRequest, Source
from .services import persona_enroll, points_adjust
from .services.offers import wallet_grant
from .services.personas import persona_merge
from .services.privacy import persona_erase
from .services.program import tier_progress, tiers_recompute

PAGE_SIZE = 25


class PersonaFilterForm(forms.Form):
    q = forms.CharField(required=False, label="Search")
    member = forms.ChoiceField(required=False, label="Loyalty",
                               choices=[("", "Everyone"), ("yes", "Members"),
                                        ("no", "Not members")])
    store = forms.TypedChoiceField(required=False, coerce=int, empty_value=None,
                                   label="Favourite store")
    source = forms.TypedChoiceField(required=False, coerce=int, empty_value=None,
                                    label="Sourced from")
    sort = forms.ChoiceField(required=False, choices=[(k, k) for k in selectors.PERSONA_SORTS])
    dir = forms.ChoiceField(required=False, choices=[("asc", "asc"), ("desc", "desc")])

    def __init__(self, *args, company, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["store"].choices = [("", "Any store")] + [
            (s.pk, s.name) for s in company.stores.order_by("name")
        ]
        self.fields["source"].choices = [("", "Any source")] + [
            (s.pk, s.name) for s in Source.objects.filter(company=company).order_by("name")
        ]


def persona_filters_from(request, data, form=None) -> selectors.PersonaFilters:
    """The list's filters as `data` (its query string, or a bulk form carrying it) gives them."""
    form = form or PersonaFilterForm(data or None, company=request.company)
    data = form.cleaned_data if form.is_valid() else {}
    return selectors.PersonaFilters(
        q=data.get("q") or "", member=data.get("member") or "", store_id=data.get("store"),
        source_id=data.get("source"), sort=data.get("sort") or selectors.DEFAULT_SORT,
        descending=data.get("dir") == "desc",
    )


def _bulk_jobs_context(request) -> dict:
    from .views_bulk import bulk_job_summary, bulk_job_title  # views_bulk builds on this module

    jobs = selectors.persona_bulk_jobs_recent(company=request.company)
    for job in jobs:
        job.title, job.summary = bulk_job_title(job), bulk_job_summary(job)
    return {"bulk_jobs": jobs, "bulk_running": any(not job.is_over for job in jobs)}


@company_view("personas.view")
def persona_list(request):
    if request.htmx and request.htmx.target == "bulk-jobs":
        response = render(request, "loyalty/persona_list.html#bulk-jobs", _bulk_jobs_context(request))
        patch_vary_headers(response, ["HX-Request", "HX-Target"])
        return response
    from .views_bulk import bulk_actions_for  # views_bulk builds on this module

    form = PersonaFilterForm(request.GET or None, company=request.company)
    filters = persona_filters_from(request, request.GET, form)
    page = Paginator(selectors.persona_list(company=request.company, filters=filters),
                     PAGE_SIZE).get_page(request.GET.get("page"))
    params = request.GET.copy()
    params.pop("page", None)
    context = {
        "form": form, "page": page, "filters": filters, "query_string": params.urlencode(),
        "columns": _sort_headers(params, filters),
        "bulk_actions": bulk_actions_for(request.membership.role),
    } | _bulk_jobs_context(request)
    template = "loyalty/persona_list.html"
    if request.htmx and request.htmx.target == "persona-results":
        template += "#persona-results"
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


PERSONA_COLUMNS = [("name", "Name"), ("phone", "Phone"), ("email", "Email"),
                   ("loyalty", "Loyalty"), ("points", "Points"), ("store", "Favourite store"),
                   ("source", "Sourced from"), ("last_purchase", "Last purchase")]


def _sort_headers(params, filters) -> list[dict]:
    """Each column header links to the same list sorted by it (again: the other way)."""
    headers = []
    for key, label in PERSONA_COLUMNS:
        current = filters.sort == key
        query = params.copy()
        query["sort"] = key
        query["dir"] = "asc" if current and filters.descending else "desc" if current else "asc"
        headers.append({
            "label": label, "query": query.urlencode(),
            "arrow": ("▼" if filters.descending else "▲") if current else "",
            "aria": "descending" if filters.descending else "ascending",
        })
    return headers


def _adjust_limit(request) -> int | None:
    return selectors.points_adjust_limit(company=request.company, role=request.membership.role)


def _points_context(request, persona, form=None):
    can_adjust = role_can(request.membership.role, "points.adjust")
    if can_adjust and form is None:
        form = PointsAdjustForm(initial={"token": uuid.uuid4().hex}, limit=_adjust_limit(request))
    return {
        "persona": persona,
        "ledger": selectors.persona_ledger(persona=persona),
        "adjust_form": form,
        "can_adjust": can_adjust,
        "tier": tier_progress(persona),
    }


def _wallet_context(request, persona, grant_form=None, grant_note=""):
    can_grant = role_can(request.membership.role, "loyalty.manage")
    return {
        "persona": persona,
        "wallet": selectors.persona_wallet(persona=persona),
        "can_grant": can_grant,
        "grant_form": grant_form,
        # The select is drawn from this list: one query, whether there are offers or not.
        "grant_offers": list(selectors.offers_grantable(company=request.company)) if can_grant else [],
        "grant_note": grant_note,
    }


def _card_context(request, persona) -> dict:
    """Everything on the persona card besides the points block."""
    return _wallet_context(request, persona) | {
        "identities": selectors.persona_identities(persona=persona),
        "consents": selectors.persona_consents(persona=persona),
        "card_facts": persona_card_facts(persona),
        "merged_in": selectors.persona_merged_in(persona=persona),
        "erasure": selectors.persona_erasure(persona=persona),
        "orders": selectors.persona_orders(persona=persona),
        "program": selectors.loyalty_program_get(company=request.company),
        "redemptions": selectors.persona_redemptions(persona=persona),
        "activity": selectors.persona_activity(company=request.company, persona=persona),
        "possible_duplicates": (selectors.persona_possible_duplicates(persona=persona)
                                if role_can(request.membership.role, "personas.merge") else []),
    }


@company_view("personas.view")
def persona_detail(request, persona_id):
    persona = selectors.persona_get(company=request.company, persona_id=persona_id)
    context = _card_context(request, persona) | _points_context(request, persona)
    return render(request, "loyalty/persona_detail.html", context)


@require_POST
@company_view("loyalty.manage")
def persona_wallet_grant(request, persona_id):
    """Staff put an offer in the persona's wallet, free of points."""
    persona = selectors.persona_get(company=request.company, persona_id=persona_id)
    form = WalletGrantForm(request.POST, offers=selectors.offers_grantable(company=request.company))
    note = ""
    if form.is_valid():
        offer = form.cleaned_data["offer"]
        try:
            wallet_grant(company=request.company, persona_id=persona.pk, offer_id=offer.pk,
                         staff_user=request.user, audit=audit_context(request))
        except DomainError as exc:
            form.add_error("offer" if exc.extra.get("field") == "offer" else None, exc.message)
        else:
            note = f"“{offer.name}” is in {persona.display_name}'s wallet."
            if not request.htmx:
                messages.success(request, note)
                return redirect("persona_detail", persona_id=persona.pk)
            form = None
    if request.htmx:
        return render(request, "loyalty/persona_detail.html#wallet",
                      _wallet_context(request, persona, form, note))
    context = _card_context(request, persona) | _points_context(request, persona) | {"grant_form": form}
    return render(request, "loyalty/persona_detail.html", context, status=400)


@require_POST
@company_view("personas.merge")
def persona_merge_view(request, persona_id):
    """Merge another persona (a duplicate of this customer) into this one."""
    persona = selectors.persona_get(company=request.company, persona_id=persona_id)
    raw = request.POST.get("duplicate_id", "").strip().lstrip("#")
    if not raw.isdigit():
        messages.error(request, "Enter the number of the persona to merge into this one, e.g. 1042.")
    else:
        duplicate = selectors.persona_get(company=request.company, persona_id=int(raw))
        try:
            persona = persona_merge(company=request.company, survivor_id=persona.pk,
                                    duplicate_id=duplicate.pk, reason="Merged on the persona card",
                                    staff_user=request.user, audit=audit_context(request))
        except DomainError as exc:
            messages.error(request, exc.message)
        else:
            messages.success(request, f"{duplicate.display_name} (#{duplicate.pk}) is merged into this "
                                      "persona: their sales, points and rewards are here now.")
    if request.htmx:
        return HttpResponseClientRedirect(reverse("persona_detail", args=[persona.pk]))
    return redirect("persona_detail", persona_id=persona.pk)


@require_POST
@company_view("personas.erase")
def persona_erase_view(request, persona_id):
    """Erase the customer's personal data, for a request received by phone or mail."""
    persona = selectors.persona_get(company=request.company, persona_id=persona_id)
    if request.POST.get("confirm") != "erase":
        messages.error(request, "Tick the box to confirm the customer asked for their data to be erased.")
    else:
        erasure = persona_erase(company=request.company, persona_id=persona.pk,
                                via=ErasureRequest.Via.STAFF, audit=audit_context(request))
        messages.success(request, f"Persona #{persona.pk}'s personal data is erased; "
                                  f"{erasure.points_forfeited} points forfeited. Their sales stay.")
    if request.htmx:
        return HttpResponseClientRedirect(reverse("persona_detail", args=[persona.pk]))
    return redirect("persona_detail", persona_id=persona.pk)


@require_POST
@company_view("personas.enroll")
def persona_enroll_view(request, persona_id):
    persona = selectors.persona_get(company=request.company, persona_id=persona_id)
    was_member = persona.is_member
    persona = persona_enroll(company=request.company, persona_id=persona.pk, audit=audit_context(request))
    if not was_member:
        messages.success(request, f"{persona.display_name} is now a loyalty member.")
    return redirect("persona_detail", persona_id=persona.pk)


@require_POST
@company_view("points.adjust")
def persona_points_adjust(request, persona_id):
    persona = selectors.persona_get(company=request.company, persona_id=persona_id)
    form = PointsAdjustForm(request.POST, limit=_adjust_limit(request))
    if form.is_valid():
        try:
            points_adjust(company=request.company, persona_id=persona.pk,
                          delta=form.cleaned_data["delta"], staff_user=request.user,
                          reason=form.cleaned_data["reason"],
                          idempotency_key=form.cleaned_data["token"], audit=audit_context(request))
        except DomainError as exc:
            field = exc.extra.get("field")
            if isinstance(exc, InsufficientPoints | PointsOutOfRange):
                field = "delta"  # the balance cannot move by the points typed: say it beside them
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            tiers_recompute(company=request.company, persona_ids=[persona.pk])
            if not request.htmx:
                return redirect("persona_detail", persona_id=persona.pk)
            persona = selectors.persona_get(company=request.company, persona_id=persona.pk)
            form = None
    context = _points_context(request, persona, form)
    if request.htmx:
        return render(request, "loyalty/persona_detail.html#points", context)
    context = _card_context(request, persona) | context
    return render(request, "loyalty/persona_detail.html", context, status=400)
