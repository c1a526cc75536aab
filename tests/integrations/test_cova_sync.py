"""The Cova sync against the local fake Cova: customers and sales in, watermarks, options,
unmapped locations, failures, and signups pushed back."""

import datetime as dt
from decimal import Decimal
from urllib.parse import unquote

import pytest

from integrations.models import CovaCredential, SignupPush, SyncRun
from integrations.selectors import unmapped_location_count, unmapped_locations
from integrations.services.cova import (
    cova_connection_create,
    cova_credential_save,
    signup_push_queue,
    signup_push_send,
    store_mapping_save,
)
from integrations.services.sync import SyncFailed, sync_run_create, sync_run_execute
from loyalty.models import LoyaltyProgram, Persona, PersonaIdentity, PointsEntry, Transaction
from loyalty.services.personas import persona_create, persona_enroll
from stores.services import store_create
from tests.integrations.cova_fake import cova_server  # noqa: F401 - the fixture

pytestmark = pytest.mark.django_db

T0 = dt.datetime(2026, 11, 1, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def cova(company, cova_server):  # noqa: F811
    connection = cova_connection_create(company=company)
    credential = cova_credential_save(
        connection=connection, client_id=cova_server.client_id, client_secret=cova_server.client_secret,
        username=cova_server.username, password=cova_server.password,
        cova_company_id=str(cova_server.company_id), accounts_url=cova_server.url, api_url=cova_server.url)
    return credential


@pytest.fixture
def sync(cova):
    def run(credential=None, *, expect_failure=False):
        credential = credential or cova
        credential.refresh_from_db()
        run = sync_run_create(connection=credential.connection, credential=credential,
                              trigger=SyncRun.Trigger.MANUAL)
        if expect_failure:
            with pytest.raises(SyncFailed):
                sync_run_execute(run_id=run.pk)
        else:
            sync_run_execute(run_id=run.pk)
        return SyncRun.objects.get(pk=run.pk)

    return run


@pytest.fixture
def downtown(company, cova, cova_server):  # noqa: F811
    """A store mapped to the fake's location 1001."""
    location = cova_server.add_location("Downtown", location_id=1001)
    store = store_create(company=company, name="Downtown store", state="CO")
    store_mapping_save(store=store, connection=cova.connection, external_location_id=str(location),
                       location_name="Downtown")
    return store


def _member_program(company, **values):
    LoyaltyProgram.objects.update_or_create(company=company, defaults=values)


def test_full_sync_brings_customers_and_sales_with_points_once(company, cova, cova_server, sync,  # noqa: F811
                                                               downtown):
    _member_program(company, points_per_unit=1)
    ana = cova_server.add_customer(FirstName="Ana", LastName="Diaz", Phone="(303) 555-0142",
                                   Email="Ana@Example.com", State="CO", PricingGroupId="Medical",
                                   DateOfBirth="1990-05-01")
    ben = cova_server.add_customer(FirstName="Ben", LastName="Ode", Phone="(303) 555-0199", State="CO")
    cova_server.add_sale(1001, ana, items=[{"Sku": "FL-1", "UnitPrice": 40.0, "Quantity": 2.0, "Tax": 12.0,
                                            "Category": "Flower", "Brand": "Green Peak"}],
                         payments=[{"Method": "Cash", "Amount": 50.0}, {"Method": "Debit", "Amount": 42.0}],
                         fulfillment="Delivery", completed_at=T0)
    cova_server.add_sale(1001, None, completed_at=T0)  # a walk-in

    run = sync()

    assert run.state == SyncRun.State.SUCCEEDED, run.error
    assert run.customers_synced == 2 and run.sales_synced == 2 and run.sales_unmapped == 0
    persona = Persona.objects.get(company=company, phone="+13035550142")
    assert (persona.first_name, persona.email, persona.market) == ("Ana", "ana@example.com", "CO")
    assert persona.birth_date == dt.date(1990, 5, 1)
    assert persona.sourced_from.name == "Cova"
    assert persona.custom_traits == {"CovaPricingGroup": "Medical"}
    assert PersonaIdentity.objects.get(persona=persona).external_id == ana
    assert persona.favourite_store == downtown
    sale = Transaction.objects.get(persona=persona)
    assert sale.store == downtown and sale.fulfillment == "delivery"
    assert sale.subtotal == Decimal("80.00") and sale.tax_total == Decimal("12.00")
    assert sorted((p.method, p.amount) for p in sale.payments.all()) == [("Cash", Decimal("50.00")),
                                                                          ("Debit", Decimal("42.00"))]
    line = sale.line_items.get()
    assert (line.sku, line.category, line.brand, line.quantity) == ("FL-1", "Flower", "Green Peak", 2)
    walk_in = Transaction.objects.get(company=company, persona__isnull=True)
    assert walk_in.store == downtown
    persona.refresh_from_db()
    earned = persona.points_balance
    assert earned > 0
    assert Persona.objects.filter(company=company, identities__external_id=ben).exists()

    # A second sync imports nothing new and duplicates nothing.
    again = sync()
    assert again.state == SyncRun.State.SUCCEEDED
    assert again.sales_synced == 0
    assert Persona.objects.filter(company=company).count() == 2
    assert Transaction.objects.filter(company=company).count() == 2
    persona.refresh_from_db()
    assert persona.points_balance == earned
    assert PointsEntry.objects.filter(persona=persona, kind="earn").count() == 1


def test_incremental_sync_takes_only_changes(company, cova, cova_server, sync, downtown):  # noqa: F811
    first = cova_server.add_customer(FirstName="Cam", Phone="(303) 555-0101", State="CO",
                                     LastModifiedDateUtc=T0 - dt.timedelta(days=3))
    cova_server.add_sale(1001, first, completed_at=T0 - dt.timedelta(days=2))
    sync()
    cova.refresh_from_db()
    assert cova.customers_since == T0 - dt.timedelta(days=3)
    assert cova.sales_since == {"1001": (T0 - dt.timedelta(days=2)).isoformat()}

    cova_server.requests.clear()
    cova_server.touch_customer(first, LastName="Reyes")
    cova_server.add_customer(FirstName="Dee", Phone="(303) 555-0102", State="CO")
    cova_server.add_sale(1001, first, completed_at=T0)
    run = sync()

    assert run.customers_synced == 2 and run.sales_synced == 1
    customer_calls = cova_server.requests_to("/Customers", method="GET")
    assert customer_calls and all("LastModifiedDateUtc ge" in unquote(c) for c in customer_calls)
    assert Persona.objects.get(identities__external_id=first).last_name == "Reyes"
    assert Transaction.objects.filter(company=company).count() == 2


def test_market_filter_and_location_restriction(company, cova, cova_server, sync):  # noqa: F811
    co = cova_server.add_location("Denver", "CO", location_id=1001)
    wa = cova_server.add_location("Seattle", "WA", "America/Los_Angeles", location_id=1002)
    in_co = cova_server.add_customer(FirstName="Col", Phone="(303) 555-0110", State="CO")
    in_wa = cova_server.add_customer(FirstName="Wash", Phone="(206) 555-0110", State="WA")
    cova_server.add_sale(co, in_co, completed_at=T0)
    cova_server.add_sale(wa, in_wa, completed_at=T0)
    cova_credential_save(connection=cova.connection, credential=cova, client_id=cova.client_id,
                         client_secret="", username=cova.username, password="",
                         cova_company_id=cova.cova_company_id, accounts_url=cova.accounts_url,
                         api_url=cova.api_url, markets="co", location_ids=[str(co)])

    run = sync()

    assert run.state == SyncRun.State.SUCCEEDED, run.error
    assert list(Persona.objects.filter(company=company).values_list("first_name", flat=True)) == ["Col"]
    assert list(Transaction.objects.filter(company=company).values_list("source_location", flat=True)) == [
        str(co)]
    assert not cova_server.requests_to(f"Locations({wa})/Sales")


def test_customers_changed_during_the_sync_come_in_as_they_are_now(company, cova, cova_server, sync):  # noqa: F811
    ids = [cova_server.add_customer(FirstName=f"C{n}", State="CO",
                                    LastModifiedDateUtc=T0 + dt.timedelta(minutes=n))
           for n in range(600)]  # two pages of 500
    cova_credential_save(connection=cova.connection, credential=cova, client_id=cova.client_id,
                         client_secret="", username=cova.username, password="",
                         cova_company_id=cova.cova_company_id, accounts_url=cova.accounts_url,
                         api_url=cova.api_url, markets="co")

    def change_two_before_page_two(path, query):
        if path.endswith("/Customers") and query.get("$skip") not in (None, "0") \
                and cova_server.customers[ids[0]]["LastName"] is None:
            cova_server.touch_customer(ids[0], LastName="Reyes")
            cova_server.touch_customer(ids[1], State="WA")  # moved away: out of our markets now

    cova_server.on_request = change_two_before_page_two
    run = sync()

    assert run.state == SyncRun.State.SUCCEEDED, run.error
    synced = set(PersonaIdentity.objects.filter(company=company).values_list("external_id", flat=True))
    assert synced == set(ids) - {ids[1]} and run.customers_synced == 599
    assert Persona.objects.get(identities__external_id=ids[0]).last_name == "Reyes"


def test_freeze_stops_syncing(company, cova, cova_server):  # noqa: F811
    from stores.errors import DomainError

    cova.is_frozen = True
    cova.save()
    with pytest.raises(DomainError, match="frozen"):
        sync_run_create(connection=cova.connection, credential=cova, trigger=SyncRun.Trigger.MANUAL)
    cova_credential_save(connection=cova.connection, credential=cova, client_id=cova.client_id,
                         client_secret="", username=cova.username, password="",
                         cova_company_id=cova.cova_company_id, accounts_url=cova.accounts_url,
                         api_url=cova.api_url, is_frozen=True)
    cova.refresh_from_db()
    assert cova.periodic_task.enabled is False
    from integrations.tasks import cova_sync_scheduled

    cova_sync_scheduled(cova.pk)
    assert not SyncRun.objects.filter(credential=cova).exists()


def test_skip_payment_methods(company, cova, cova_server, sync, downtown):  # noqa: F811
    customer = cova_server.add_customer(FirstName="Pay", Phone="(303) 555-0120", State="CO")
    cova_server.add_sale(1001, customer, completed_at=T0)
    cova_credential_save(connection=cova.connection, credential=cova, client_id=cova.client_id,
                         client_secret="", username=cova.username, password="",
                         cova_company_id=cova.cova_company_id, accounts_url=cova.accounts_url,
                         api_url=cova.api_url, skip_payment_methods=True)
    sync()
    sale = Transaction.objects.get(company=company)
    assert not sale.payments.exists()
    assert all("$expand" not in path for path in cova_server.requests_to("/Sales"))


def test_merged_customers_land_on_the_survivor(company, cova, cova_server, sync, downtown):  # noqa: F811
    survivor = cova_server.add_customer(FirstName="Sam", Phone="(303) 555-0130", State="CO")
    duplicate = cova_server.add_customer(FirstName="Samuel", Phone="(303) 555-0131", State="CO")
    cova_server.merge_customer(duplicate, survivor)
    cova_server.add_sale(1001, duplicate, completed_at=T0)

    sync()

    persona = Persona.objects.get(company=company)
    assert persona.first_name == "Sam"
    assert set(persona.identities.values_list("external_id", flat=True)) == {survivor, duplicate}
    assert Transaction.objects.get(company=company).persona == persona


def test_customers_merged_in_cova_after_a_sync_become_one_persona_with_one_balance(
        company, cova, cova_server, sync, downtown):  # noqa: F811
    _member_program(company, points_per_unit=1)
    sam = cova_server.add_customer(FirstName="Sam", Phone="(303) 555-0132", State="CO")
    samuel = cova_server.add_customer(FirstName="Samuel", Email="sam@example.com", State="CO")
    cova_server.add_sale(1001, sam, items=[{"UnitPrice": 40.0}], completed_at=T0)
    cova_server.add_sale(1001, samuel, items=[{"UnitPrice": 25.0}], completed_at=T0 + dt.timedelta(hours=1))
    sync()
    first = Persona.objects.get(identities__external_id=sam)
    second = Persona.objects.get(identities__external_id=samuel)
    assert (first.points_balance, second.points_balance) == (40, 25)

    cova_server.merge_customer(samuel, sam)
    cova_server.add_sale(1001, samuel, items=[{"UnitPrice": 10.0}], completed_at=T0 + dt.timedelta(hours=2))
    run = sync()

    assert run.state == SyncRun.State.SUCCEEDED, run.error
    [persona] = Persona.objects.filter(company=company)
    assert persona.pk == first.pk
    assert (persona.first_name, persona.email) == ("Sam", "sam@example.com")
    assert set(persona.identities.values_list("external_id", flat=True)) == {sam, samuel}
    assert Transaction.objects.filter(company=company, persona=persona).count() == 3
    assert persona.points_balance == 40 + 25 + 10
    assert sum(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True)) == 75

    again = sync()
    assert again.state == SyncRun.State.SUCCEEDED and again.sales_synced == 0
    persona.refresh_from_db()
    assert persona.points_balance == 75 and Persona.objects.filter(company=company).count() == 1


