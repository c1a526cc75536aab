"""Settings pages of the loyalty engine: the program and its tiers, offers, POS prompts.
Admin only. Reads go through the selectors (scoped by the request's company: another
company's id is a 404), writes through the services; htmx requests get the changed region."""

from decimal import Decimal

from django.contrib import messages
from django.db.models import Count
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from stores.audit import audit_context
from stores.errors import DomainError
from stores.tenancy import company_view

from . import selectors
from .forms import LoyaltyProgramForm, OfferForm, PromptForm, TierForm
from .models import Persona, Tier
from .services.offers import offer_create, offer_set_active, offer_update
from .services.program import loyalty_program_update, tier_create, tier_delete, tier_update
from .services.prompts import prompt_create, prompt_delete, prompt_fired_counts_flush, prompt_update


def _redirect(request, url):
    """After a successful POST: a normal redirect, or an HX-Redirect for htmx."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _add_error(form, exc: DomainError) -> None:
    field = exc.extra.get("field")
    form.add_error(field if field in form.fields else None, exc.message)


def _vary(response):
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


# -- loyalty program and tiers ---------------------------------------------------------------

PROGRAM_TEMPLATE = "loyalty/program_settings.html"


def _tiers_context(request, *, editing=None, edit_form=None, add_form=None, tier_error="") -> dict:
    tiers = list(Tier.objects.filter(company=request.company).order_by("threshold_kind", "threshold"))
    counts = dict(Persona.objects.filter(company=request.company, tier__in=[t.name for t in tiers])
                  .values_list("tier").annotate(n=Count("id")).order_by())
    for tier in tiers:
        tier.persona_count = counts.get(tier.name, 0)
        if editing is not None and tier.pk == editing.pk:
            tier.edit_form = edit_form or TierForm(form_id=f"tier-edit-{tier.pk}", prefix="edit", initial={
                "name": tier.name, "threshold_kind": tier.threshold_kind,
                "threshold": tier.threshold.quantize(Decimal(1))
                if tier.threshold_kind == Tier.Threshold.LIFETIME_POINTS else tier.threshold,
                "earn_multiplier": tier.earn_multiplier})
    return {"tiers": tiers, "editing": editing,
            "add_form": add_form or TierForm(form_id="tier-add", prefix="tier"),
            "tier_error": tier_error}


def _program_page(request, *, form=None, status=200, **tiers_kwargs):
    program = selectors.loyalty_program_get(company=request.company)
    context = {"form": form or LoyaltyProgramForm(instance=program), "program": program,
               **_tiers_context(request, **tiers_kwargs)}
    return render(request, PROGRAM_TEMPLATE, context, status=status)


def _tiers_response(request, *, status=200, **tiers_kwargs):
    """The tiers table alone for htmx; otherwise the whole page."""
    if request.htmx:
        return _vary(render(request, PROGRAM_TEMPLATE + "#tiers", _tiers_context(request, **tiers_kwargs)))
    return _program_page(request, status=status, **tiers_kwargs)


@company_view("loyalty.manage")
def loyalty_program_view(request):
    if request.method == "GET":
        if request.htmx and request.htmx.target == "tiers":  # "Cancel" on an inline edit
            return _tiers_response(request)
        return _vary(_program_page(request))
    program = selectors.loyalty_program_get(company=request.company)
    form = LoyaltyProgramForm(request.POST, instance=program)
    saved = False
    if form.is_valid():
        try:
            program = loyalty_program_update(company=request.company, audit=audit_context(request),
                                             **form.cleaned_data)
        except DomainError as exc:
            _add_error(form, exc)
        else:
            if not request.htmx:
                messages.success(request, "Loyalty program saved.")
                return redirect("loyalty_program")
            form, saved = LoyaltyProgramForm(instance=program), True
    if request.htmx:
        return render(request, PROGRAM_TEMPLATE + "#program-form", {"form": form, "saved": saved})
    return _program_page(request, form=form, status=400)


@require_POST
@company_view("loyalty.manage")
def tier_create_view(request):
    form = TierForm(request.POST, form_id="tier-add", prefix="tier")
    if form.is_valid():
        try:
            tier_create(company=request.company, audit=audit_context(request), **form.cleaned_data)
        except DomainError as exc:
            _add_error(form, exc)
        else:
            if not request.htmx:
                messages.success(request, f"Tier “{form.cleaned_data['name']}” added.")
                return redirect("loyalty_program")
            return _tiers_response(request)
    return _tiers_response(request, add_form=form, status=400)


@company_view("loyalty.manage")
def tier_edit_view(request, tier_id):
    tier = selectors.tier_get(company=request.company, tier_id=tier_id)
    if request.method != "POST":
        return _vary(_tiers_response(request, editing=tier))
    form = TierForm(request.POST, form_id=f"tier-edit-{tier.pk}", prefix="edit")
    if form.is_valid():
        try:
            tier_update(tier=tier, audit=audit_context(request), **form.cleaned_data)
        except DomainError as exc:
            _add_error(form, exc)
        else:
            if not request.htmx:
                messages.success(request, f"Tier “{form.cleaned_data['name']}” saved.")
                return redirect("loyalty_program")
            return _tiers_response(request)
    return _tiers_response(request, editing=tier, edit_form=form, status=400)


@require_POST
@company_view("loyalty.manage")
def tier_delete_view(request, tier_id):
    tier = selectors.tier_get(company=request.company, tier_id=tier_id)
    try:
        tier_delete(tier=tier, audit=audit_context(request))
    except DomainError as exc:
        if not request.htmx:
            messages.error(request, exc.message)
            return redirect("loyalty_program")
        return _tiers_response(request, tier_error=exc.message)
    if not request.htmx:
        messages.success(request, f"Tier “{tier.name}” deleted.")
        return redirect("loyalty_program")
    return _tiers_response(request)


# -- offers ----------------------------------------------------------------------------------

@company_view("loyalty.manage")
def offer_list(request):
    return render(request, "loyalty/offer_list.html",
                  {"offers": selectors.offers_list(company=request.company)})


def _offer_form_page(request, form, offer=None):
    """htmx swaps only 2xx: an htmx re-render with errors is a 200 of the form alone."""
    template, status = "loyalty/offer_form.html", 400 if form.errors else 200
    if request.htmx:
        template, status = template + "#offer-form", 200
    return render(request, template, {"form": form, "offer": offer}, status=status)


@company_view("loyalty.manage")
def offer_create_view(request):
    form = OfferForm(request.POST if request.method == "POST" else None, company=request.company)
    if request.method == "POST" and form.is_valid():
        try:
            offer = offer_create(company=request.company, audit=audit_context(request), **form.cleaned_data)
        except DomainError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Offer “{offer.name}” added.")
            return _redirect(request, reverse("offer_list"))
    return _offer_form_page(request, form)


@company_view("loyalty.manage")
def offer_edit_view(request, offer_id):
    offer = selectors.offer_get(company=request.company, offer_id=offer_id)
    if request.method == "POST":
        form = OfferForm(request.POST, company=request.company)
        if form.is_valid():
            try:
                offer = offer_update(offer=offer, audit=audit_context(request), **form.cleaned_data)
            except DomainError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, f"Offer “{offer.name}” saved.")
                return _redirect(request, reverse("offer_list"))
    else:
        form = OfferForm(initial=OfferForm.initial_for(offer), company=request.company)
    return _offer_form_page(request, form, offer)


@require_POST
@company_view("loyalty.manage")
def offer_active_view(request, offer_id):
    """The list's on/off switch; htmx gets the row back."""
    offer = selectors.offer_get(company=request.company, offer_id=offer_id)
    offer_set_active(offer=offer, is_active=request.POST.get("is_active") == "1",
                     audit=audit_context(request))
    if not request.htmx:
        messages.success(request, f"Offer “{offer.name}” is {'active' if offer.is_active else 'inactive'}.")
        return redirect("offer_list")
    offer = selectors.offers_list(company=request.company).get(pk=offer.pk)
    return render(request, "loyalty/offer_list.html#offer-row", {"offer": offer})


