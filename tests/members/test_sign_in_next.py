"""A page that needs a signed-in customer sends them to sign in and, once signed in (or
joined), back to that page; only pages of the same company's loyalty page, anything else
lands on the usual page."""

import datetime as dt
from urllib.parse import quote

import pytest
from django.utils import timezone

from tests.factories import PersonaFactory

from .sign_in_helpers import last_code, page_on, text

pytestmark = pytest.mark.django_db

PHONE = "+13035550142"


def wallet(company):
    return f"/c/{company.slug}/wallet/"


def sign_in_from(client, company, sign_in_url, phone=PHONE):
    """As a browser does: open the sign-in page, send the number, then the code, each form to
    the page it came from; returns the response to the code."""
    page = client.get(sign_in_url)
    assert page.status_code == 200
    response = client.post(sign_in_url, {"phone": phone})
    assert response.status_code == 302, text(response)[:2000]
    code_url = response["Location"]
    assert client.get(code_url).status_code == 200
    return client.post(code_url, {"code": last_code(company, phone)})


def test_sign_in_from_the_wallet_lands_on_the_wallet(client, company):
    # given a signed-out member opening their wallet
    PersonaFactory(company=company, phone=PHONE, first_name="Maya")
    page_on(company)
    response = client.get(wallet(company))
    # then they are asked to sign in, the wallet kept as where to go next
    assert response.status_code == 302
    assert response["Location"] == f"/c/{company.slug}/sign-in/?next={quote(wallet(company), safe='')}"
    assert f'name="next" value="{wallet(company)}"' in text(client.get(response["Location"]))
    # when they sign in
    response = sign_in_from(client, company, response["Location"])
    # then they land on the wallet, signed in
    assert response.status_code == 302 and response["Location"] == wallet(company)
    page = client.get(response["Location"])
    assert page.status_code == 200 and "My wallet" in text(page)


def test_the_next_page_rides_in_the_forms_hidden_field(client, company):
    # given a member whose code form posts the hidden field only (no query string)
    PersonaFactory(company=company, phone=PHONE)
    page_on(company)
    client.post(f"/c/{company.slug}/sign-in/", {"phone": PHONE, "next": wallet(company)})
    response = client.post(f"/c/{company.slug}/sign-in/code/",
                           {"code": last_code(company, PHONE), "next": wallet(company)})
    # then they land on the wallet
    assert response["Location"] == wallet(company)


def test_joining_from_the_wallet_lands_on_the_wallet(client, company, store):
    # given a number new to the company, signing in from the wallet
    page_on(company)
    response = sign_in_from(client, company, client.get(wallet(company))["Location"])
    # then joining keeps the wallet as where to go next
    assert response.status_code == 302 and response["Location"].startswith(f"/c/{company.slug}/join/?next=")
    join_url = response["Location"]
    birth = timezone.localdate() - dt.timedelta(days=365 * 30)
    response = client.post(join_url, {"first_name": "Maya", "last_name": "Lopez",
                                      "birth_date": birth.isoformat(), "email": "maya@example.com",
                                      "favourite_store": store.pk})
    # and once joined they land on the wallet, signed in
    assert response.status_code == 302 and response["Location"] == wallet(company)
    assert client.get(wallet(company)).status_code == 200


def test_signed_in_customer_opening_sign_in_goes_to_the_next_page(client, company):
    PersonaFactory(company=company, phone=PHONE)
    page_on(company)
    sign_in_from(client, company, f"/c/{company.slug}/sign-in/")
    response = client.get(f"/c/{company.slug}/sign-in/?next={quote(wallet(company))}")
    assert response.status_code == 302 and response["Location"] == wallet(company)


@pytest.mark.parametrize("target", [
    "/c/{other}/wallet/",
    "https://evil.example/",
    "//evil.com/",
    "https://testserver/c/{slug}/wallet/",
    "/c/{slug}/../{other}/wallet/",
    "/c/{slug}/%2e%2e/{other}/wallet/",
    "/c/{slug}/..\\{other}/wallet/",
    "/\\evil.com/c/{slug}/",
    "javascript:alert(1)//c/{slug}/",
    "/c/{slug}-other/wallet/",
])
def test_a_next_outside_this_companys_page_lands_on_the_usual_page(client, company, other_company, target):
    # given a member and a sign-in link whose `next` leads somewhere else
    PersonaFactory(company=company, phone=PHONE)
    page_on(company)
    page_on(other_company)
    target = target.format(slug=company.slug, other=other_company.slug)
    sign_in_url = f"/c/{company.slug}/sign-in/?next={quote(target, safe='')}"
    page = client.get(sign_in_url)
    assert page.status_code == 200 and 'name="next"' not in text(page)
    # when they sign in
    response = sign_in_from(client, company, sign_in_url)
    # then they land on their points
    assert response.status_code == 302 and response["Location"] == f"/c/{company.slug}/points/"