def test_a_chain_of_merges_across_personas_ends_in_one(company, cova, cova_server, sync):  # noqa: F811
    from loyalty.models import PersonaMerge
    from tests.factories import PersonaFactory

    # Before the sync: P0 is Cova's F; P1 holds both A and E (matched earlier); P2 is B.
    a, b, e, f = (cova_server.add_customer(FirstName=name, State="CO") for name in "ABEF")
    source = cova.connection.source
    p0, p1, p2 = (PersonaFactory(company=company) for _ in range(3))
    for persona, customer in ((p0, f), (p1, a), (p1, e), (p2, b)):
        PersonaIdentity.objects.create(company=company, persona=persona, source=source, external_id=customer)
    # Cova merges B into A and E into F: P2 belongs with P1, and P1 with P0.
    cova_server.merge_customer(b, a)
    cova_server.merge_customer(e, f)

    run = sync()

    assert run.state == SyncRun.State.SUCCEEDED, run.error
    [persona] = Persona.objects.filter(company=company)
    assert persona.pk == p0.pk
    assert set(persona.identities.values_list("external_id", flat=True)) == {a, b, e, f}
    merges = PersonaMerge.objects.filter(persona=persona)
    assert {m.merged_persona_id for m in merges} == {p1.pk, p2.pk}
    assert {m.reason for m in merges} == {"Merged in Cova (Cova)"}


