"""The customer's own pages at /c/<company slug>/: sign in by a code sent by SMS, join, my
points. Public, mobile first, without the staff shell; 404 while the company's page is off."""

from datetime import timedelta
from urllib.parse import urlencode

from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST

from loyalty.services.program import tier_progress, tiers_ranked
from stores.branding import branding_css_response, branding_version, logo_response
from stores.errors import DomainError
from stores.http import client_address

from . import selectors, services
from .forms import CodeForm, JoinForm, PhoneForm
from .sessions import (
    customer_session_end,
    customer_session_of,
    customer_session_start,
    next_path,
    sign_in_redirect,
)

# The number waiting for its code, and the number proven by a code but not yet a member:
# signed cookies scoped to the company's pages.
PENDING_COOKIE, PENDING_SALT, PENDING_SECONDS = "loyalty_pending", "members.pending", 15 * 60
VERIFIED_COOKIE, VERIFIED_SALT, VERIFIED_SECONDS = "loyalty_verified", "members.verified", 30 * 60


def _page(slug: str):
    """The company whose page is open at this slug; 404 for an unknown company or a page
    that is off."""
    company = selectors.open_page_company(slug)
    if company is None:
        raise Http404("No loyalty page here.")
    return company


def page_render(request, company, template, context=None, *, status=200, signed_in=False):
    """A customer page: members/<template> on members/base.html (name, logo, colour)."""
    base = {"company": company, "signed_in": signed_in,
            "branding_version": branding_version(company) if company.accent_color else ""}
    return render(request, f"members/{template}", base | (context or {}), status=status)


def _cookie_path(company) -> str:
    return f"/c/{company.slug}/"


def _set_signed(response, request, company, name, value, *, salt, seconds):
    response.set_signed_cookie(name, value, salt=salt, max_age=seconds, httponly=True,
                               secure=request.is_secure(), samesite="Lax", path=_cookie_path(company))


def _with_next(url: str, target: str) -> str:
    """`url` carrying the page to land on after signing in, when there is one."""
    return f"{url}?{urlencode({'next': target})}" if target else url


def _read_signed(request, company, name, *, salt, seconds) -> str | None:
    value = request.get_signed_cookie(name, default=None, salt=salt, max_age=seconds)
    if not value or not value.startswith(f"{company.pk}:"):
        return None
    return value.split(":", 1)[1]


# --- branding ---------------------------------------------------------------------------------------

def page_logo(request, slug):
    return logo_response(company=_page(slug), version=request.GET.get("v", ""))


def page_branding_css(request, slug):
    return branding_css_response(company=_page(slug), version=request.GET.get("v", ""))


# --- sign in ---------------------------------------------------------------------------------------

@never_cache
def home(request, slug):
    company = _page(slug)
    if customer_session_of(request, company):
        return redirect("members:points", slug=slug)
    return redirect("members:sign_in", slug=slug)


@never_cache
def sign_in(request, slug):
    """Step 1: the customer's mobile number; a code goes to it by SMS."""
    company = _page(slug)
    target = next_path(request, company)
    if request.method == "GET" and customer_session_of(request, company):
        return redirect(target or reverse("members:points", args=[slug]))
    form = PhoneForm(request.POST or None)
    context = {"form": form, "next": target}
    if request.method == "POST" and form.is_valid():
        try:
            phone = services.sign_in_phone(company=company, phone=form.cleaned_data["phone"])
            services.sign_in_code_send(company=company, phone=phone, address=client_address(request))
        except DomainError as exc:
            form.add_error("phone" if exc.extra.get("field") == "phone" else None, exc.message)
            status = 429 if exc.code.startswith("too_many") else 503 if exc.code == "sms_not_sent" else 400
            return page_render(request, company, "sign_in.html", context, status=status)
        response = redirect(_with_next(reverse("members:code", args=[slug]), target))
        _set_signed(response, request, company, PENDING_COOKIE, f"{company.pk}:{phone}",
                    salt=PENDING_SALT, seconds=PENDING_SECONDS)
        return response
    return page_render(request, company, "sign_in.html", context, status=400 if form.errors else 200)


