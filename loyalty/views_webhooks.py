"""Settings > Webhooks (admins): the endpoints a level-2 POS listens on, their secrets, and
the delivery log with "Resend". Reads go through selectors_webhooks (scoped by the
request's company), writes through services.webhooks."""

import json

from django import forms
from django.contrib import messages
from django.core.paginator import Paginator
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_POST
from django_htmx.http import HttpResponseClientRedirect

from stores.audit import audit_context
from stores.crypto import last4
from stores.errors import DomainError
from stores.tenancy import company_view

from . import selectors_webhooks as selectors
from .models import WebhookEndpoint
from .services.webhooks import (
    webhook_body,
    webhook_endpoint_create,
    webhook_endpoint_delete,
    webhook_endpoint_secret_rotate,
    webhook_endpoint_update,
)
from .services.webhooks import webhook_delivery_resend as delivery_resend

LOG_PAGE_SIZE = 25
PERMISSION = "webhooks.manage"
# The endpoint whose secret the next page shows in full, once: right after it is made.
SECRET_REVEAL_SESSION_KEY = "webhook_secret_reveal"

EVENT_HELP = {
    "persona.updated": "A customer enrolled in loyalty or their profile changed.",
    "points.changed": "A customer's points balance moved (earned, spent, adjusted, reversed).",
    "offer.issued": "An offer was put in a customer's wallet.",
    "redemption.changed": "A reward was locked, redeemed, unlocked, expired or reinstated.",
}


class WebhookEndpointForm(forms.Form):
    url = forms.CharField(label="Endpoint URL", max_length=500,
                          widget=forms.TextInput(attrs={"placeholder": "https://pos.example.com/loyalty/webhooks",
                                                        "autocomplete": "off", "spellcheck": "false"}),
                          help_text="We POST signed JSON here. http:// or https://.")
    events = forms.MultipleChoiceField(
        choices=[(e, e) for e in WebhookEndpoint.EVENTS], widget=forms.CheckboxSelectMultiple,
        error_messages={"required": "Pick at least one event."})
    is_active = forms.BooleanField(label="Active", required=False, initial=True,
                                   help_text="Turned off, no events are sent to it.")


def _redirect(request, url):
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _add_error(form, exc: DomainError) -> None:
    field = exc.extra.get("field")
    form.add_error(field if field in form.fields else None, exc.message)


def _secret_context(endpoint, *, in_full: bool) -> dict:
    """The secret in full once (just made or rotated), otherwise its last characters; a
    secret no key decrypts any more says so instead of failing the page."""
    try:
        secret = endpoint.secret_plain()
    except DomainError:
        return {"secret_unreadable": True}
    return {"secret_full": secret} if in_full else {"secret_hint": last4(secret)}


def _form_page(request, form, endpoint=None):
    """htmx swaps only 2xx: an htmx re-render with errors is the form alone with a 200, a
    plain POST with errors the whole page with a 400."""
    template, status = "loyalty/webhooks/form.html", 400 if form.errors else 200
    if request.htmx:
        template, status = template + "#endpoint-form", 200
    return render(request, template, {"form": form, "endpoint": endpoint, "event_help": EVENT_HELP},
                  status=status)


@company_view(PERMISSION)
def webhook_list(request):
    return render(request, "loyalty/webhooks/list.html", {
        "endpoints": selectors.webhook_endpoints(company=request.company),
    })


@company_view(PERMISSION)
def webhook_create(request):
    form = WebhookEndpointForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            endpoint = webhook_endpoint_create(company=request.company, url=data["url"],
                                               events=data["events"], is_active=data["is_active"],
                                               audit=audit_context(request))
        except DomainError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, "Endpoint added. Copy its signing secret into your POS.")
            request.session[SECRET_REVEAL_SESSION_KEY] = endpoint.pk
            return _redirect(request, reverse("webhook_detail", args=[endpoint.pk]))
    return _form_page(request, form)


@company_view(PERMISSION)
def webhook_edit(request, endpoint_id):
    endpoint = selectors.webhook_endpoint_get(company=request.company, endpoint_id=endpoint_id)
    initial = {"url": endpoint.url, "events": endpoint.events, "is_active": endpoint.is_active}
    form = WebhookEndpointForm(request.POST if request.method == "POST" else None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            webhook_endpoint_update(endpoint=endpoint, url=data["url"], events=data["events"],
                                    is_active=data["is_active"], audit=audit_context(request))
        except DomainError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, "Endpoint saved.")
            return _redirect(request, reverse("webhook_detail", args=[endpoint.pk]))
    return _form_page(request, form, endpoint)