def test_a_merged_personas_signup_push_follows_it_unless_the_survivor_has_one(company, cova):
    from loyalty.services.personas import persona_merge
    from tests.factories import PersonaFactory

    keeper, pushed, also_pushed = (PersonaFactory(company=company) for _ in range(3))
    sent = SignupPush.objects.create(company=company, persona=pushed, credential=cova,
                                     state=SignupPush.State.SENT, external_id="C-9")

    persona_merge(company=company, survivor_id=keeper.pk, duplicate_id=pushed.pk, reason="Test")
    assert SignupPush.objects.get(pk=sent.pk).persona_id == keeper.pk

    SignupPush.objects.create(company=company, persona=also_pushed, credential=cova)
    persona_merge(company=company, survivor_id=keeper.pk, duplicate_id=also_pushed.pk, reason="Test")
    assert list(SignupPush.objects.filter(company=company).values_list("pk", "persona_id")) == [
        (sent.pk, keeper.pk)]


def test_unmapped_location_sales_wait_then_attach(company, cova, cova_server, sync):  # noqa: F811
    location = cova_server.add_location("Uptown", location_id=1002)
    customer = cova_server.add_customer(FirstName="Una", Phone="(303) 555-0140", State="CO")
    cova_server.add_sale(location, customer, completed_at=T0)
    cova_server.add_sale(location, customer, completed_at=T0 + dt.timedelta(hours=1))

    run = sync()

    assert run.sales_unmapped == 2
    waiting = Transaction.objects.filter(company=company)
    assert waiting.count() == 2 and all(t.store_id is None and t.source_location == "1002" for t in waiting)
    assert [(u["location_id"], u["sales"]) for u in unmapped_locations(company=company)] == [("1002", 2)]
    assert unmapped_location_count(company=company) == 1
    persona = Persona.objects.get(company=company)
    assert persona.favourite_store is None

    uptown = store_create(company=company, name="Uptown", state="CO")
    store_mapping_save(store=uptown, connection=cova.connection, external_location_id="1002")

    assert unmapped_locations(company=company) == []
    assert unmapped_location_count(company=company) == 0
    assert set(Transaction.objects.filter(company=company).values_list("store_id", "source_location")) == {
        (uptown.pk, "")}
    persona.refresh_from_db()
    assert persona.favourite_store == uptown


