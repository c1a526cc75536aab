"""Customer sign-in sessions: a cookie of their own (CUSTOMER_COOKIE), apart from the staff
session, valid CUSTOMER_SESSION_DAYS, revocable (signing out, or the staff from the card)."""

import functools
import hashlib
import secrets
from datetime import timedelta
from urllib.parse import unquote, urlencode, urlsplit

from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from .models import CustomerSession

CUSTOMER_COOKIE = "loyalty_member"
CUSTOMER_SESSION_DAYS = 30
# last_seen_at is written at most this often per session (not on every page).
SEEN_EVERY = timedelta(minutes=5)


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def customer_session_start(*, company, persona, request, response) -> CustomerSession:
    """Sign the persona in on this browser: a new session and its cookie on `response`."""
    token = secrets.token_urlsafe(32)
    now = timezone.now()
    session = CustomerSession.objects.create(
        company=company, persona=persona, token_hash=_hash(token), created_at=now, last_seen_at=now,
        expires_at=now + timedelta(days=CUSTOMER_SESSION_DAYS),
        user_agent=request.headers.get("User-Agent", "")[:200], ip=request.META.get("REMOTE_ADDR") or None)
    response.set_cookie(CUSTOMER_COOKIE, token, max_age=CUSTOMER_SESSION_DAYS * 86400, httponly=True,
                        secure=request.is_secure(), samesite="Lax", path=f"/c/{company.slug}/")
    return session


def customer_session_of(request, company) -> CustomerSession | None:
    """The live session this browser holds for `company`, or None (another company's cookie,
    an expired or revoked one)."""
    token = request.COOKIES.get(CUSTOMER_COOKIE)
    if not token:
        return None
    now = timezone.now()
    session = (CustomerSession.objects.select_related("persona")
               .filter(token_hash=_hash(token), company=company, revoked_at__isnull=True, expires_at__gt=now,
                       persona__company=company).first())
    if session and now - session.last_seen_at > SEEN_EVERY:
        CustomerSession.objects.filter(pk=session.pk).update(last_seen_at=now)
    return session


def customer_session_end(*, request, response, company) -> None:
    session = customer_session_of(request, company)
    if session:
        CustomerSession.objects.filter(pk=session.pk).update(revoked_at=timezone.now())
    response.delete_cookie(CUSTOMER_COOKIE, path=f"/c/{company.slug}/")


def customer_sessions_revoke(*, persona) -> int:
    """Sign the persona out everywhere (erasure, or staff acting on a request)."""
    now = timezone.now()
    live = CustomerSession.objects.filter(persona=persona, revoked_at__isnull=True, expires_at__gt=now)
    return live.update(revoked_at=now)


def sign_in_redirect(request, slug):
    """To the sign-in page; a page opened (GET) comes back as its `next`, to land on after
    signing in."""
    url = reverse("members:sign_in", args=[slug])
    if request.method == "GET":
        url += "?" + urlencode({"next": request.get_full_path()})
    return redirect(url)


def next_path(request, company) -> str:
    """The `next` a sign-in carries (form or query) when it is a page of this company's
    loyalty page (a path under /c/<slug>/); "" for anything else: another company's page,
    another site, a path that climbs out with "..", so the customer lands on the usual page."""
    target = request.POST.get("next") or request.GET.get("next") or ""
    if not target or not url_has_allowed_host_and_scheme(target, allowed_hosts=None,
                                                          require_https=request.is_secure()):
        return ""
    parts = urlsplit(target)
    path = unquote(parts.path)
    if parts.scheme or parts.netloc or not path.startswith(f"/c/{company.slug}/"):
        return ""
    if "\\" in path or any(ord(c) < 32 or c == "\x7f" for c in unquote(target)):
        return ""
    if any(segment in (".", "..") for segment in path.split("/")):
        return ""
    return target


def customer_required(view):
    """For views under /c/<slug>/ that need a signed-in customer: sets request.company,
    request.customer_session and request.persona, or sends the browser to sign in."""

    @functools.wraps(view)
    def wrapper(request, slug, *args, **kwargs):
        from .selectors import open_page_company

        company = open_page_company(slug)
        if company is None:  # no such company, or its page is off
            raise Http404("No loyalty page here.")
        session = customer_session_of(request, company)
        if session is None:
            return sign_in_redirect(request, slug)
        request.company, request.customer_session, request.persona = company, session, session.persona
        return view(request, slug, *args, **kwargs)

    return wrapper
