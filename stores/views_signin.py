"""The code step of signing in, and a member's own Two-factor authentication page."""

from base64 import b32encode

from django import forms
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST
from django_otp import login as otp_login
from django_otp.plugins.otp_static.models import StaticDevice

from .audit import audit_context
from .errors import CodeRefused, DomainError
from .qr import qr_svg
from .selectors import authenticator_get, recovery_codes_left, two_factor_required_by, user_has_two_factor
from .services import (
    recovery_codes_regenerate,
    two_factor_disable,
    two_factor_enrol_confirm,
    two_factor_enrol_start,
    two_factor_verify,
)


class CodeForm(forms.Form):
    code = forms.CharField(max_length=32, widget=forms.TextInput(attrs={
        "autocomplete": "one-time-code", "autocapitalize": "off", "spellcheck": "false",
        "autofocus": True}))


def _next_url(request) -> str:
    target = request.POST.get("next") or request.GET.get("next") or ""
    if target and url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()},
                                                  require_https=request.is_secure()):
        return target
    return "/"


def _refused(form, exc: DomainError) -> int:
    form.add_error("code" if exc.extra.get("field") == "code" else None, exc.message)
    return 429 if exc.extra.get("retry_at") else 400


@never_cache
@login_required
def login_code(request):
    """After the password, for a member with two-factor on: a code from the app or a
    recovery code, before any page."""
    user = request.user
    if user.is_verified() or not user_has_two_factor(user=user):
        return redirect(_next_url(request))
    form = CodeForm(request.POST or None)
    status = 200
    if request.method == "POST" and form.is_valid():
        try:
            device = two_factor_verify(user=user, code=form.cleaned_data["code"])
        except CodeRefused as exc:
            status = _refused(form, exc)
        else:
            request.session.cycle_key()  # the session now carries more trust: a new id
            otp_login(request, device)
            if isinstance(device, StaticDevice):
                left = recovery_codes_left(user=user)
                messages.warning(request, f"You signed in with a recovery code; {left} left. "
                                          "Make new ones on Two-factor authentication if you are low.")
            return redirect(_next_url(request))
    elif request.method == "POST":
        status = 400
    return render(request, "registration/login_code.html",
                  {"form": form, "next": _next_url(request)}, status=status)


def _page(request, *, form=None, disable_form=None, recovery_codes=None, status=200):
    """Two-factor authentication: set-up (QR code, secret, a code to confirm) while it is
    off; its state, recovery codes and turning it off while it is on."""
    user = request.user
    device = authenticator_get(user=user)
    context = {"device": device, "recovery_codes": recovery_codes,
               "required_by": two_factor_required_by(user=user),
               "form": form or CodeForm(), "disable_form": disable_form or CodeForm()}
    if device is None:
        pending = two_factor_enrol_start(user=user)
        secret = b32encode(pending.bin_key).decode()
        context |= {"qr": qr_svg(pending.config_url, title="QR code for your authenticator app", scale=5),
                    "secret": " ".join(secret[i:i + 4] for i in range(0, len(secret), 4))}
    else:
        context["codes_left"] = recovery_codes_left(user=user)
    response = render(request, "stores/two_factor.html", context, status=status)
    response["Cache-Control"] = "no-store"  # a secret or recovery codes are on it
    return response


@login_required
def two_factor(request):
    return _page(request)


@require_POST
@login_required
def two_factor_confirm(request):
    form = CodeForm(request.POST)
    if not form.is_valid():
        return _page(request, form=form, status=400)
    try:
        device, codes = two_factor_enrol_confirm(user=request.user, code=form.cleaned_data["code"],
                                                 audit=audit_context(request))
    except CodeRefused as exc:
        status = _refused(form, exc)
        return _page(request, form=form, status=status)
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("two_factor")
    request.session.cycle_key()
    otp_login(request, device)  # the code just typed verifies this session too
    messages.success(request, "Two-factor authentication is on. Signing in now asks for a code "
                              "from your app.")
    return _page(request, recovery_codes=codes)


def _verified_or_back(request):
    if not request.user.is_verified():
        messages.error(request, "Sign in with a code from your app first.")
        return redirect("two_factor")
    return None


@require_POST
@login_required
def two_factor_recovery_codes(request):
    if (back := _verified_or_back(request)) is not None:
        return back
    try:
        codes = recovery_codes_regenerate(user=request.user, audit=audit_context(request))
    except DomainError as exc:
        messages.error(request, exc.message)
        return redirect("two_factor")
    return _page(request, recovery_codes=codes)


@require_POST
@login_required
def two_factor_disable_view(request):
    if (back := _verified_or_back(request)) is not None:
        return back
    form = CodeForm(request.POST)
    if not form.is_valid():
        return _page(request, disable_form=form, status=400)
    try:
        two_factor_disable(user=request.user, code=form.cleaned_data["code"], audit=audit_context(request))
    except DomainError as exc:
        status = _refused(form, exc)
        return _page(request, disable_form=form, status=status)
    messages.success(request, "Two-factor authentication is off. Signing in asks only for your password.")
    return redirect("two_factor")