def test_injected_500s_are_retried(company, cova, cova_server, sync, downtown):  # noqa: F811
    cova_server.add_customer(FirstName="Ret", Phone="(303) 555-0150", State="CO")
    cova_server.fail_next(2, status=500, path_contains="/Customers")
    run = sync()
    assert run.state == SyncRun.State.SUCCEEDED
    assert Persona.objects.filter(company=company).count() == 1


def test_persistent_failure_leaves_watermarks_and_data(company, cova, cova_server, sync, downtown,  # noqa: F811
                                                       monkeypatch):
    customer = cova_server.add_customer(FirstName="Old", Phone="(303) 555-0160", State="CO",
                                        LastModifiedDateUtc=T0 - dt.timedelta(days=5))
    cova_server.add_sale(1001, customer, completed_at=T0 - dt.timedelta(days=5))
    sync()
    cova.refresh_from_db()
    before = (cova.customers_since, dict(cova.sales_since))

    cova_server.add_customer(FirstName="New", Phone="(303) 555-0161", State="CO")
    cova_server.add_sale(1001, customer, completed_at=T0)
    monkeypatch.setattr("integrations.providers.cova.time.sleep", lambda s: None)
    cova_server.fail_always(503, path_contains="/Sales")
    run = sync(expect_failure=True)

    assert run.state == SyncRun.State.FAILED
    host = cova_server.url.removeprefix("http://")
    assert run.error == f"Cova answered HTTP 503 at {host} (4 attempts)."
    cova.refresh_from_db()
    assert (cova.customers_since, dict(cova.sales_since)) == before
    assert cova.last_error == run.error
    # Customers fetched before the failure were not half-merged.
    assert not Persona.objects.filter(company=company, first_name="New").exists()
    assert Transaction.objects.filter(company=company).count() == 1