@company_view(PERMISSION)
def webhook_delete(request, endpoint_id):
    endpoint = selectors.webhook_endpoint_get(company=request.company, endpoint_id=endpoint_id)
    if request.method == "POST":
        url = endpoint.url
        webhook_endpoint_delete(endpoint=endpoint, audit=audit_context(request))
        messages.success(request, f"Endpoint {url} deleted with its delivery log.")
        return _redirect(request, reverse("webhook_list"))
    return render(request, "loyalty/webhooks/delete.html", {
        "endpoint": endpoint, "delivery_count": endpoint.deliveries.count()})


@require_POST
@company_view(PERMISSION)
def webhook_rotate_secret(request, endpoint_id):
    endpoint = selectors.webhook_endpoint_get(company=request.company, endpoint_id=endpoint_id)
    webhook_endpoint_secret_rotate(endpoint=endpoint, audit=audit_context(request))
    note = "New secret made. Deliveries are signed with it from now on: update your POS."
    if request.htmx:
        return render(request, "loyalty/webhooks/detail.html#secret",
                      {"endpoint": endpoint, "secret_note": note} | _secret_context(endpoint, in_full=True))
    messages.success(request, note)
    request.session[SECRET_REVEAL_SESSION_KEY] = endpoint.pk
    return redirect("webhook_detail", endpoint_id=endpoint.pk)


@company_view(PERMISSION)
def webhook_detail(request, endpoint_id):
    """The endpoint, its secret (in full only on the page shown right after it is made),
    and its delivery log (latest 100, by pages)."""
    endpoint = selectors.webhook_endpoint_get(company=request.company, endpoint_id=endpoint_id)
    page = Paginator(selectors.webhook_deliveries(endpoint=endpoint),
                     LOG_PAGE_SIZE).get_page(request.GET.get("page"))
    context = {"endpoint": endpoint, "page": page, "log_size": selectors.DELIVERY_LOG_SIZE,
               "event_help": EVENT_HELP}
    template = "loyalty/webhooks/detail.html"
    if request.htmx and request.htmx.target == "delivery-log":
        template += "#delivery-log"
    else:
        reveal = request.session.get(SECRET_REVEAL_SESSION_KEY) == endpoint.pk
        if reveal:
            del request.session[SECRET_REVEAL_SESSION_KEY]
        context |= _secret_context(endpoint, in_full=reveal)
    response = render(request, template, context)
    patch_vary_headers(response, ["HX-Request"])
    return response


def _is_row(request, delivery) -> bool:
    return bool(request.htmx) and request.htmx.target == f"delivery-{delivery.pk}"


def _pretty_json(text: str) -> str | None:
    try:
        return json.dumps(json.loads(text), indent=2, ensure_ascii=False) if text else None
    except ValueError:
        return None


def _delivery_partial(request, delivery, **extra):
    """After a resend, or for a poll: one row of the log, or the state box of the detail
    page; both keep polling while the delivery is pending."""
    if _is_row(request, delivery):
        return render(request, "loyalty/webhooks/detail.html#delivery-row",
                      {"d": delivery, "endpoint": delivery.endpoint, "poll": True})
    return render(request, "loyalty/webhooks/delivery.html#delivery-state", {
        "delivery": delivery, "response_json": _pretty_json(delivery.response_body), "poll": True,
    } | extra)


@company_view(PERMISSION)
def webhook_delivery_detail(request, delivery_id):
    """What was sent and what came back."""
    delivery = selectors.webhook_delivery_get(company=request.company, delivery_id=delivery_id)
    if request.htmx and request.htmx.target in (f"delivery-{delivery.pk}", "delivery-state"):
        response = _delivery_partial(request, delivery)
    else:
        response = render(request, "loyalty/webhooks/delivery.html", {
            "delivery": delivery, "endpoint": delivery.endpoint,
            "body": json.dumps(json.loads(webhook_body(delivery)), indent=2, ensure_ascii=False),
            "response_json": _pretty_json(delivery.response_body),
        })
    patch_vary_headers(response, ["HX-Request"])
    return response


@require_POST
@company_view(PERMISSION)
def webhook_delivery_resend(request, delivery_id):
    """Send it again now, with a fresh round of retries."""
    delivery = selectors.webhook_delivery_get(company=request.company, delivery_id=delivery_id)
    delivery = delivery_resend(delivery, audit=audit_context(request))
    if request.htmx:
        return _delivery_partial(request, delivery, resent=True)
    messages.success(request, f"Delivery #{delivery.pk} queued again.")
    return redirect("webhook_delivery_detail", delivery_id=delivery.pk)
