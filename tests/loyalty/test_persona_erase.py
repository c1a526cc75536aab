"""persona_erase: personal data blanked, the persona kept as an anonymous id with its sales,
points forfeited with a ledger entry, sessions ended, the request recorded and tombstones kept."""

from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction
from django.http import Http404
from django.utils import timezone

from loyalty.models import (
    ConsentRecord,
    ErasedIdentity,
    ErasureRequest,
    Persona,
    PersonaIdentity,
    PointsEntry,
    Transaction,
    WalletItem,
)
from loyalty.services import TransactionData, points_adjust, transaction_record
from loyalty.services.personas import source_get_or_create
from loyalty.services.privacy import FORFEIT_REASON, erased_identities, erased_phone_clear, persona_erase
from loyalty.services.redemptions import offer_purchase
from members.models import CustomerSession, LoginCode
from stores.audit import AuditContext
from stores.models import AuditEvent
from tests.factories import OfferFactory, PersonaFactory, SourceFactory

pytestmark = pytest.mark.django_db

PHONE = "+13035550142"


@pytest.fixture
def customer(company, store, admin_user):
    persona = PersonaFactory(company=company, phone=PHONE, email="Maya@Example.com", first_name="Maya",
                             last_name="Lopez", birth_date="1990-05-01", custom_traits={"pet": "Rex"},
                             sms_opt_in=True, email_opt_in=True)
    cova = SourceFactory(company=company, name="Cova")
    PersonaIdentity.objects.create(company=company, persona=persona, source=cova, external_id="COVA-77")
    source = source_get_or_create(company=company, kind="pos_api")
    transaction_record(company=company, source=source, data=TransactionData(
        external_id="S-1", occurred_at=timezone.now(), subtotal=Decimal("120.00"), total=Decimal("120.00"),
        store_id=store.pk, persona_id=persona.pk))
    points_adjust(company=company, persona_id=persona.pk, delta=200, staff_user=admin_user,
                  reason="Goodwill", audit=AuditContext(user=admin_user))
    offer_purchase(company=company, persona_id=persona.pk, offer_id=OfferFactory(company=company,
                                                                                 points_cost=20).pk)
    ConsentRecord.objects.create(company=company, persona=persona, channel="sms", granted=True,
                                 wording="Text me", ip="203.0.113.9")
    now = timezone.now()
    CustomerSession.objects.create(company=company, persona=persona, token_hash="a" * 64,
                                   expires_at=now + timezone.timedelta(days=1))
    LoginCode.objects.create(company=company, phone=PHONE, code_hash="b" * 64,
                             expires_at=now + timezone.timedelta(minutes=5))
    persona.refresh_from_db()
    return persona


def test_erasure_blanks_the_person_and_keeps_the_sales(company, customer):
    balance = customer.points_balance
    assert balance > 0
    erasure = persona_erase(company=company, persona_id=customer.pk, via="page")

    persona = Persona.objects.get(pk=customer.pk)
    assert (persona.first_name, persona.last_name, persona.phone, persona.email) == ("", "", "", "")
    assert persona.birth_date is None and persona.custom_traits == {}
    assert not persona.sms_opt_in and not persona.email_opt_in and not persona.is_member
    assert persona.points_balance == 0
    assert not PersonaIdentity.objects.filter(persona=persona).exists()
    # The sale stays on the anonymous persona.
    assert Transaction.objects.get(external_id="S-1").persona_id == persona.pk
    forfeit = PointsEntry.objects.get(persona=persona, kind="forfeit")
    assert forfeit.delta == -balance and forfeit.reason == FORFEIT_REASON and forfeit.balance_after == 0
    assert not WalletItem.objects.filter(persona=persona, state="available").exists()
    assert ConsentRecord.objects.get(persona=persona).ip is None
    assert not CustomerSession.objects.filter(persona=persona, revoked_at__isnull=True).exists()
    assert not LoginCode.objects.filter(phone=PHONE).exists()
    assert erasure.requested_via == "page" and erasure.completed_at is not None
    assert erasure.points_forfeited == balance


def test_tombstones_hold_hashes_not_values(company, customer):
    persona_erase(company=company, persona_id=customer.pk, via="page")
    rows = list(ErasedIdentity.objects.filter(company=company).values_list("kind", "digest"))
    assert sorted(kind for kind, _ in rows) == ["email", "external_id", "phone"]
    assert not any(PHONE in d or "maya" in d or "COVA" in d for _, d in rows)
    cova = customer.company.sources.get(name="Cova")
    erased = erased_identities(company=company)
    assert erased.match(phone=PHONE)
    assert erased.match(email="maya@example.com")
    assert erased.match(source_id=cova.pk, external_id="COVA-77")
    assert not erased.match(phone="+13035550100", email="other@example.com",
                            source_id=cova.pk, external_id="COVA-78")
    assert erased_phone_clear(company=company, phone=PHONE) == 1
    assert not erased_identities(company=company).match(phone=PHONE)