def test_secrets_never_in_runs_errors_or_requests(company, cova, cova_server, sync, monkeypatch):  # noqa: F811
    monkeypatch.setattr("integrations.providers.cova.time.sleep", lambda s: None)
    cova_server.fail_always(500)
    run = sync(expect_failure=True)
    stored = CovaCredential.objects.get(pk=cova.pk)
    for secret in (cova_server.client_secret, cova_server.password):
        assert secret not in run.error
        assert secret not in stored.secrets_encrypted
        assert secret not in stored.last_error
        assert all(secret not in path for _, path, _ in cova_server.requests)


def test_a_signup_push_cova_may_have_acted_on_is_not_sent_again(company, cova, cova_server):  # noqa: F811
    from integrations.tasks import signup_push

    persona = persona_create(company=company, source=None, first_name="Tess", phone="(303) 555-0171")
    persona_enroll(company=company, persona_id=persona.pk)
    [push] = signup_push_queue(persona=persona)
    cova_server.fail_next(1, status=500, path_contains="/Customers")

    signup_push.apply(args=[push.pk])  # retries run inline here, as a worker would run them

    assert len(cova_server.requests_to("/Customers", method="POST")) == 1
    push.refresh_from_db()
    assert push.state == SignupPush.State.FAILED
    assert "may or may not" in push.error and "Look for this customer in Cova" in push.error