# -- POS prompts -----------------------------------------------------------------------------

@company_view("loyalty.manage")
def prompt_list(request):
    prompt_fired_counts_flush(company=request.company)  # the firings counted since the last flush
    return render(request, "loyalty/prompt_list.html",
                  {"prompts": selectors.prompts_list(company=request.company)})


def _prompt_form_page(request, form, prompt=None):
    template, status = "loyalty/prompt_form.html", 400 if form.errors else 200
    if request.htmx:
        template, status = template + "#prompt-form", 200
    tiers = Tier.objects.filter(company=request.company).order_by("threshold").values_list("name", flat=True)
    return render(request, template, {"form": form, "prompt": prompt, "tier_names": list(tiers)},
                  status=status)


@company_view("loyalty.manage")
def prompt_create_view(request):
    form = PromptForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            prompt = prompt_create(company=request.company, audit=audit_context(request), **form.cleaned_data)
        except DomainError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Prompt “{prompt.name}” added.")
            return _redirect(request, reverse("prompt_list"))
    return _prompt_form_page(request, form)


@company_view("loyalty.manage")
def prompt_edit_view(request, prompt_id):
    prompt = selectors.prompt_get(company=request.company, prompt_id=prompt_id)
    if request.method == "POST":
        form = PromptForm(request.POST)
        if form.is_valid():
            try:
                prompt = prompt_update(prompt=prompt, audit=audit_context(request), **form.cleaned_data)
            except DomainError as exc:
                _add_error(form, exc)
            else:
                messages.success(request, f"Prompt “{prompt.name}” saved.")
                return _redirect(request, reverse("prompt_list"))
    else:
        form = PromptForm(initial={name: getattr(prompt, name) for name in PromptForm.base_fields})
    return _prompt_form_page(request, form, prompt)


@require_POST
@company_view("loyalty.manage")
def prompt_delete_view(request, prompt_id):
    prompt = selectors.prompt_get(company=request.company, prompt_id=prompt_id)
    prompt_delete(prompt=prompt, audit=audit_context(request))
    if request.htmx:
        return HttpResponse("")  # the row swaps itself out
    messages.success(request, f"Prompt “{prompt.name}” deleted.")
    return redirect("prompt_list")