def test_erasing_twice_is_harmless(company, customer):
    first = persona_erase(company=company, persona_id=customer.pk, via="page")
    second = persona_erase(company=company, persona_id=customer.pk, via="page")
    assert second.pk == first.pk and second.completed_at == first.completed_at
    assert PointsEntry.objects.filter(persona=customer, kind="forfeit").count() == 1
    assert ErasureRequest.objects.filter(persona=customer).count() == 1


def test_staff_erasure_is_audited(company, customer, admin_user):
    erasure = persona_erase(company=company, persona_id=customer.pk, via="staff",
                            audit=AuditContext(user=admin_user, ip="198.51.100.4"))
    assert erasure.requested_by == admin_user
    event = AuditEvent.objects.get(kind="persona.erased", object_id=customer.pk)
    assert event.actor_id == admin_user.pk and event.extra["via"] == "staff"
    assert PointsEntry.objects.get(persona=customer, kind="forfeit").staff_user == admin_user


def test_another_companys_persona_is_never_touched(company, other_company, customer):
    twin = PersonaFactory(company=other_company, phone=PHONE, email="maya@example.com", first_name="Maya")
    with pytest.raises(Http404):
        persona_erase(company=company, persona_id=twin.pk, via="staff")
    persona_erase(company=company, persona_id=customer.pk, via="page")
    twin.refresh_from_db()
    assert twin.phone == PHONE and twin.first_name == "Maya"
    assert not erased_identities(company=other_company).match(phone=PHONE)


def test_erasure_constraints(company, customer):
    with transaction.atomic(), pytest.raises(IntegrityError):
        ErasureRequest.objects.create(company=company, persona=customer, requested_via="fax")
    now = timezone.now()
    with transaction.atomic(), pytest.raises(IntegrityError):
        ErasureRequest.objects.create(company=company, persona=customer, requested_via="page",
                                      requested_at=now, completed_at=now - timezone.timedelta(hours=1))
    with transaction.atomic(), pytest.raises(IntegrityError):
        ErasedIdentity.objects.create(company=company, kind="phone", digest="not-a-digest")


# --- the persona card ---------------------------------------------------------------------------

def test_an_admin_erases_from_the_persona_card(admin_client, company, customer, admin_user):
    card = admin_client.get(f"/personas/{customer.pk}/")
    assert 'data-testid="erase"' in card.content.decode()
    unconfirmed = admin_client.post(f"/personas/{customer.pk}/erase/")
    assert unconfirmed.status_code == 302
    assert Persona.objects.get(pk=customer.pk).phone == PHONE
    admin_client.post(f"/personas/{customer.pk}/erase/", {"confirm": "erase"}, REMOTE_ADDR="198.51.100.7")
    persona = Persona.objects.get(pk=customer.pk)
    assert persona.phone == "" and persona.first_name == ""
    erasure = ErasureRequest.objects.get(persona=persona)
    assert erasure.requested_via == "staff" and erasure.requested_by == admin_user
    event = AuditEvent.objects.get(kind="persona.erased", object_id=persona.pk)
    assert event.actor_id == admin_user.pk
    page = admin_client.get(f"/personas/{customer.pk}/").content.decode()
    assert 'data-testid="erased"' in page and 'data-testid="erase"' not in page


@pytest.mark.parametrize("role_user", ["marketer_user", "budtender_user"])
def test_only_admins_erase(client, company, customer, role_user, request):
    client.force_login(request.getfixturevalue(role_user))
    assert 'data-testid="erase"' not in client.get(f"/personas/{customer.pk}/").content.decode()
    assert client.post(f"/personas/{customer.pk}/erase/", {"confirm": "erase"}).status_code == 403
    assert Persona.objects.get(pk=customer.pk).phone == PHONE


def test_another_companys_persona_card_is_a_404(admin_client, company, other_company):
    twin = PersonaFactory(company=other_company, phone=PHONE)
    assert admin_client.post(f"/personas/{twin.pk}/erase/", {"confirm": "erase"}).status_code == 404
    twin.refresh_from_db()
    assert twin.phone == PHONE
