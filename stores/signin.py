"""Staff sign-in: what a lockout after failed passwords looks like, and the gate that asks
for a two-factor code (or for setting two-factor up) before any page."""

import math
from datetime import datetime
from urllib.parse import urlencode

from axes.helpers import get_client_parameters, get_client_username, get_cool_off, get_failure_limit
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.forms import AuthenticationForm
from django.shortcuts import redirect, render
from django.urls import Resolver404, resolve, reverse
from django.utils import timezone
from django_htmx.http import HttpResponseClientRedirect

from .selectors import user_has_two_factor


def lockout_ends(request, credentials=None) -> datetime:
    """When the lockout this request ran into lifts. Axes counts the failures of the last
    cool-off per account and per address; each lock lifts once enough of its failures have
    aged out of that window (the oldest first)."""
    cool_off = get_cool_off(request)
    limit = get_failure_limit(request, credentials)
    now = timezone.now()
    username = get_client_username(request, credentials)
    ends = []
    for filters in get_client_parameters(username, request.axes_ip_address, request.axes_user_agent,
                                         request, credentials):
        failures = (AccessAttempt.objects.filter(**filters, attempt_time__gte=now - cool_off)
                    .order_by("attempt_time").values_list("attempt_time", "failures_since_start"))
        counted = sum(count for _, count in failures)
        for attempt_time, count in failures:
            if counted < limit:
                break
            counted -= count
            ends.append(attempt_time + cool_off)
    return max(ends, default=now + cool_off)


def lockout_message(retry_at: datetime) -> str:
    minutes = max(1, math.ceil((retry_at - timezone.now()).total_seconds() / 60))
    return (f"Too many failed sign-ins. Try again after {timezone.localtime(retry_at):%H:%M} "
            f"(in {minutes} minute{'s' if minutes != 1 else ''}).")


def lockout_response(request, original_response=None, credentials=None):
    """Axes' answer to a locked-out sign-in: the login page again, saying when to retry."""
    username = get_client_username(request, credentials) or ""
    form = AuthenticationForm(request, initial={"username": username})
    context = {"form": form, "lockout": lockout_message(lockout_ends(request, credentials)),
               "next": request.POST.get("next", "")}
    return render(request, "registration/login.html", context, status=settings.AXES_HTTP_RESPONSE_CODE)


# --- The two-factor gate ----------------------------------------------------------------------

# Never gated: the POS and audience APIs (API keys, not sessions), static files, health checks.
OPEN_PREFIXES = ("/api/", "/healthz", "/readyz", settings.STATIC_URL)
# Pages each step may show, besides logging in and out.
STEP_PAGES = {
    "login_code": {"login_code"},
    "two_factor": {"two_factor", "two_factor_confirm"},
}
ALWAYS_OPEN = {"login", "logout"}


class TwoFactorMiddleware:
    """After the password and before any page: a member with two-factor on who has not
    given a code this session goes to the code step; a member of a company that requires
    two-factor and has not set it up goes to set it up. Sets `request.two_factor_step` to
    the page they are held at (None when free to go anywhere)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        step = request.two_factor_step = self.step(request)
        if step is None or self.page_allowed(request, step):
            return self.get_response(request)
        url = reverse(step)
        if request.method == "GET" and not request.htmx:
            url += "?" + urlencode({"next": request.get_full_path()})
        return HttpResponseClientRedirect(url) if request.htmx else redirect(url)

    @staticmethod
    def step(request) -> str | None:
        user = request.user
        if not user.is_authenticated or request.path_info.startswith(OPEN_PREFIXES):
            return None
        if user.is_verified():
            return None
        if user_has_two_factor(user=user):
            return "login_code"
        if any(m.company.require_two_factor for m in getattr(request, "memberships", [])):
            return "two_factor"
        return None

    @staticmethod
    def page_allowed(request, step: str) -> bool:
        try:
            name = resolve(request.path_info).url_name
        except Resolver404:
            return False
        return name in ALWAYS_OPEN or name in STEP_PAGES[step]
