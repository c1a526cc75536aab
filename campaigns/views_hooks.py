"""The campaign pages and hooks the outside world reaches, without signing in: Twilio's
webhooks, the email unsubscribe page, tracked links. Thin: campaigns/hooks.py does the work."""

from django.http import Http404, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from twilio.twiml.messaging_response import MessagingResponse

from stores.branding import branding_version
from stores.http import client_address

from . import hooks


def _twiml(reply: str | None) -> HttpResponse:
    response = MessagingResponse()
    if reply:
        response.message(reply)
    return HttpResponse(response.to_xml(), content_type="text/xml; charset=utf-8")


def _refused(exc: hooks.HookRefused) -> HttpResponse:
    return HttpResponse(exc.message, status=403, content_type="text/plain; charset=utf-8")


def _signed_company(request, slug):
    return hooks.twilio_company(slug=slug, full_path=request.get_full_path(), params=request.POST,
                                signature=request.headers.get("X-Twilio-Signature", ""))


@csrf_exempt  # Twilio's POST: its signature is the proof
@require_POST
def twilio_inbound(request, slug):
    try:
        company = _signed_company(request, slug)
    except hooks.HookRefused as exc:
        return _refused(exc)
    return _twiml(hooks.inbound_receive(company=company, params=request.POST))


@csrf_exempt  # Twilio's POST: its signature is the proof
@require_POST
def twilio_status(request, slug):
    try:
        company = _signed_company(request, slug)
    except hooks.HookRefused as exc:
        return _refused(exc)
    hooks.delivery_status_record(company=company, params=request.POST, recipient_ref=request.GET.get("r", ""))
    return HttpResponse("", content_type="text/plain; charset=utf-8")  # an unknown sid too


# The signed token in the URL is the proof; a mail provider's one-click unsubscribe
# (RFC 8058) posts without a CSRF token.
@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    target = hooks.unsubscribe_target(token)
    if target is None:
        raise Http404("No such unsubscribe link.")
    company, persona = target
    done = request.method == "POST"
    if done:
        one_click = request.POST.get("List-Unsubscribe") == "One-Click"
        hooks.email_unsubscribe(company=company, persona=persona, one_click=one_click,
                                address=client_address(request), page_url=request.build_absolute_uri())
    return render(request, "campaigns/unsubscribe_done.html" if done else "campaigns/unsubscribe.html", {
        "company": company, "signed_in": False,
        "branding_version": branding_version(company) if company.accent_color else ""})


@never_cache
@require_GET
def link(request, code, recipient=None):
    found = hooks.link_click(code=code, recipient_ref=recipient)
    if found is None:
        raise Http404("No such link.")
    return HttpResponseRedirect(found.url)
