"""Loyalty's services for the sources other apps feed, and the ids a persona has in them."""

from decimal import Decimal

import pytest
from django.db import IntegrityError
from django.db import transaction as db
from django.utils import timezone

from loyalty.models import PersonaIdentity, Source
from loyalty.services import (
    TransactionData,
    persona_identity_attach,
    source_create,
    source_rename,
    source_retire,
    transaction_record,
)
from tests.factories import PersonaFactory


@pytest.fixture
def cova(company):
    return source_create(company=company, kind=Source.Kind.COVA, name="Cova")


def test_attaching_an_id_twice_keeps_one_identity(company, cova):
    # given a persona who joined here
    persona = PersonaFactory(company=company)
    # when the POS id it was given is attached, and attached again (a task delivered twice)
    first = persona_identity_attach(persona=persona, source_id=cova.pk, external_id="C-9")
    again = persona_identity_attach(persona=persona, source_id=cova.pk, external_id="C-9")
    # then the persona has that one id in the source
    assert again.pk == first.pk
    assert list(persona.identities.values_list("source_id", "external_id", "company_id")) == [
        (cova.pk, "C-9", company.pk)]


def test_an_id_the_source_gave_someone_else_is_not_moved(company, cova):
    # given an id that already belongs to another persona in this source
    holder, newcomer = PersonaFactory(company=company), PersonaFactory(company=company)
    persona_identity_attach(persona=holder, source_id=cova.pk, external_id="C-9")
    # when it is attached to a newcomer
    identity = persona_identity_attach(persona=newcomer, source_id=cova.pk, external_id="C-9")
    # then the holder keeps it and the newcomer gets nothing
    assert identity.persona_id == holder.pk
    assert PersonaIdentity.objects.filter(source=cova, external_id="C-9").count() == 1
    assert not newcomer.identities.exists()


def test_the_same_id_in_two_sources_is_two_identities(company, cova):
    persona = PersonaFactory(company=company)
    other = source_create(company=company, kind=Source.Kind.POS, name="Other POS")
    persona_identity_attach(persona=persona, source_id=cova.pk, external_id="C-9")
    persona_identity_attach(persona=persona, source_id=other.pk, external_id="C-9")
    assert persona.identities.count() == 2


def test_source_names_are_unique_per_company(company, cova):
    with pytest.raises(IntegrityError), db.atomic():
        source_create(company=company, kind=Source.Kind.POS, name="Cova")
    other = source_create(company=company, kind=Source.Kind.POS, name="Other POS")
    with pytest.raises(IntegrityError), db.atomic():
        source_rename(source_id=other.pk, name="Cova")
    source_rename(source_id=other.pk, name="Dutchie")
    assert Source.objects.get(pk=other.pk).name == "Dutchie"


def test_retiring_a_source_nothing_came_from_deletes_it(company, cova):
    assert source_retire(source=cova, keep=False, renamed="Cova (gone)") is False
    assert not Source.objects.filter(pk=cova.pk).exists()


def test_retiring_a_source_kept_on_request_renames_it(company, cova):
    assert source_retire(source=cova, keep=True, renamed="Cova (gone)") is True
    assert Source.objects.get(pk=cova.pk).name == "Cova (gone)"


def test_retiring_a_source_that_customers_came_from_keeps_it(company, cova):
    PersonaFactory(company=company, sourced_from=cova)
    assert source_retire(source=cova, keep=False, renamed="Cova (gone)") is True
    assert Source.objects.get(pk=cova.pk).name == "Cova (gone)"


def test_retiring_a_source_that_sales_came_from_keeps_it(company, cova, store):
    persona = PersonaFactory(company=company)
    transaction_record(company=company, source=cova, data=TransactionData(
        external_id="S-1", occurred_at=timezone.now(), subtotal=Decimal("10.00"), total=Decimal("10.00"),
        store_id=store.pk, persona_id=persona.pk))
    assert source_retire(source=cova, keep=False, renamed="Cova (gone)") is True
    assert Source.objects.filter(pk=cova.pk).exists()