@never_cache
def code(request, slug):
    """Step 2: the 6-digit code. A member is signed in; a number without membership goes
    on to join, its phone proven."""
    company = _page(slug)
    phone = _read_signed(request, company, PENDING_COOKIE, salt=PENDING_SALT, seconds=PENDING_SECONDS)
    target = next_path(request, company)
    if phone is None:
        return redirect(_with_next(reverse("members:sign_in", args=[slug]), target))
    form = CodeForm(request.POST or None)
    context = {"form": form, "phone": phone, "next": target}
    if request.method == "POST" and form.is_valid():
        try:
            checked = services.sign_in_code_check(company=company, phone=phone,
                                                  code=form.cleaned_data["code"])
        except DomainError as exc:
            form.add_error("code", exc.message)
            return page_render(request, company, "code.html", context, status=400)
        response = phone_proven_response(request, company, phone, checked.persona)
        response.delete_cookie(PENDING_COOKIE, path=_cookie_path(company))
        return response
    return page_render(request, company, "code.html", context, status=400 if form.errors else 200)


def phone_proven_response(request, company, phone: str, persona):
    """After a code proved the phone: its member signed in, on to the page they asked for
    (`next`, a page of this company's loyalty page) or their points; a number without
    membership on to joining (the same `next` with it), the phone proven for a while."""
    target = next_path(request, company)
    if persona is None:
        response = redirect(_with_next(reverse("members:join", args=[company.slug]), target))
        _set_signed(response, request, company, VERIFIED_COOKIE, f"{company.pk}:{phone}",
                    salt=VERIFIED_SALT, seconds=VERIFIED_SECONDS)
        return response
    response = redirect(target or reverse("members:points", args=[company.slug]))
    customer_session_start(company=company, persona=persona, request=request, response=response)
    return response


@require_POST
def sign_out(request, slug):
    company = _page(slug)
    response = redirect("members:sign_in", slug=slug)
    customer_session_end(request=request, response=response, company=company)
    return response


# --- join ------------------------------------------------------------------------------------------

@never_cache
def join(request, slug):
    company = _page(slug)
    phone = _read_signed(request, company, VERIFIED_COOKIE, salt=VERIFIED_SALT, seconds=VERIFIED_SECONDS)
    target = next_path(request, company)
    if phone is None:
        return redirect(_with_next(reverse("members:sign_in", args=[slug]), target))
    wording = services.consent_wording(company)
    form = JoinForm(request.POST or None, stores=company.stores.order_by("name"), wording=wording)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            persona = services.member_join(
                company=company, phone=phone, first_name=data["first_name"], last_name=data["last_name"],
                birth_date=data["birth_date"], email=data["email"], store=data["favourite_store"],
                sms_consent=data["sms_consent"], email_consent=data["email_consent"],
                address=client_address(request), page_url=request.build_absolute_uri())
        except DomainError as exc:
            field = exc.extra.get("field")
            form.add_error(field if field in form.fields else None, exc.message)
        else:
            response = redirect(target or reverse("members:points", args=[slug]) + "?welcome=1")
            customer_session_start(company=company, persona=persona, request=request, response=response)
            response.delete_cookie(VERIFIED_COOKIE, path=_cookie_path(company))
            return response
    return page_render(request, company, "join.html", {"form": form, "phone": phone, "next": target},
                   status=400 if form.errors else 200)


# --- my points -------------------------------------------------------------------------------------

@never_cache
def points(request, slug):
    company = _page(slug)
    session = customer_session_of(request, company)
    if session is None:
        return sign_in_redirect(request, slug)
    persona = session.persona
    try:
        page = max(1, int(request.GET.get("page", "1")))
    except ValueError:
        page = 1
    entries, has_next = selectors.points_history(persona=persona, page=page)
    for entry in entries:
        entry.amount = abs(entry.delta)
    program = company.program_or_none
    latest = entries[0].created_at if page == 1 and entries else None
    expires_at = selectors.points_expiry(persona=persona, program=program, last_entry_at=latest)
    soon = expires_at is not None and expires_at - timezone.now() <= timedelta(
        days=selectors.EXPIRY_WARNING_DAYS)
    tiers = tiers_ranked(company=company)
    progress = tier_progress(persona, tiers=tiers)
    percent = None
    if progress.next is not None:
        reached = progress.next.threshold - progress.to_next
        start = progress.current.threshold if progress.current else 0
        span = progress.next.threshold - start
        percent = int(max(0, min(100, (reached - start) * 100 / span))) if span > 0 else 0
    return page_render(request, company, "points.html", {
        "persona": persona, "entries": entries, "page": page, "has_next": has_next,
        "tier": progress, "tier_percent": percent, "expires_at": expires_at, "expiring_soon": soon,
        "welcome": request.GET.get("welcome") == "1",
    }, signed_in=True)
