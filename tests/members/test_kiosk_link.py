"""From the waiting-room tablet to the loyalty page: once checked in, "Text me a link to my
rewards" texts the number a one-time sign-in link; opened on the customer's phone, it signs
them in (a member) or leads to joining (a new number), and works once."""

import re

import pytest
from django.urls import reverse

from members.models import CustomerSession, SentMessage
from tests.factories import PersonaFactory
from tests.waitingroom.conftest import queue_store  # noqa: F401 - fixture

from .sign_in_helpers import page_on, text

pytestmark = pytest.mark.django_db

PHONE = "+13035550123"


def check_in(client, store, phone="(303) 555-0123", first_name="Rita"):
    response = client.post(reverse("queue_check_in", args=[store.checkin_token]),
                           {"phone": phone, "first_name": first_name, "last_name": "Regular"})
    assert response.status_code == 200, text(response)[:1000]
    return text(response)


def offer_token(page: str) -> tuple[str, str]:
    action = re.search(r'<form method="post" action="([^"]+)" class="kiosk-offer">', page).group(1)
    token = re.search(r'name="token" value="([^"]+)"', page).group(1)
    return action, token


def link_path() -> str:
    body = SentMessage.objects.filter(purpose="sign_in_link").latest("id").body
    return re.search(r"https?://[^/\s]+(/\S+/)", body).group(1)


def test_a_member_checked_in_gets_a_link_that_signs_them_in_once(client, company, queue_store):  # noqa: F811
    page_on(company)
    member = PersonaFactory(company=company, phone=PHONE, first_name="Rita")
    tablet = check_in(client, queue_store)
    assert "Text me a link to my rewards" in tablet
    action, token = offer_token(tablet)

    sent = client.post(action, {"token": token})
    assert sent.status_code == 200 and "Check your phone" in text(sent)
    message = SentMessage.objects.get(purpose="sign_in_link")
    assert message.to == PHONE and f"/c/{company.slug}/sign-in/link/" in message.body
    assert "Rita" not in text(sent)  # the tablet is told nothing of whose number it is

    phone = client.__class__()  # the customer's own phone
    opened = phone.get(link_path())
    assert opened.status_code == 200 and "(303) 555-0123" in text(opened)
    assert not CustomerSession.objects.exists()  # a link previewer's GET signs nobody in
    signed_in = phone.post(link_path())
    assert signed_in.status_code == 302 and signed_in["Location"] == f"/c/{company.slug}/points/"
    assert CustomerSession.objects.get().persona == member
    again = client.__class__().post(link_path())
    assert again.status_code == 400 and not CustomerSession.objects.exclude(persona=member).exists()
    assert CustomerSession.objects.count() == 1


def test_a_new_number_is_led_to_joining(client, company, queue_store):  # noqa: F811
    page_on(company)
    action, token = offer_token(check_in(client, queue_store, phone="(720) 555-0188", first_name="Theo"))
    client.post(action, {"token": token})
    joined = client.__class__().post(link_path())
    assert joined.status_code == 302 and joined["Location"] == f"/c/{company.slug}/join/"


def test_no_offer_when_the_page_is_off_and_another_companys_token_is_refused(
        client, company, other_company, queue_store):  # noqa: F811
    PersonaFactory(company=company, phone=PHONE)
    assert "Text me a link" not in check_in(client, queue_store)
    page_on(company)
    page_on(other_company)
    _, token = offer_token(check_in(client, queue_store))
    # this company's token posted to the other company's page
    assert client.post(f"/c/{other_company.slug}/sign-in/from-kiosk/", {"token": token}).status_code == 404
    assert client.post(f"/c/{company.slug}/sign-in/from-kiosk/", {"token": token + "x"}).status_code == 404
    assert not SentMessage.objects.exists()


def test_a_tampered_or_foreign_link_is_expired(client, company, other_company, queue_store):  # noqa: F811
    page_on(company)
    page_on(other_company)
    PersonaFactory(company=company, phone=PHONE)
    action, token = offer_token(check_in(client, queue_store))
    client.post(action, {"token": token})
    path = link_path()
    foreign = path.replace(f"/c/{company.slug}/", f"/c/{other_company.slug}/")
    assert client.post(foreign).status_code == 400
    assert client.post(path[:-2] + "x/").status_code == 400
    assert not CustomerSession.objects.exists()


def test_past_the_send_limit_the_tablet_says_so_and_nothing_more_is_sent(client, company, queue_store):  # noqa: F811
    page_on(company)
    PersonaFactory(company=company, phone=PHONE)
    action, token = offer_token(check_in(client, queue_store))
    for _ in range(3):  # the number's limit: 3 codes in 10 minutes
        assert client.post(action, {"token": token}).status_code == 200
    refused = client.post(action, {"token": token})
    assert refused.status_code == 429 and "We couldn't send it" in text(refused)
    assert SentMessage.objects.filter(purpose="sign_in_link").count() == 3
