import pytest
from django.utils import timezone

from loyalty.errors import InvalidPhone
from loyalty.models import Persona, PersonaIdentity
from loyalty.services import persona_create, persona_enroll, source_get_or_create
from stores.errors import DomainError


@pytest.fixture
def cova(company):
    return source_get_or_create(company=company, kind="cova")


@pytest.mark.parametrize("raw", ["(303) 555-0142", "303.555.0142", "+1 303 555 0142",
                                 "1-303-555-0142"])
def test_persona_create_normalises_phone_to_e164(company, cova, raw):
    persona = persona_create(company=company, source=cova, first_name=" Ana ", phone=raw,
                             email="Ana@Example.COM ")
    assert persona.phone == "+13035550142"
    assert persona.first_name == "Ana" and persona.email == "ana@example.com"
    assert persona.sourced_from == cova


@pytest.mark.parametrize("raw", ["12", "not a phone", "(000) 000-0000"])
def test_persona_create_bad_phone_is_refused_naming_it(company, cova, raw):
    with pytest.raises(InvalidPhone) as exc:
        persona_create(company=company, source=cova, phone=raw)
    assert raw in exc.value.message and exc.value.extra["field"] == "phone"
    assert not Persona.objects.exists()


def test_persona_create_bad_email_is_refused(company, cova):
    with pytest.raises(DomainError) as exc:
        persona_create(company=company, source=cova, email="nope@")
    assert exc.value.extra["field"] == "email"


def test_persona_create_external_id_is_unique_per_source(company, cova):
    persona_create(company=company, source=cova, first_name="A", external_id="C-1")
    with pytest.raises(DomainError, match="already another persona"):
        persona_create(company=company, source=cova, first_name="B", external_id="C-1")
    assert Persona.objects.count() == 1
    # the same id from another source is another identity
    s3 = source_get_or_create(company=company, kind="s3")
    persona_create(company=company, source=s3, first_name="B", external_id="C-1")
    assert PersonaIdentity.objects.count() == 2


def test_persona_enroll_makes_a_member_once(company, cova):
    persona = persona_create(company=company, source=cova, first_name="A")
    assert not persona.is_member
    first = persona_enroll(company=company, persona_id=persona.pk)
    again = persona_enroll(company=company, persona_id=persona.pk,
                           when=timezone.now() + timezone.timedelta(days=1))
    assert first.is_member and again.enrolled_at == first.enrolled_at
