"""Campaign pages: the list, compose, the campaign (counts before sending, preview, test,
send, live progress, report) and Settings › Messaging."""

from __future__ import annotations

from csp.decorators import csp_replace
from django.contrib import messages
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from loyalty.models import Persona
from loyalty.phone import phone_normalize
from stores.audit import audit_context
from stores.errors import DomainError
from stores.tenancy import company_view, role_can

from . import compose, selectors, services
from .forms import CampaignForm, MessagingSettingsForm, TestSendForm
from .models import Campaign, Channel
from .report import campaigns_list_figures
from .views_report import report_context

PREVIEW_CHOICES = 25


def _can_manage(request) -> bool:
    return role_can(request.membership.role, "campaigns.manage")


@company_view("campaigns.view")
def campaign_list(request):
    campaigns = list(selectors.campaigns_list(company=request.company)[:200])
    figures = campaigns_list_figures(company=request.company, campaigns=campaigns)
    for campaign in campaigns:
        campaign.figures = figures.get(campaign.pk)
    return render(request, "campaigns/list.html",
                  {"campaigns": campaigns, "can_manage": _can_manage(request)})


def _form_context(request, form, campaign=None) -> dict:
    rules = selectors.messaging_settings(company=request.company)
    return {"form": form, "campaign": campaign, "opt_out_line": rules.opt_out_line,
            "segment_price": rules.sms_segment_price, "sample_values": compose.SAMPLE_VALUES,
            "recipients": campaign.audience.size if campaign and campaign.audience else None}


def _save(request, form, campaign=None):
    if not form.is_valid():
        return None
    fields = {name: form.cleaned_data.get(name) for name in form.Meta.fields}
    nullable = ("audience", "scheduled_at")
    fields = {k: ("" if v is None and k not in nullable else v) for k, v in fields.items()}
    try:
        return services.campaign_save(company=request.company, audit=audit_context(request),
                                      campaign=campaign, user=request.user, **fields)
    except DomainError as exc:
        field = exc.extra.get("field") if exc.extra else None
        form.add_error(field if field in form.fields else None, exc.message)
        return None


@company_view("campaigns.manage")
def campaign_new(request):
    form = CampaignForm(request.POST or None, company=request.company)
    if request.method == "POST":
        campaign = _save(request, form)
        if campaign is not None:
            messages.success(request,
                             f"Saved “{campaign.name}”. Check who it reaches, send a test, then send.")
            return redirect("campaign_detail", campaign.pk)
    return render(request, "campaigns/form.html", _form_context(request, form))


@company_view("campaigns.manage")
def campaign_edit(request, campaign_id):
    campaign = selectors.campaign_get(company=request.company, campaign_id=campaign_id)
    if not campaign.is_editable:
        messages.error(request, "This campaign has started: it can no longer be changed.")
        return redirect("campaign_detail", campaign.pk)
    form = CampaignForm(request.POST or None, instance=campaign, company=request.company)
    if request.method == "POST":
        saved = _save(request, form, campaign)
        if saved is not None:
            messages.success(request, "Saved.")
            return redirect("campaign_detail", saved.pk)
    return render(request, "campaigns/form.html", _form_context(request, form, campaign))


def _preview(campaign: Campaign, persona: Persona | None) -> dict:
    rules = selectors.messaging_settings(company=campaign.company)
    values = dict(compose.SAMPLE_VALUES)
    if persona is not None:
        values = services._merge_values(campaign, [persona.pk]).get(persona.pk, values)
    try:
        message = services.Renderer(campaign, rules).render(None, persona.pk if persona else None, values)
    except DomainError as exc:
        return {"error": exc.message}
    if campaign.channel == Channel.SMS:
        return {"body": message["body"], "segments": compose.sms_segments(message["body"])}
    return message


@company_view("campaigns.view")
def campaign_detail(request, campaign_id):
    campaign = selectors.campaign_get(company=request.company, campaign_id=campaign_id)
    context = {"campaign": campaign, "can_manage": _can_manage(request),
               "progress": selectors.campaign_progress(campaign=campaign),
               "test_form": TestSendForm(initial={"to": request.user.email if campaign.channel == "email"
                                                  else ""})}
    if campaign.is_editable:
        context["eligibility"] = selectors.campaign_eligibility(campaign=campaign)
        context["eligibility_reasons"] = context["eligibility"].reasons(campaign.channel)
        context["preview_choices"] = _audience_sample(campaign)
        persona = None
        chosen = request.GET.get("persona", "")
        if chosen.isdigit():
            persona = Persona.objects.filter(company=request.company, pk=int(chosen)).first()
            if persona is None:
                raise Http404("No such customer.")
        context["preview_persona"] = persona
        context["preview"] = _preview(campaign, persona)
        rules = selectors.messaging_settings(company=request.company)
        if campaign.channel == Channel.SMS and "segments" in context["preview"]:
            context["cost"] = compose.sms_cost(context["preview"]["segments"].segments,
                                               context["eligibility"].receive, rules.sms_segment_price)
        context["rules"] = rules
    else:
        context["exclusion_reasons"] = _exclusion_reasons(campaign)
        context.update(_report_context(request, campaign))
    return render(request, "campaigns/detail.html", context)


def _exclusion_reasons(campaign: Campaign) -> list[tuple[str, int]]:
    return selectors.Eligibility(audience=0, receive=0, holdout=0,
                                 exclusions=campaign.exclusions).reasons(campaign.channel)


