"""A customer's sign-in is a cookie of its own, for one company, revocable."""

import datetime as dt

import pytest
from django.http import HttpResponse
from django.test import RequestFactory
from django.utils import timezone

from members.models import CustomerSession
from members.sessions import (
    CUSTOMER_COOKIE,
    customer_session_end,
    customer_session_of,
    customer_session_start,
    customer_sessions_revoke,
)
from tests.factories import PersonaFactory

pytestmark = pytest.mark.django_db


def _signed_in(company, persona):
    response = HttpResponse()
    customer_session_start(company=company, persona=persona, request=RequestFactory().get("/"),
                           response=response)
    cookie = response.cookies[CUSTOMER_COOKIE]
    return cookie, RequestFactory(HTTP_COOKIE=f"{CUSTOMER_COOKIE}={cookie.value}").get(f"/c/{company.slug}/")


def test_a_session_is_found_by_its_cookie_for_its_company_only(company, other_company):
    persona = PersonaFactory(company=company)
    cookie, request = _signed_in(company, persona)
    # the cookie is scoped to the company's pages, not readable by scripts, and lasts 30 days
    assert cookie["path"] == f"/c/{company.slug}/" and cookie["httponly"] and cookie["max-age"] == 30 * 86400
    assert customer_session_of(request, company).persona == persona
    assert customer_session_of(request, other_company) is None
    # only the token's hash is stored
    assert cookie.value not in CustomerSession.objects.values_list("token_hash", flat=True)


def test_signing_out_expiry_and_revocation_end_the_session(company):
    persona = PersonaFactory(company=company)
    _, request = _signed_in(company, persona)
    customer_session_end(request=request, response=HttpResponse(), company=company)
    assert customer_session_of(request, company) is None

    _, request = _signed_in(company, persona)
    now = timezone.now()
    CustomerSession.objects.filter(revoked_at__isnull=True).update(
        expires_at=now - dt.timedelta(seconds=1), created_at=now - dt.timedelta(days=31))
    assert customer_session_of(request, company) is None

    _, request = _signed_in(company, persona)
    assert customer_sessions_revoke(persona=persona) == 1
    assert customer_session_of(request, company) is None
