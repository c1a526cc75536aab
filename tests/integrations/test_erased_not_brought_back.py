"""A customer erased at their request is not brought back by a later report import or Cova
sync of the same phone, email or id; their new sales land without a customer. Signing up
again on the loyalty page lifts it for the phone."""

import datetime as dt
import logging

import pytest

from integrations.models import CovaCredential, SyncRun
from loyalty.models import Persona, PersonaIdentity, Transaction
from loyalty.services.privacy import SKIPPED_ERASED, erased_phone_clear, persona_erase
from tests.factories import PersonaFactory
from tests.integrations.cova_fake import cova_server  # noqa: F401 - the fixture
from tests.integrations.test_cova_sync import T0, cova, downtown, sync  # noqa: F401 - fixtures
from tests.integrations.test_import import HEADER, us

pytestmark = pytest.mark.django_db

PHONE = "+13035550142"


def _row(receipt, customer, store, *, email="ana@example.com", phone="(303) 555-0142", days_ago=3):
    return (f"{receipt},{customer},{us(days_ago)},{store.name},Ana,Diaz,{email},{phone},"
            "Gummies,1,$10.00,$10.00,0.80,Cash\n")


def test_a_report_import_skips_erased_customers(folder_connection, write_report, run_sync, store, company,
                                                other_company, caplog):
    twin = PersonaFactory(company=other_company, phone=PHONE, email="ana@example.com")
    write_report("day1.csv", HEADER + "\n" + _row("R1", "C1", store))
    assert run_sync(folder_connection).state == "succeeded"
    ana = PersonaIdentity.objects.get(source=folder_connection.source, external_id="C1").persona
    persona_erase(company=company, persona_id=ana.pk, via="page")

    # The same customer id, their phone under another id, their email under a third.
    write_report("day2.csv", HEADER + "\n" + _row("R2", "C1", store, days_ago=2)
                 + _row("R3", "C2", store, email="", days_ago=2)
                 + _row("R4", "C3", store, phone="", email="ANA@example.com", days_ago=2)
                 + _row("R5", "C4", store, phone="(303) 555-0199", email="ben@example.com", days_ago=2))
    with caplog.at_level(logging.INFO, logger="loyalty.services.ingest"):
        run = run_sync(folder_connection)

    assert run.state == "succeeded"
    assert not Persona.objects.filter(company=company, phone=PHONE).exists()
    assert not Persona.objects.filter(company=company, email__iexact="ana@example.com").exists()
    assert not PersonaIdentity.objects.filter(source=folder_connection.source,
                                              external_id__in=["C1", "C2", "C3"]).exists()
    # Their sales still count, without a customer; Ben comes in as usual.
    assert list(Transaction.objects.filter(external_id__in=["R2", "R3", "R4"]).values_list(
        "persona_id", flat=True)) == [None, None, None]
    assert Transaction.objects.get(external_id="R5").persona.phone == "+13035550199"
    assert f"3 customer(s) skipped, {SKIPPED_ERASED}" in caplog.text
    # The anonymous persona keeps its first sale; another company's customer is untouched.
    assert Transaction.objects.get(external_id="R1").persona_id == ana.pk
    twin.refresh_from_db()
    assert twin.phone == PHONE


def test_signing_up_again_lets_the_phone_back_in(folder_connection, write_report, run_sync, store, company):
    write_report("day1.csv", HEADER + "\n" + _row("R1", "C1", store, email=""))
    run_sync(folder_connection)
    ana = PersonaIdentity.objects.get(source=folder_connection.source, external_id="C1").persona
    persona_erase(company=company, persona_id=ana.pk, via="staff")
    joined = PersonaFactory(company=company, phone=PHONE, email="")
    erased_phone_clear(company=company, phone=PHONE)  # what joining on the loyalty page does
    write_report("day2.csv", HEADER + "\n" + _row("R2", "C9", store, email="", days_ago=2))
    run_sync(folder_connection)
    assert Transaction.objects.get(external_id="R2").persona_id == joined.pk


def test_a_cova_sync_skips_erased_customers(company, cova, cova_server, sync, downtown):  # noqa: F811
    ana = cova_server.add_customer(FirstName="Ana", LastName="Diaz", Phone="(303) 555-0142",
                                   Email="Ana@Example.com", State="CO")
    cova_server.add_sale(1001, ana, completed_at=T0)
    assert sync().state == SyncRun.State.SUCCEEDED
    persona = Persona.objects.get(company=company, phone=PHONE)
    persona_erase(company=company, persona_id=persona.pk, via="page")

    # Everything again from the start, and a new sale of hers.
    CovaCredential.objects.filter(pk=cova.pk).update(customers_since=None, sales_since={})
    cova_server.add_sale(1001, ana, completed_at=T0 + dt.timedelta(days=1))
    run = sync()

    assert run.state == SyncRun.State.SUCCEEDED, run.error
    assert not Persona.objects.filter(company=company, phone=PHONE).exists()
    assert not PersonaIdentity.objects.filter(source=cova.connection.source, external_id=str(ana)).exists()
    # Both sales count; seen again, they land without a customer, as a walk-in's do.
    sales = Transaction.objects.filter(company=company).order_by("occurred_at")
    assert [s.persona_id for s in sales] == [None, None]
    assert Persona.objects.filter(pk=persona.pk, phone="", first_name="").exists()


def test_an_unsent_signup_push_is_dropped_on_erasure(company, cova):  # noqa: F811
    from integrations.models import SignupPush
    from integrations.tasks import signup_push

    persona = PersonaFactory(company=company, phone=PHONE)
    queued = SignupPush.objects.create(company=company, persona=persona, credential=cova)
    persona_erase(company=company, persona_id=persona.pk, via="page")
    assert not SignupPush.objects.filter(pk=queued.pk).exists()
    signup_push.apply(args=[queued.pk])  # a delivery already on its way finds nothing to send