def test_a_signup_push_whose_worker_was_lost_mid_request_is_not_sent_again(company, cova, cova_server):  # noqa: F811
    from integrations.tasks import signup_push

    persona = persona_create(company=company, source=None, first_name="Vera", phone="(303) 555-0173")
    persona_enroll(company=company, persona_id=persona.pk)
    [push] = signup_push_queue(persona=persona)
    # What a worker killed while Cova answered leaves: an attempt counted, nothing recorded.
    SignupPush.objects.filter(pk=push.pk).update(attempts=1)

    signup_push.apply(args=[push.pk])  # the task, delivered again

    assert cova_server.requests_to("/Customers", method="POST") == []
    push.refresh_from_db()
    assert push.state == SignupPush.State.FAILED
    assert push.error.startswith("The worker was lost while creating this customer in Cova")
    assert "Look for this customer in Cova" in push.error


def test_a_signup_push_is_retried_while_cova_cannot_be_reached(company, cova, cova_server,  # noqa: F811
                                                                monkeypatch):
    from integrations.tasks import signup_push

    persona = persona_create(company=company, source=None, first_name="Ulla", phone="(303) 555-0172")
    persona_enroll(company=company, persona_id=persona.pk)
    [push] = signup_push_queue(persona=persona)
    # The token request fails: nothing was created, so trying again is safe.
    monkeypatch.setattr("integrations.providers.cova.time.sleep", lambda s: None)
    cova_server.fail_next(4, status=503, path_contains="/token")

    signup_push.apply(args=[push.pk])

    push.refresh_from_db()
    assert push.state == SignupPush.State.SENT
    assert len(cova_server.requests_to("/token")) == 5  # four refused, then the retried task's
    assert len(cova_server.requests_to("/Customers", method="POST")) == 1


def test_signup_push_creates_the_customer_in_cova(company, cova, cova_server):  # noqa: F811
    cova_credential_save(connection=cova.connection, credential=cova, client_id=cova.client_id,
                         client_secret="", username=cova.username, password="",
                         cova_company_id=cova.cova_company_id, accounts_url=cova.accounts_url,
                         api_url=cova.api_url, pricing_group_id="Loyalty-Plus")
    persona = persona_create(company=company, source=None, first_name="Quinn", last_name="Lee",
                             phone="(303) 555-0170", email="quinn@example.com")
    persona_enroll(company=company, persona_id=persona.pk)
    [push] = signup_push_queue(persona=persona)

    push = signup_push_send(push_id=push.pk)

    assert push.state == SignupPush.State.SENT and push.external_id
    [body] = cova_server.created_customers
    assert body["FirstName"] == "Quinn" and body["PricingGroupId"] == "Loyalty-Plus"
    assert body["Phone"] == "+13035550170"
    assert PersonaIdentity.objects.get(persona=persona, source=cova.connection.source).external_id == \
        push.external_id
    # Known to Cova now: not pushed again.
    assert signup_push_queue(persona=persona) == []


def test_failed_signup_push_is_recorded(company, cova, cova_server, monkeypatch):  # noqa: F811
    from integrations.providers.base import ProviderError

    monkeypatch.setattr("integrations.providers.cova.time.sleep", lambda s: None)
    persona = persona_create(company=company, source=None, first_name="Fay", phone="(303) 555-0180")
    [push] = signup_push_queue(persona=persona)
    cova_server.fail_always(500, path_contains="/Customers")
    with pytest.raises(ProviderError):
        signup_push_send(push_id=push.pk)
    push.refresh_from_db()
    assert push.state == SignupPush.State.FAILED and push.error
    assert cova_server.client_secret not in push.error


def test_sync_completed_fires_after_a_sync(company, cova, cova_server, sync):  # noqa: F811
    from integrations.signals import sync_completed

    seen = []

    def listener(sender, connection, run, **kwargs):
        seen.append(run.pk)

    sync_completed.connect(listener)
    try:
        run = sync()
    finally:
        sync_completed.disconnect(listener)
    assert seen == [run.pk]


def test_deleting_the_connection_removes_its_schedules_and_keeps_data_on_request(
        company, cova, cova_server, sync, downtown):  # noqa: F811
    from django_celery_beat.models import PeriodicTask

    from integrations.models import Connection
    from integrations.services.connections import connection_delete

    customer = cova_server.add_customer(FirstName="Kim", Phone="(303) 555-0190", State="CO")
    cova_server.add_sale(1001, customer, completed_at=T0)
    sync()
    task_id = cova.periodic_task_id
    assert PeriodicTask.objects.filter(pk=task_id).exists()

    connection_delete(connection=cova.connection, keep_data=True)

    assert not Connection.objects.filter(company=company).exists()
    assert not PeriodicTask.objects.filter(pk=task_id).exists()
    assert Transaction.objects.filter(company=company).count() == 1
    assert Persona.objects.get(company=company).sourced_from.name == "Cova (deleted connection)"