def _audience_sample(campaign: Campaign) -> list[Persona]:
    if campaign.audience_id is None:
        return []
    return list(Persona.objects.filter(company=campaign.company_id,
                                       pk__in=campaign.audience.members.values("persona_id")[:PREVIEW_CHOICES])
                .order_by("last_name", "first_name", "id"))


def _report_context(request, campaign: Campaign) -> dict:
    return report_context(campaign, request.GET.get("days"))


@xframe_options_sameorigin
@csp_replace({"default-src": ["'none'"], "script-src": None, "style-src": ["'unsafe-inline'"],
              "style-src-attr": ["'unsafe-inline'"],
              "img-src": ["'self'", "data:", "https:", "http:"], "frame-ancestors": ["'self'"],
              "sandbox": [""], "form-action": ["'none'"]})
@company_view("campaigns.view")
def campaign_email_preview(request, campaign_id):
    """The email as a customer would see it, in the campaign page's frame: its own styles
    (email is styled inline) and nothing that runs."""
    campaign = selectors.campaign_get(company=request.company, campaign_id=campaign_id)
    if campaign.channel != Channel.EMAIL:
        raise Http404("Not an email campaign.")
    chosen = request.GET.get("persona", "")
    persona = (Persona.objects.filter(company=request.company, pk=int(chosen)).first()
               if chosen.isdigit() else None)
    preview = _preview(campaign, persona)
    return HttpResponse(preview.get("html") or preview.get("error", ""),
                        content_type="text/html; charset=utf-8")


@company_view("campaigns.view")
def campaign_progress(request, campaign_id):
    campaign = selectors.campaign_get(company=request.company, campaign_id=campaign_id)
    return render(request, "campaigns/detail.html#progress", {
        "campaign": campaign, "progress": selectors.campaign_progress(campaign=campaign),
        "can_manage": _can_manage(request), "exclusion_reasons": _exclusion_reasons(campaign)})


def _action(request, campaign_id, action, done: str):
    campaign = selectors.campaign_get(company=request.company, campaign_id=campaign_id)
    try:
        campaign = action(campaign=campaign, audit=audit_context(request))
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, done.format(campaign=campaign))
    return redirect("campaign_detail", campaign_id)


@require_POST
@company_view("campaigns.manage")
def campaign_send_view(request, campaign_id):
    campaign = selectors.campaign_get(company=request.company, campaign_id=campaign_id)
    try:
        campaign = services.campaign_send(campaign=campaign, audit=audit_context(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("campaign_detail", campaign_id)
    if campaign.status == Campaign.Status.SCHEDULED:
        messages.success(request, "Scheduled.")
    else:
        messages.success(request, f"Sending to {campaign.recipient_count:,} customers "
                                  f"({campaign.holdout_count:,} held out).")
    return redirect("campaign_detail", campaign_id)


@require_POST
@company_view("campaigns.manage")
def campaign_pause_view(request, campaign_id):
    return _action(request, campaign_id, services.campaign_pause,
                   "Paused: nothing more goes out until you resume.")


@require_POST
@company_view("campaigns.manage")
def campaign_resume_view(request, campaign_id):
    return _action(request, campaign_id, services.campaign_resume, "Sending again.")


@require_POST
@company_view("campaigns.manage")
def campaign_cancel_view(request, campaign_id):
    return _action(request, campaign_id, services.campaign_cancel,
                   "Cancelled: the messages not yet sent never will be.")


@require_POST
@company_view("campaigns.manage")
def campaign_delete_view(request, campaign_id):
    campaign = selectors.campaign_get(company=request.company, campaign_id=campaign_id)
    try:
        services.campaign_delete(campaign=campaign, audit=audit_context(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("campaign_detail", campaign_id)
    messages.success(request, f"Deleted “{campaign.name}”.")
    return redirect("campaign_list")


@require_POST
@company_view("campaigns.manage")
def campaign_test_view(request, campaign_id):
    campaign = selectors.campaign_get(company=request.company, campaign_id=campaign_id)
    form = TestSendForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Enter a mobile number or email address for the test.")
        return redirect("campaign_detail", campaign_id)
    to = form.cleaned_data["to"].strip()
    if campaign.channel == Channel.SMS:
        try:
            to = phone_normalize(to, country=request.company.country, field="to")
        except DomainError as exc:
            messages.error(request, f"The test number: {exc.message}")
            return redirect("campaign_detail", campaign_id)
    elif "@" not in to:
        messages.error(request, "The test address is not an email address.")
        return redirect("campaign_detail", campaign_id)
    persona_id = request.POST.get("persona", "")
    persona = (Persona.objects.filter(company=request.company, pk=int(persona_id)).first()
               if persona_id.isdigit() else None)
    try:
        services.campaign_test_send(campaign=campaign, audit=audit_context(request), to=to, persona=persona)
    except DomainError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, f"Test sent to {to}.")
    return redirect("campaign_detail", campaign_id)


@company_view("settings.manage")
def messaging_settings_view(request):
    rules = selectors.messaging_settings(company=request.company)
    form = MessagingSettingsForm(request.POST or None, instance=rules)
    if request.method == "POST" and form.is_valid():
        services.messaging_settings_update(company=request.company, audit=audit_context(request),
                                           **{name: form.cleaned_data[name] for name in form.Meta.fields})
        messages.success(request, "Saved.")
        return redirect("messaging_settings")
    return render(request, "campaigns/settings.html", {"form": form})
