"""The customer's preferences (consents, favourite store, "Stop SMS", "Unsubscribe") and
"Download my data", "Delete my account"."""

import json

from django.http import HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from stores.errors import DomainError
from stores.http import client_address

from . import services
from .forms import CodeForm, PreferencesForm
from .services_privacy import (
    account_delete,
    account_delete_code_send,
    consent_stop,
    persona_data_export,
    persona_data_zip,
    preferences_update,
)
from .sessions import CUSTOMER_COOKIE, customer_required
from .views import page_render

SAVED_MESSAGES = {
    "saved": "Your preferences are saved.",
    "sms": "Done: we won't text you offers any more.",
    "email": "Done: you're unsubscribed from our emails.",
}


def _form(request, persona, data=None):
    company = request.company
    initial = {"sms_consent": persona.sms_opt_in, "email_consent": persona.email_opt_in,
               "favourite_store": persona.favourite_store_id}
    return PreferencesForm(data, initial=initial, stores=company.stores.order_by("name"),
                           wording=services.consent_wording(company))


@never_cache
@require_http_methods(["GET", "POST"])
@customer_required
def preferences(request, slug):
    company, persona = request.company, request.persona
    form = _form(request, persona, request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            preferences_update(company=company, persona_id=persona.pk, sms_opt_in=data["sms_consent"],
                               email_opt_in=data["email_consent"], favourite_store=data["favourite_store"],
                               address=client_address(request), page_url=request.build_absolute_uri())
        except DomainError as exc:
            field = exc.extra.get("field")
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            return redirect(reverse("members:preferences", args=[slug]) + "?done=saved")
    return page_render(request, company, "preferences.html", {
        "persona": persona, "form": form, "done": SAVED_MESSAGES.get(request.GET.get("done", ""), "")},
        status=400 if form.errors else 200, signed_in=True)


@require_POST
@customer_required
def preferences_stop(request, slug, channel):
    """The "Stop SMS" and "Unsubscribe from email" buttons: off at once."""
    try:
        consent_stop(company=request.company, persona_id=request.persona.pk, channel=channel,
                     address=client_address(request), page_url=request.build_absolute_uri())
    except DomainError:
        return redirect("members:preferences", slug=slug)
    return redirect(reverse("members:preferences", args=[slug]) + f"?done={channel}")


@never_cache
@require_GET
@customer_required
def data_download(request, slug):
    """"Download my data": JSON of everything, or ?format=csv for the same as a ZIP of CSV
    files, one per section."""
    export = persona_data_export(company=request.company, persona_id=request.persona.pk)
    if request.GET.get("format") == "csv":
        response = HttpResponse(persona_data_zip(export), content_type="application/zip")
        response["Content-Disposition"] = f'attachment; filename="{slug}-my-data.zip"'
        return response
    response = HttpResponse(json.dumps(export, indent=2, ensure_ascii=False),
                            content_type="application/json; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{slug}-my-data.json"'
    return response


@never_cache
@require_http_methods(["GET", "POST"])
@customer_required
def account_delete_view(request, slug):
    """"Delete my account": a code by SMS to the member's number, then the erasure. Step
    "send" texts the code; step "confirm" checks it and erases."""
    company, persona = request.company, request.persona
    form = CodeForm(request.POST if request.POST.get("step") == "confirm" else None)
    context = {"persona": persona, "form": form, "sent": False, "error": ""}
    status = 200
    if request.method == "POST" and request.POST.get("step") == "send":
        try:
            account_delete_code_send(company=company, persona=persona, address=client_address(request))
        except DomainError as exc:
            context["error"] = exc.message
            status = 429 if exc.code.startswith("too_many") else 503
        else:
            context["sent"] = True
    elif request.method == "POST" and form.is_valid():
        try:
            account_delete(company=company, persona=persona, code=form.cleaned_data["code"])
        except DomainError as exc:
            form.add_error("code", exc.message)
            context["sent"], status = True, 400
        else:
            response = page_render(request, company, "account_deleted.html")
            response.delete_cookie(CUSTOMER_COOKIE, path=f"/c/{company.slug}/")
            return response
    elif request.method == "POST":
        context["sent"], status = True, 400
    return page_render(request, company, "account_delete.html", context, status=status, signed_in=True)