def test_the_sync_task_retries_an_unreachable_cova_then_gives_up(company, cova, cova_server,  # noqa: F811
                                                                 monkeypatch):
    from integrations.tasks import MAX_ATTEMPTS, connection_sync

    monkeypatch.setattr("integrations.providers.cova.time.sleep", lambda s: None)
    cova_server.add_customer(FirstName="Ray", Phone="(303) 555-0195", State="CO")
    cova_server.fail_always(503, path_contains="/Customers")
    run = sync_run_create(connection=cova.connection, credential=cova, trigger=SyncRun.Trigger.SCHEDULE)

    connection_sync.apply(args=[run.pk])

    run.refresh_from_db()
    assert (run.state, run.attempts) == ("failed", MAX_ATTEMPTS)
    host = cova_server.url.removeprefix("http://")
    assert run.error == f"Cova answered HTTP 503 at {host} (4 attempts)."
    assert not Persona.objects.filter(company=company).exists()


def test_a_cova_connection_is_synced_per_credential(cova):
    from stores.errors import DomainError

    with pytest.raises(DomainError, match="per credential"):
        sync_run_create(connection=cova.connection, trigger=SyncRun.Trigger.MANUAL)


def test_another_companys_credential_cannot_be_mapped_or_pushed(cova, other_company):
    from stores.errors import DomainError

    foreign_store = store_create(company=other_company, name="Elsewhere", state="CO")
    with pytest.raises(DomainError, match="another company"):
        store_mapping_save(store=foreign_store, connection=cova.connection, external_location_id="1001")
    stranger = persona_create(company=other_company, source=None, first_name="Nope", phone="(303) 555-0199")
    persona_enroll(company=other_company, persona_id=stranger.pk)
    assert signup_push_queue(persona=stranger) == []


@pytest.mark.parametrize("too_large, field", [
    # quantity × price of its lines past the money column, each line within its bounds
    ([{"Quantity": 2000.0, "UnitPrice": 9_000_000.0, "Total": 1.0, "Tax": 0.0}], "UnitPrice"),
    # the sale's total (lines plus tax) past it
    ([{"Quantity": 1.0, "UnitPrice": 9_000_000_000.0, "Tax": 0.0},
      {"Quantity": 1.0, "UnitPrice": 9_000_000_000.0, "Tax": 0.0}], "Total"),
    # fits every column but would earn more than POINTS_MAX points
    ([{"Quantity": 1.0, "UnitPrice": 600_000_000.0, "Tax": 0.0},
      {"Quantity": 1.0, "UnitPrice": 600_000_000.0, "Tax": 0.0}], "Total"),
])
def test_a_sale_too_large_to_store_is_skipped_and_named_the_others_land(
        admin_client, company, cova, cova_server, sync, downtown, too_large, field):  # noqa: F811
    from django.urls import reverse

    from integrations.models import RowError

    _member_program(company, points_per_unit=1)
    ana = cova_server.add_customer(FirstName="Ana", Phone="(303) 555-0142", State="CO")
    cova_server.add_sale(1001, ana, completed_at=T0)
    huge = cova_server.add_sale(1001, ana, items=too_large, completed_at=T0 + dt.timedelta(minutes=1),
                                payments=[])
    cova_server.add_sale(1001, None, completed_at=T0 + dt.timedelta(minutes=2))

    run = sync()

    # then: the run completes with errors; the other two sales and their points are in
    assert run.state == SyncRun.State.COMPLETED_WITH_ERRORS, run.error
    assert run.sales_synced == 2 and run.rows_rejected == len(too_large)
    assert not Transaction.objects.filter(external_id__endswith=huge).exists()
    assert Transaction.objects.filter(company=company).count() == 2
    persona = Persona.objects.get(company=company, phone="+13035550142")
    entries = PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True)
    assert persona.points_balance == sum(entries)
    assert 0 < persona.points_balance < 1000
    # and: the row error names the Cova sale and the field, on the run's page
    error = RowError.objects.get(imported_file__last_run=run)
    assert error.column == field and error.value == huge and f"Cova sale {huge}" in error.reason
    page = admin_client.get(reverse("sync_run_detail", args=[run.pk])).content.decode()
    assert "Completed with errors" in page
    errors = admin_client.get(reverse("imported_file_errors", args=[error.imported_file_id])).content.decode()
    assert huge in errors and field in errors
    # and: the next sync does not bring it back nor fail on it
    again = sync()
    assert again.state == SyncRun.State.SUCCEEDED and again.sales_synced == 0


