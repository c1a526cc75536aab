"""Joining the program from the loyalty page, the phone proven by its code."""

import datetime as dt

import pytest
from django.urls import reverse
from django.utils import timezone

from loyalty.models import ConsentRecord, LoyaltyProgram, Persona, PointsEntry
from loyalty.signals import persona_enrolled
from members.models import CustomerSession
from members.services import consent_wording
from tests.factories import PersonaFactory, RetailStoreFactory

from .sign_in_helpers import page_on, sign_in, text

pytestmark = pytest.mark.django_db

PHONE = "+13035550142"


def years_ago(years: int, days: int = 0) -> dt.date:
    today = timezone.localdate()
    return today.replace(year=today.year - years) - dt.timedelta(days=days)


def join_data(store, **overrides):
    return {"first_name": "Maya", "last_name": "Lopez", "birth_date": years_ago(30).isoformat(),
            "email": "maya@example.com", "favourite_store": store.pk} | overrides


@pytest.fixture
def verified(client, company):
    """A browser whose number (new to the company) just passed its code."""
    page_on(company)
    response = sign_in(client, company, PHONE)
    assert response["Location"].endswith("/join/")
    return client


def test_join_creates_a_persona_sourced_from_the_loyalty_page_with_its_bonus(verified, company, store,
                                                                            django_capture_on_commit_callbacks):
    # given a signup bonus and someone listening for enrolments (as the POS push does)
    LoyaltyProgram.objects.create(company=company, signup_bonus=150)
    enrolled = []
    persona_enrolled.connect(lambda sender, persona, **kw: enrolled.append(persona.pk), weak=False,
                             dispatch_uid="test-join")
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = verified.post(f"/c/{company.slug}/join/", join_data(store))
    finally:
        persona_enrolled.disconnect(dispatch_uid="test-join")
    # then they land on their points, signed in
    assert response.status_code == 302 and "/points/" in response["Location"]
    persona = Persona.objects.get(company=company, phone=PHONE)
    assert persona.is_member and persona.sourced_from.name == "Loyalty page"
    assert (persona.first_name, persona.favourite_store, persona.market) == ("Maya", store, "CO")
    assert persona.points_balance == 150 and enrolled == [persona.pk]
    assert CustomerSession.objects.get().persona == persona
    page = text(verified.get(response["Location"]))
    assert "Welcome to Green Leaf Rewards, Maya!" in page and "150" in page
    # no box ticked: no consent, no opt-in
    assert not ConsentRecord.objects.exists()
    assert not persona.sms_opt_in and not persona.email_opt_in


def test_join_enrols_the_known_persona_with_its_points_and_bonus(verified, company, store):
    # given the number is a customer who bought before without being a member
    LoyaltyProgram.objects.create(company=company, signup_bonus=100)
    known = PersonaFactory(company=company, phone=PHONE, is_member=False, enrolled_at=None, first_name="M")
    # when they join
    verified.post(f"/c/{company.slug}/join/", join_data(store))
    # then that persona is enrolled (no second one), with the bonus, and its details filled in
    assert Persona.objects.filter(company=company, phone=PHONE).count() == 1
    known.refresh_from_db()
    assert known.is_member and known.points_balance == 100 and known.first_name == "Maya"
    assert PointsEntry.objects.filter(persona=known, idempotency_key=f"signup:{known.pk}").exists()
    assert CustomerSession.objects.get().persona == known


def test_a_member_signing_in_skips_join(client, company):
    PersonaFactory(company=company, phone=PHONE)
    page_on(company)
    assert sign_in(client, company, PHONE)["Location"].endswith("/points/")


def test_join_under_age_is_refused_by_the_stores_market(verified, company):
    # given 21 to join in Colorado, 18 in Michigan
    page_on(company, minimum_age=21, minimum_ages={"CO": 21, "MI": 18})
    colorado = RetailStoreFactory(company=company, name="Denver", state="CO")
    michigan = RetailStoreFactory(company=company, name="Detroit", state="MI")
    nineteen = years_ago(19).isoformat()
    # when a 19-year-old picks the Colorado store, then they are refused, saying why
    response = verified.post(f"/c/{company.slug}/join/", join_data(colorado, birth_date=nineteen))
    assert response.status_code == 400
    assert "You must be 21 or older to join in CO." in text(response)
    assert not Persona.objects.filter(phone=PHONE).exists()
    # a day short of 21 is still under age
    almost = years_ago(21, days=-1).isoformat()
    response = verified.post(f"/c/{company.slug}/join/", join_data(colorado, birth_date=almost))
    assert response.status_code == 400
    # at the Michigan store 19 is old enough
    response = verified.post(f"/c/{company.slug}/join/", join_data(michigan, birth_date=nineteen))
    assert response.status_code == 302
    assert Persona.objects.get(phone=PHONE).is_member


def test_each_ticked_box_records_its_exact_wording(verified, company, store):
    # given the page shows two separate, unticked boxes
    page = text(verified.get(f"/c/{company.slug}/join/"))
    wording = consent_wording(company)
    assert wording["sms"] in page and wording["email"] in page
    assert 'name="sms_consent"' in page and 'name="email_consent"' in page
    assert "checked" not in page
    # when only the SMS box is ticked
    verified.post(f"/c/{company.slug}/join/", join_data(store, sms_consent="on"),
                  REMOTE_ADDR="203.0.113.9", HTTP_HOST="testserver")
    persona = Persona.objects.get(phone=PHONE)
    # then one consent: SMS, granted, the words shown, the address, the page, the time
    record = ConsentRecord.objects.get()
    assert (record.persona, record.channel, record.granted) == (persona, "sms", True)
    assert record.wording == wording["sms"]
    assert record.ip == "203.0.113.9"
    assert record.page_url == f"http://testserver/c/{company.slug}/join/"
    assert abs(record.created_at - timezone.now()) < dt.timedelta(minutes=1)
    assert persona.sms_opt_in and not persona.email_opt_in


def test_join_needs_a_proven_phone(client, company, store):
    page_on(company)
    response = client.post(f"/c/{company.slug}/join/", join_data(store))
    assert response.status_code == 302 and response["Location"].endswith("/sign-in/")
    assert not Persona.objects.exists()


def test_join_refuses_another_companys_store(verified, company, other_company):
    foreign = RetailStoreFactory(company=other_company)
    response = verified.post(f"/c/{company.slug}/join/", join_data(foreign))
    assert response.status_code == 400
    assert not Persona.objects.exists()


def test_persona_card_shows_the_consent_history_and_the_last_sign_in(verified, company, store, admin_client):
    # given a customer joined from the page with both boxes ticked
    verified.post(f"/c/{company.slug}/join/", join_data(store, sms_consent="on", email_consent="on"))
    persona = Persona.objects.get(phone=PHONE)
    # when staff open the persona card
    page = text(admin_client.get(reverse("persona_detail", args=[persona.pk])))
    # then the consents are there, with their wording, and when the customer last signed in
    assert "Consent history" in page
    assert "SMS granted" in page and "Email granted" in page
    assert consent_wording(company)["sms"] in page
    assert "Signed in to the loyalty page: last " in page
    assert "Loyalty page" in page  # sourced from
