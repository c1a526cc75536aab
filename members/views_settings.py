"""Settings › Loyalty page (admins): the customer page on or off, the minimum age to join
(per market), the SMS provider, and a test message. The company is the request's; there is
no id in the URL to reach another company's settings."""

from django.contrib import messages
from django.shortcuts import redirect, render
from django.views.decorators.http import require_POST

from stores.audit import audit_context
from stores.errors import DomainError
from stores.tenancy import company_view

from .forms_settings import LoyaltyPageSettingsForm, TestMessageForm
from .selectors import page_settings
from .services_settings import loyalty_page_settings_update, loyalty_page_test_message_send
from .sms import SmsNotSent, sms_route

TEMPLATE = "members/settings.html"


def _page(request, *, form=None, test_form=None, test_result=None, status=200):
    page = page_settings(request.company)
    route = sms_route(request.company) if page.sms_provider == "platform" else None
    context = {"page": page, "form": form or LoyaltyPageSettingsForm(page=page),
               "test_form": test_form or TestMessageForm(), "test_result": test_result,
               "platform_provider": route.provider if route else ""}
    return render(request, TEMPLATE, context, status=status)


@company_view("loyalty.manage")
def loyalty_page_settings_view(request):
    if request.method != "POST":
        return _page(request)
    form = LoyaltyPageSettingsForm(request.POST, page=page_settings(request.company))
    if form.is_valid():
        try:
            loyalty_page_settings_update(company=request.company, audit=audit_context(request),
                                         **form.settings_data())
        except DomainError as exc:
            form.add_error(None, exc.message)
        else:
            messages.success(request, "Loyalty page settings saved.")
            return redirect("loyalty_page_settings")
    return _page(request, form=form, status=400)


@require_POST
@company_view("loyalty.manage")
def loyalty_page_test_message_view(request):
    form = TestMessageForm(request.POST)
    result, status = None, 400
    if form.is_valid():
        try:
            sent = loyalty_page_test_message_send(company=request.company, audit=audit_context(request),
                                                  to=form.cleaned_data["to"])
        except SmsNotSent as exc:
            result = {"ok": False, "message": exc.message, "code": exc.extra.get("provider_code", ""),
                      "detail": exc.extra.get("provider_error", "")}
            status = 502
        else:
            result, status = {"ok": True, "sent": sent}, 200
    if request.htmx:  # htmx swaps only a 200: the result is in the region either way
        return render(request, TEMPLATE + "#test-message", {"test_form": form, "test_result": result})
    return _page(request, test_form=form, test_result=result, status=status)
