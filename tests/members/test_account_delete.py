"""Delete my account on the loyalty page: confirmed by a code texted to the member, then the
data is erased, the customer signed out; signing up again with the number works."""

import re
from urllib.parse import quote

import pytest

from loyalty.models import ErasedIdentity, ErasureRequest, Persona, PointsEntry
from loyalty.services.privacy import erased_identities
from members.models import CustomerSession, LoginCode, SentMessage
from tests.factories import PersonaFactory

from .sign_in_helpers import last_code, page_on, send_limits_reset, sign_in, text

pytestmark = pytest.mark.django_db

PHONE = "+13035550142"


@pytest.fixture
def member(company, store, admin_user):
    page_on(company)
    persona = PersonaFactory(company=company, phone=PHONE, first_name="Maya", email="maya@example.com")
    from loyalty.services import points_adjust
    points_adjust(company=company, persona_id=persona.pk, delta=150, staff_user=admin_user, reason="Welcome")
    return persona


def delete_url(company):
    return f"/c/{company.slug}/preferences/delete/"


def erase_code(company):
    message = SentMessage.objects.filter(company=company, purpose="erase").order_by("-id").first()
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def test_delete_my_account_with_the_texted_code(client, company, member):
    sign_in(client, company, PHONE)
    page = client.get(delete_url(company))
    assert "150 points" in text(page) and "cannot be undone" in text(page)
    sent = client.post(delete_url(company), {"step": "send"})
    assert sent.status_code == 200 and "Enter it to delete your account" in text(sent)
    assert "delete your" in SentMessage.objects.get(purpose="erase").body
    # A sign-in code isn't a deletion code.
    wrong = client.post(delete_url(company), {"step": "confirm", "code": "000000"})
    assert wrong.status_code == 400 and "isn't right" in text(wrong)
    assert Persona.objects.get(pk=member.pk).phone == PHONE

    done = client.post(delete_url(company), {"step": "confirm", "code": erase_code(company)})
    assert done.status_code == 200 and "Your account is deleted" in text(done)
    persona = Persona.objects.get(pk=member.pk)
    assert persona.phone == "" and persona.first_name == "" and persona.points_balance == 0
    assert PointsEntry.objects.get(persona=persona, kind="forfeit").delta == -150
    assert ErasureRequest.objects.get(persona=persona).requested_via == "page"
    assert not CustomerSession.objects.filter(persona=persona, revoked_at__isnull=True).exists()
    # Signed out: the points page sends the browser to sign in.
    assert client.get(f"/c/{company.slug}/points/").status_code == 302


def test_signing_up_again_clears_the_phone_tombstone(client, company, member, store):
    sign_in(client, company, PHONE)
    client.post(delete_url(company), {"step": "send"})
    client.post(delete_url(company), {"step": "confirm", "code": erase_code(company)})
    assert erased_identities(company=company).match(phone=PHONE)
    LoginCode.objects.all().delete()
    send_limits_reset()
    response = sign_in(client, company, PHONE)
    assert response["Location"].endswith("/join/")  # not a member any more
    joined = client.post(f"/c/{company.slug}/join/", {
        "first_name": "Maya", "last_name": "Lopez", "birth_date": "1990-01-01", "email": "",
        "favourite_store": store.pk})
    assert joined.status_code == 302, text(joined)[:2000]
    assert not erased_identities(company=company).match(phone=PHONE)
    assert ErasedIdentity.objects.filter(company=company, kind="email").exists()
    new = Persona.objects.get(company=company, phone=PHONE)
    assert new.pk != member.pk and new.points_balance == 0


def test_delete_needs_a_sign_in(client, company, member):
    # given a signed-out browser: sending the code goes to sign in, and no code is sent
    response = client.post(delete_url(company), {"step": "send"})
    assert response.status_code == 302 and response["Location"] == f"/c/{company.slug}/sign-in/"
    assert not SentMessage.objects.filter(purpose="erase").exists()
    # opening the page goes to sign in, and back to the page once signed in
    response = client.get(delete_url(company))
    assert response.status_code == 302
    assert response["Location"] == f"/c/{company.slug}/sign-in/?next={quote(delete_url(company), safe='')}"
    client.post(response["Location"], {"phone": PHONE})
    response = client.post(f"/c/{company.slug}/sign-in/code/?next={quote(delete_url(company), safe='')}",
                           {"code": last_code(company, PHONE)})
    assert response["Location"] == delete_url(company)
    assert client.get(delete_url(company)).status_code == 200