def test_a_signup_push_of_a_customer_erased_before_it_ran_sends_nothing(company, cova, cova_server):  # noqa: F811
    from integrations.tasks import signup_push
    from loyalty.services.privacy import persona_erase

    persona = persona_create(company=company, source=None, first_name="Wren", phone="(303) 555-0174")
    persona_enroll(company=company, persona_id=persona.pk)
    [push] = signup_push_queue(persona=persona)
    persona_erase(company=company, persona_id=persona.pk, via="page")

    signup_push.apply(args=[push.pk])

    # nothing of theirs goes to Cova (not even a blank customer): the push went with the data
    assert cova_server.requests_to("/Customers", method="POST") == []
    assert not SignupPush.objects.filter(pk=push.pk).exists()


def test_a_cova_id_answered_after_the_customer_was_erased_is_not_kept(company, cova, cova_server,  # noqa: F811
                                                                     monkeypatch):
    from integrations.providers.cova import CovaClient
    from integrations.tasks import signup_push
    from loyalty.models import ErasedIdentity
    from loyalty.services.privacy import persona_erase

    persona = persona_create(company=company, source=None, first_name="Xavi", phone="(303) 555-0175")
    persona_enroll(company=company, persona_id=persona.pk)
    [push] = signup_push_queue(persona=persona)
    create = CovaClient.customer_create

    def erased_while_cova_answers(self, **kwargs):
        cova_id = create(self, **kwargs)
        persona_erase(company=company, persona_id=persona.pk, via="page")
        return cova_id

    monkeypatch.setattr(CovaClient, "customer_create", erased_while_cova_answers)

    signup_push.apply(args=[push.pk])

    # the erased customer is not tied to Cova's id again; that id is a tombstone, so a later
    # sync of the Cova customer does not bring them back; the card says to delete them in Cova
    assert not PersonaIdentity.objects.filter(persona=persona).exists()
    assert ErasedIdentity.objects.filter(company=company, kind="external_id").count() == 1
    push.refresh_from_db()
    assert push.state == SignupPush.State.FAILED
    assert "erased" in push.error and "delete them in Cova" in push.error


def test_a_signup_push_retried_after_the_customer_was_erased_sends_nothing_more(company, cova, cova_server,  # noqa: F811
                                                                              monkeypatch):
    from integrations.providers.base import ConnectionProblem, ProviderError
    from integrations.providers.cova import CovaClient
    from integrations.tasks import signup_push
    from loyalty.services.privacy import persona_erase

    persona = persona_create(company=company, source=None, first_name="Yara", phone="(303) 555-0176")
    persona_enroll(company=company, persona_id=persona.pk)
    [push] = signup_push_queue(persona=persona)
    calls = []

    def erased_then_cova_down(self, **kwargs):
        calls.append(kwargs)
        persona_erase(company=company, persona_id=persona.pk, via="page")
        raise ProviderError(ConnectionProblem.UNREACHABLE, "Cova did not answer")

    monkeypatch.setattr(CovaClient, "customer_create", erased_then_cova_down)

    signup_push.apply(args=[push.pk])  # the retry runs inline, after the erasure

    # the retry sends nothing of the erased customer, and the card says so
    assert len(calls) == 1
    push.refresh_from_db()
    assert push.state == SignupPush.State.FAILED
    assert push.error == "The customer's data was erased; nothing was sent to Cova."
