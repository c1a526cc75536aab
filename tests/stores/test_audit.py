"""The audit trail: every staff write and export made through the pages leaves one event
with who, from where, what and what changed (secrets masked); the database refuses to
change or delete an event; Settings › Activity shows, filters, pages and exports the
company's own trail to admins only; the persona card shows the persona's own."""

import csv
import datetime as dt
import io
import json
import zoneinfo
from decimal import Decimal

import pytest
import time_machine
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import DatabaseError, connection, transaction
from django.test import Client
from django.urls import reverse
from django.utils import timezone

from audiences.compiler import empty_rules
from audiences.models import Audience
from integrations.models import Connection, CovaCredential, ImportedFile
from integrations.providers.folder import FolderProvider
from integrations.services.connections import connection_create
from integrations.services.cova import cova_connection_create, cova_credential_save, cova_locations_refresh
from integrations.services.sync import sync_run_create, sync_run_execute
from loyalty.models import Offer, Persona, Prompt, Tier, WebhookEndpoint
from loyalty.services.offers import offer_create
from loyalty.services.points import points_adjust
from stores.audit import AuditContext, audit_changes, audit_record
from stores.models import ApiKey, AuditEvent, Membership, RetailStore, Role
from tests.factories import (
    MembershipFactory,
    OfferFactory,
    PersonaFactory,
    RetailStoreFactory,
    UserFactory,
)
from tests.integrations import cova_fake

cova_server = cova_fake.cova_server
HTMX = {"HTTP_HX_REQUEST": "true"}
ADDRESS = "127.0.0.1"  # the test client's REMOTE_ADDR


def the_event(company, kind) -> AuditEvent:
    """The one event of `kind` on the company's trail."""
    events = list(AuditEvent.objects.filter(company_id=company.pk, kind=kind))
    assert len(events) == 1, [e.kind for e in AuditEvent.objects.filter(company_id=company.pk)]
    return events[0]


def assert_made_by(event, user, obj=None, *, object_type=None, label=None):
    assert (event.actor_id, event.actor_name, event.ip_address) == (user.pk, user.username, ADDRESS)
    if obj is not None:
        assert (event.object_type, event.object_id) == (object_type or obj._meta.model_name, obj.pk)
        assert event.object_label == (label if label is not None else str(obj))


def trail_text(company) -> str:
    """Everything the company's trail says, to look for secrets in."""
    return json.dumps([[e.changes, e.extra, e.object_label]
                       for e in AuditEvent.objects.filter(company_id=company.pk)], ensure_ascii=False)


# --- retail stores, kiosk link, store mappings ---------------------------------------------------

def test_store_create_and_edit_record_each_change(admin_client, admin_user, company):
    # when: an admin adds a store, then turns its opt-in queue on
    admin_client.post(reverse("store_create"), {"name": "Portland", "state": "or",
                                                "timezone": "America/Los_Angeles"})
    store = RetailStore.objects.get(company=company)
    admin_client.post(reverse("store_edit", args=[store.pk]),
                      {"name": "Portland", "state": "OR", "timezone": "America/Los_Angeles",
                       "opt_in_queue_enabled": "on"}, **HTMX)
    # then: one event each, by the admin, from their address, saying what changed
    created = the_event(company, "store.created")
    assert_made_by(created, admin_user, store)
    assert created.changes["name"] == [None, "Portland"] and created.changes["state"] == [None, "OR"]
    assert "address" not in created.changes  # a create lists what it filled in
    updated = the_event(company, "store.updated")
    assert_made_by(updated, admin_user, store)
    assert updated.changes == {"opt_in_queue_enabled": [False, True]}


def test_store_checkin_token_regenerate_records_without_the_link(admin_client, admin_user, company):
    store = RetailStoreFactory(company=company, opt_in_queue_enabled=True)
    old = store.checkin_token
    admin_client.post(reverse("checkin_link_regenerate", args=[store.pk]))
    store.refresh_from_db()
    event = the_event(company, "store.kiosk_link_renewed")
    assert_made_by(event, admin_user, store)
    assert event.changes == {"checkin_token": ["••••", "(changed)"]}
    assert old not in trail_text(company) and store.checkin_token not in trail_text(company)


def test_store_mapping_save_on_the_store_page_records_the_location(admin_client, admin_user, company,
                                                                   store, cova_server):
    # given: a Cova connection whose credential sees one location, fetched
    cova_server.add_location("Downtown", "CO", location_id=1001)
    cova = cova_connection_create(company=company)
    cova_credential_save(connection=cova, client_id=cova_server.client_id,
                         client_secret=cova_server.client_secret, username=cova_server.username,
                         password=cova_server.password, cova_company_id=str(cova_server.company_id),
                         accounts_url=cova_server.url, api_url=cova_server.url)
    cova_locations_refresh(connection_id=cova.pk)
    url = reverse("store_edit", args=[store.pk])
    # when: the admin maps the store to it, then unmaps it
    admin_client.post(url, {"name": store.name, "state": "CO", f"cova-{cova.pk}": "1001"}, **HTMX)
    event = the_event(company, "store.mapping_changed")
    assert_made_by(event, admin_user, store)
    assert event.changes == {"cova_location": [None, "Downtown (1001)"]}
    assert event.extra == {"connection": cova.name, "connection_id": cova.pk}
    admin_client.post(url, {"name": store.name, "state": "CO", f"cova-{cova.pk}": ""}, **HTMX)
    kinds = AuditEvent.objects.filter(company_id=company.pk, kind="store.mapping_changed")
    assert [e.changes for e in kinds] == [{"cova_location": ["Downtown (1001)", None]},
                                          {"cova_location": [None, "Downtown (1001)"]}]
    # a save that changes nothing records nothing
    assert not AuditEvent.objects.filter(company_id=company.pk, kind="store.updated").exists()


# --- loyalty settings ----------------------------------------------------------------------------

def program_post(**overrides):
    data = {"points_per_unit": "1", "earn_on": "pre_tax", "members_only": "on", "rounding": "down",
            "discount_applies": "before_tax", "lock_ttl_minutes": "15", "refund_policy": "keep",
            "signup_bonus": "0", "expiry_months": "", "budtenders_see_queue": "on",
            "budtender_adjustment_limit": "500"}
    return data | overrides


def test_loyalty_program_update_and_tiers_record_before_and_after(admin_client, admin_user, company):
    # given: the program as the form first saves it
    admin_client.post(reverse("loyalty_program"), program_post())
    first = AuditEvent.objects.filter(company_id=company.pk, kind="program.updated").count()
    # when: two settings change
    admin_client.post(reverse("loyalty_program"), program_post(points_per_unit="3", signup_bonus="50"))
    # then: one more event with exactly those two, before and after
    events = AuditEvent.objects.filter(company_id=company.pk, kind="program.updated").order_by("id")
    assert events.count() == first + 1
    event = events.last()
    assert_made_by(event, admin_user)
    assert event.object_type == "loyaltyprogram"
    assert set(event.changes) == {"points_per_unit", "signup_bonus"}
    assert Decimal(event.changes["points_per_unit"][0]) == 1
    assert Decimal(event.changes["points_per_unit"][1]) == 3
    assert event.changes["signup_bonus"] == [0, 50]
    # tiers: add, edit, delete
    admin_client.post(reverse("tier_create"), {
        "tier-name": "Silver", "tier-threshold_kind": "lifetime_points", "tier-threshold": "200",
        "tier-earn_multiplier": "1.2"}, **HTMX)
    tier = Tier.objects.get(company=company)
    admin_client.post(reverse("tier_edit", args=[tier.pk]), {
        "edit-name": "Bronze", "edit-threshold_kind": "lifetime_points", "edit-threshold": "300",
        "edit-earn_multiplier": "1.2"}, **HTMX)
    admin_client.post(reverse("tier_delete", args=[tier.pk]), **HTMX)
    created = the_event(company, "tier.created")
    assert_made_by(created, admin_user, tier, label="Silver")
    assert created.changes["name"] == [None, "Silver"]
    updated = the_event(company, "tier.updated")
    assert updated.changes["name"] == ["Silver", "Bronze"]
    assert Decimal(updated.changes["threshold"][0]) == 200 and Decimal(updated.changes["threshold"][1]) == 300
    deleted = the_event(company, "tier.deleted")
    assert (deleted.object_id, deleted.object_label) == (tier.pk, "Bronze")
    assert deleted.changes["name"] == ["Bronze", None]


def offer_post(**overrides):
    data = {"name": "Five off", "kind": "flat", "amount": "5", "points_cost": "100", "applies": "",
            "starts_at": "", "ends_at": "", "min_subtotal": "0", "categories": "", "brands": "",
            "limit_per_persona": "", "is_active": "on"}
    return data | overrides


def test_offer_create_update_and_activation_are_recorded(admin_client, admin_user, company, store):
    admin_client.post(reverse("offer_create"), offer_post(stores=[str(store.pk)]), **HTMX)
    offer = Offer.objects.get(company=company)
    admin_client.post(reverse("offer_edit", args=[offer.pk]), offer_post(points_cost="150"), **HTMX)
    admin_client.post(reverse("offer_active", args=[offer.pk]), {"is_active": "0"}, **HTMX)
    admin_client.post(reverse("offer_active", args=[offer.pk]), {"is_active": "1"}, **HTMX)
    created = the_event(company, "offer.created")
    assert_made_by(created, admin_user, offer)
    assert created.changes["points_cost"] == [None, 100] and created.changes["stores"] == [None, [store.name]]
    updated = the_event(company, "offer.updated")
    assert updated.changes == {"points_cost": [100, 150], "stores": [[store.name], None]}
    assert the_event(company, "offer.deactivated").changes == {"is_active": [True, False]}
    assert the_event(company, "offer.activated").changes == {"is_active": [False, True]}


def test_prompt_create_update_delete_are_recorded(admin_client, admin_user, company):
    admin_client.post(reverse("prompt_create"), {"name": "TV warranty", "condition": "item_price_over",
                                                 "value": "500", "message": "Offer the warranty",
                                                 "is_active": "on"})
    prompt = Prompt.objects.get(company=company)
    admin_client.post(reverse("prompt_edit", args=[prompt.pk]), {
        "name": "TV warranty", "condition": "item_price_over", "value": "600", "message": "Offer it",
        "is_active": "on"})
    admin_client.post(reverse("prompt_delete", args=[prompt.pk]), **HTMX)
    assert_made_by(the_event(company, "prompt.created"), admin_user, prompt)
    assert the_event(company, "prompt.updated").changes["message"] == ["Offer the warranty", "Offer it"]
    deleted = the_event(company, "prompt.deleted")
    assert (deleted.object_id, deleted.changes["name"]) == (prompt.pk, ["TV warranty", None])


def test_api_key_create_and_revoke_never_record_the_key(admin_client, admin_user, company):
    response = admin_client.post(reverse("api_key_list"), {"name": "Cova – Denver", "level": "1"})
    raw = response.context["raw_key"]
    key = ApiKey.objects.get(company=company)
    admin_client.post(reverse("api_key_revoke", args=[key.pk]))
    created = the_event(company, "api_key.created")
    assert_made_by(created, admin_user, key)
    assert created.changes == {"name": [None, "Cova – Denver"], "prefix": [None, key.prefix],
                               "level": [None, 1], "rate_per_second": [None, 20], "burst": [None, 40]}
    revoked = the_event(company, "api_key.revoked")
    assert_made_by(revoked, admin_user, key)
    assert revoked.changes["revoked_at"][0] is None and revoked.changes["revoked_at"][1]
    assert raw not in trail_text(company) and key.key_hash not in trail_text(company)


def test_webhook_endpoint_writes_are_recorded_with_the_secret_masked(admin_client, admin_user, company):
    admin_client.post(reverse("webhook_create"), {"url": "https://pos.example/hook",
                                                  "events": ["points.changed"], "is_active": "on"})
    endpoint = WebhookEndpoint.objects.get(company=company)
    first_secret = endpoint.secret_plain()
    admin_client.post(reverse("webhook_edit", args=[endpoint.pk]), {
        "url": "https://pos.example/hook2", "events": ["points.changed", "persona.updated"]})
    admin_client.post(reverse("webhook_rotate_secret", args=[endpoint.pk]), **HTMX)
    endpoint.refresh_from_db()
    second_secret = endpoint.secret_plain()
    admin_client.post(reverse("webhook_delete", args=[endpoint.pk]))
    created = the_event(company, "webhook.created")
    assert_made_by(created, admin_user, endpoint, label="https://pos.example/hook")
    assert created.changes["secret"] == [None, "(set)"]
    updated = the_event(company, "webhook.updated")
    assert updated.changes == {"url": ["https://pos.example/hook", "https://pos.example/hook2"],
                               "events": [["points.changed"], ["persona.updated", "points.changed"]],
                               "is_active": [True, False]}
    assert the_event(company, "webhook.secret_rotated").changes == {"secret": ["••••", "(changed)"]}
    deleted = the_event(company, "webhook.deleted")
    assert deleted.object_id == endpoint.pk and deleted.changes["secret"] == ["••••", "(removed)"]
    text = trail_text(company)
    assert first_secret not in text and second_secret not in text


# --- integrations and credentials ----------------------------------------------------------------

def test_report_connection_writes_are_recorded_with_credentials_masked(admin_client, admin_user, company,
                                                                       store):
    # create, with a secret
    admin_client.post(reverse("connection_create"), {
        "provider": "s3", "name": "Bucket reports", "bucket": "green-leaf", "region": "us-west-2",
        "access_key_id": "AKIAEXAMPLEKEY", "secret_access_key": "very-secret-value-9876",
        "default_store": store.pk, "sync_time": "03:30"})
    connection = Connection.objects.get(company=company)
    created = the_event(company, "connection.created")
    assert_made_by(created, admin_user, connection)
    assert created.changes["settings.bucket"] == [None, "green-leaf"]
    assert created.changes["credentials.secret_access_key"] == [None, "(set)"]
    assert created.changes["default_store"] == [None, store.name]
    # edit: a blank secret keeps it (no change), a new one says only that it changed
    data = {"name": "Bucket reports", "bucket": "green-leaf-2", "region": "us-west-2", "access_key_id": "",
            "secret_access_key": "", "sync_time": "03:30", "default_store": store.pk}
    admin_client.post(reverse("connection_edit", args=[connection.pk]), data)
    admin_client.post(reverse("connection_edit", args=[connection.pk]),
                      data | {"secret_access_key": "new-secret-value-2222"})
    first, second = AuditEvent.objects.filter(company_id=company.pk, kind="connection.updated").order_by("id")
    assert first.changes == {"settings.bucket": ["green-leaf", "green-leaf-2"]}
    assert second.changes == {"credentials.secret_access_key": ["••••", "(changed)"]}
    # freeze, then delete keeping the data
    admin_client.post(reverse("connection_freeze", args=[connection.pk]), {"frozen": "1"})
    assert the_event(company, "connection.frozen").changes == {"is_frozen": [False, True]}
    admin_client.post(reverse("connection_delete", args=[connection.pk]), {"keep_data": "keep"})
    deleted = the_event(company, "connection.deleted")
    assert_made_by(deleted, admin_user, object_type="connection")
    assert (deleted.object_id, deleted.object_label) == (connection.pk, "Bucket reports")
    assert deleted.extra == {"keep_data": True, "sales_removed": 0}
    text = trail_text(company)
    assert "very-secret-value-9876" not in text and "new-secret-value-2222" not in text
    assert "AKIAEXAMPLEKEY" not in text


def test_folder_connection_header_map_store_mapping_and_sync_now_are_recorded(admin_client, admin_user,
                                                                              company, store, reports_root):
    (reports_root / company.slug / "nightly").mkdir(parents=True)
    connection = connection_create(company=company, name="Nightly reports", provider="folder",
                                   settings={"path": "nightly"}, credentials={})
    assert not AuditEvent.objects.exists()  # a service called without `audit` records nothing
    # header mapping
    url = reverse("connection_header_mapping", args=[connection.pk])
    sample = SimpleUploadedFile("sample.csv", b"Ticket No.,customerId,TransactionDate\nA1,C1,2026-01-02\n")
    page = admin_client.post(url, {"sample": sample}).content.decode()
    token = page.split('name="token" value="')[1].split('"')[0]
    admin_client.post(url, {"token": token, "field-0": "transaction_id", "field-1": "customer_id",
                            "field-2": "occurred_at", "save": "1"})
    mapped = the_event(company, "connection.header_map_saved")
    assert_made_by(mapped, admin_user, connection)
    assert mapped.changes["header:Ticket No."] == [None, "transaction_id"]
    # a location value mapped to a store
    admin_client.post(reverse("connection_store_mappings", args=[connection.pk]),
                      {"external_location_id": "LOC-9", "store": store.pk})
    mapping = the_event(company, "connection.store_mapping_changed")
    assert mapping.changes == {"location:LOC-9": [None, store.name]}
    # sync now
    admin_client.post(reverse("connection_sync", args=[connection.pk]))
    requested = the_event(company, "connection.sync_requested")
    assert_made_by(requested, admin_user, connection)
    assert requested.extra["sync_run_id"] == connection.runs.get().pk


def test_cova_credential_writes_are_recorded_without_the_secrets(admin_client, admin_user, company,
                                                                 cova_server):
    data = {"grant_type": "password", "client_id": cova_server.client_id,
            "client_secret": cova_server.client_secret, "username": cova_server.username,
            "password": cova_server.password, "cova_company_id": str(cova_server.company_id),
            "sync_time": "02:30", "accounts_url": cova_server.url, "api_url": cova_server.url}
    # connect: the connection and its first credential
    admin_client.post(reverse("cova_connect"), data | {"name": "Cova"})
    connection = Connection.objects.get(company=company, provider="cova")
    credential = CovaCredential.objects.get(connection=connection)
    assert_made_by(the_event(company, "connection.created"), admin_user, connection)
    created = the_event(company, "cova_credential.created")
    assert_made_by(created, admin_user, credential)
    assert created.changes["password"] == [None, "(set)"]
    assert created.changes["client_secret"] == [None, "(set)"]
    assert created.changes["username"] == [None, cova_server.username]
    # edit: blank secrets keep them; a new password shows only that it changed
    edit = reverse("cova_credential_edit", args=[credential.pk])
    admin_client.post(edit, data | {"client_secret": "", "password": "", "location_ids": "1001"})
    admin_client.post(edit, data | {"client_secret": "", "password": "a-brand-new-password-77",
                                    "location_ids": "1001"})
    first, second = AuditEvent.objects.filter(company_id=company.pk,
                                              kind="cova_credential.updated").order_by("id")
    assert first.changes == {"location_ids": [None, ["1001"]]}
    assert second.changes == {"password": ["••••", "(changed)"]}
    # sync now, then remove
    admin_client.post(reverse("cova_credential_sync", args=[credential.pk]))
    assert_made_by(the_event(company, "cova_credential.sync_requested"), admin_user, credential)
    admin_client.post(reverse("cova_credential_delete", args=[credential.pk]))
    deleted = the_event(company, "cova_credential.deleted")
    assert deleted.object_id == credential.pk and deleted.extra["connection"] == "Cova"
    text = trail_text(company)
    for secret in (cova_server.password, cova_server.client_secret, "a-brand-new-password-77"):
        assert secret not in text


def report(day: str) -> str:
    return ("ReceiptId,customerId,TransactionDate,Location,FirstName,ProductName,Quantity,LineTotal\n"
            f"R1,C1,{day} 10:15 AM,Denver,Ana,Gummies,2,$20.00\n"
            "R2,C2,13/45/2020,Denver,Bo,Vape,1,$30.00\n")


def test_row_errors_csv_and_purge_are_recorded(admin_client, admin_user, company, store, reports_root,
                                               monkeypatch):
    # given: a folder that keeps the data of deleted files, with a file imported, then deleted
    monkeypatch.setattr(FolderProvider, "deletion_removes_data", False)
    folder = reports_root / company.slug / "nightly"
    folder.mkdir(parents=True)
    connection = connection_create(company=company, name="Nightly reports", provider="folder",
                                   settings={"path": "nightly"}, credentials={})
    day = (timezone.localdate() - dt.timedelta(days=3)).strftime("%m/%d/%Y")
    (folder / "day1.csv").write_text(report(day))
    sync_run_execute(run_id=sync_run_create(connection=connection, trigger="manual").pk)
    imported_file = ImportedFile.objects.get(connection=connection)
    # when: the admin downloads its rejected rows
    response = admin_client.get(reverse("imported_file_errors_csv", args=[imported_file.pk]))
    b"".join(response.streaming_content)
    exported = the_event(company, "imported_file.errors_exported")
    assert_made_by(exported, admin_user, imported_file)
    assert exported.extra == {"rows": 1}
    # when: the file is gone from the folder and the admin purges its data
    (folder / "day1.csv").unlink()
    sync_run_execute(run_id=sync_run_create(connection=connection, trigger="manual").pk)
    admin_client.post(reverse("imported_file_purge", args=[imported_file.pk]))
    purged = the_event(company, "imported_file.purged")
    assert_made_by(purged, admin_user, imported_file)
    assert purged.changes == {"state": ["removed", "purged"]}
    assert purged.extra == {"connection": "Nightly reports", "sales_removed": 1}


# --- memberships and staff users (Django admin) ----------------------------------------------------

@pytest.fixture
def support_client(db):
    user = UserFactory(username="support", is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(user)
    return client, user


def test_membership_admin_create_change_delete_are_recorded(support_client, company, store):
    client, support = support_client
    staff = UserFactory(username="newhire", email="newhire@example.com")
    # create
    response = client.post(reverse("admin:stores_membership_add"), {
        "user": staff.pk, "company": company.pk, "role": "budtender", "stores": [store.pk]})
    assert response.status_code == 302
    membership = Membership.objects.get(user=staff)
    created = the_event(company, "membership.created")
    assert_made_by(created, support, membership)
    assert created.changes == {"user": [None, "newhire"], "company": [None, company.name],
                               "role": [None, "budtender"], "stores": [None, [store.name]]}
    # change the role and the stores
    client.post(reverse("admin:stores_membership_change", args=[membership.pk]), {
        "user": staff.pk, "company": company.pk, "role": "admin", "stores": []})
    assert the_event(company, "membership.updated").changes == {"role": ["budtender", "admin"],
                                                                "stores": [[store.name], None]}
    # delete, from the change list's action
    client.post(reverse("admin:stores_membership_changelist"), {
        "action": "delete_selected", "_selected_action": [membership.pk], "post": "yes"})
    assert not Membership.objects.filter(pk=membership.pk).exists()
    deleted = the_event(company, "membership.deleted")
    assert (deleted.object_id, deleted.changes["role"]) == (membership.pk, ["admin", None])


def test_user_admin_staff_flags_are_recorded_for_each_company(support_client, company, other_company):
    client, support = support_client
    user = MembershipFactory(company=company, role=Role.ADMIN).user
    MembershipFactory(company=other_company, user=user, role=Role.MARKETER)
    client.post(reverse("admin:auth_user_change", args=[user.pk]), {
        "username": user.username, "is_active": "on", "is_staff": "on", "is_superuser": "on",
        "date_joined_0": "2026-01-01", "date_joined_1": "10:00:00"})
    user.refresh_from_db()
    assert user.is_superuser
    for tenant in (company, other_company):
        event = the_event(tenant, "user.access_changed")
        assert_made_by(event, support, user)
        assert event.changes == {"is_staff": [False, True], "is_superuser": [False, True]}


# --- the persona card --------------------------------------------------------------------------------

def test_points_enrol_merge_and_grant_are_recorded_and_shown_on_the_card(admin_client, admin_user, company):
    persona = PersonaFactory(company=company, first_name="Dana", last_name="Diaz", is_member=False,
                             enrolled_at=None, email="")
    duplicate = PersonaFactory(company=company, first_name="Dana", last_name="D", email="dana@example.com")
    offer = OfferFactory(company=company, name="Free pre-roll", points_cost=0)
    # when: staff enrol her, adjust her points, grant an offer and merge her duplicate in
    admin_client.post(reverse("persona_enroll", args=[persona.pk]))
    admin_client.post(reverse("persona_points_adjust", args=[persona.pk]),
                      {"delta": "40", "reason": "Goodwill", "token": "t-1"})
    admin_client.post(reverse("persona_wallet_grant", args=[persona.pk]), {"offer": offer.pk})
    admin_client.post(reverse("persona_merge", args=[persona.pk]), {"duplicate_id": str(duplicate.pk)})
    # then
    enrolled = the_event(company, "persona.enrolled")
    assert_made_by(enrolled, admin_user, persona, label="Dana Diaz")
    assert enrolled.changes["is_member"] == [False, True]
    adjusted = the_event(company, "points.adjusted")
    assert_made_by(adjusted, admin_user, persona, label="Dana Diaz")
    assert adjusted.changes == {"points_balance": [0, 40]}
    assert (adjusted.extra["delta"], adjusted.extra["reason"]) == (40, "Goodwill")
    granted = the_event(company, "wallet.granted")
    assert granted.changes == {"wallet": [None, "Free pre-roll"]} and granted.extra["offer_id"] == offer.pk
    merged = the_event(company, "persona.merged")
    assert_made_by(merged, admin_user, persona, label="Dana Diaz")
    assert merged.changes["email"] == [None, "dana@example.com"]
    assert merged.extra["merged_persona_id"] == duplicate.pk and merged.extra["merged_persona"] == "Dana D"
    # and the card shows the persona's trail, the merged-in persona's included
    audit_record(audit=AuditContext(user=admin_user), company=company, kind="persona.updated",
                 obj=Persona(pk=duplicate.pk, company=company, first_name="Dana", last_name="D"),
                 changes={"phone": ["", "+13035550100"]})
    page = admin_client.get(reverse("persona_detail", args=[persona.pk])).content.decode()
    activity = page.split('data-testid="activity"')[1]
    assert activity.count('data-testid="activity-row"') == 5
    for text in ("Persona enrolled", "Points adjusted", "Wallet granted", "Persona merged", "Goodwill",
                 "0 → 40", admin_user.username, f"on #{duplicate.pk}, since merged in"):
        assert text in activity, text
    # a moment reads in the company's clock
    enrolled_at = timezone.localtime(dt.datetime.fromisoformat(enrolled.changes["enrolled_at"][1]),
                                     zoneinfo.ZoneInfo(company.timezone))
    assert f"— → {enrolled_at:%b %-d, %Y %H:%M:%S}" in activity


def test_waiting_room_signup_is_recorded_as_an_enrolment(admin_client, admin_user, company):
    from waitingroom.services import queue_check_in

    store = RetailStoreFactory(company=company, opt_in_queue_enabled=True)
    entry = queue_check_in(store=store, phone="3035550177", first_name="Walk", last_name="In")
    admin_client.post(reverse("queue_entry_action", args=[store.pk, entry.pk, "signup"]))
    event = the_event(company, "persona.enrolled")
    assert_made_by(event, admin_user, entry.persona)


# --- audiences and exports ---------------------------------------------------------------------------

def test_audience_writes_and_export_are_recorded(admin_client, admin_user, company):
    PersonaFactory(company=company)
    admin_client.post(reverse("audience_new"), {"rules": json.dumps(empty_rules()), "name": "Everyone"})
    audience = Audience.objects.get(company=company)
    admin_client.post(reverse("audience_builder", args=[audience.pk]),
                      {"rules": json.dumps(empty_rules()), "name": "Everyone we know"})
    response = admin_client.get(reverse("audience_export", args=[audience.pk]))
    b"".join(response.streaming_content)
    admin_client.post(reverse("audience_delete", args=[audience.pk]))
    created = the_event(company, "audience.created")
    assert_made_by(created, admin_user, audience, label="Everyone")
    assert created.changes["name"] == [None, "Everyone"]
    assert the_event(company, "audience.updated").changes == {"name": ["Everyone", "Everyone we know"]}
    exported = the_event(company, "audience.exported")
    assert_made_by(exported, admin_user, audience, label="Everyone we know")
    assert exported.extra == {"members": 1}
    assert the_event(company, "audience.deleted").object_id == audience.pk


def test_audience_from_template_is_recorded(admin_client, admin_user, company):
    admin_client.post(reverse("audience_from_template", args=["loyalty_members"]))
    audience = Audience.objects.get(company=company)
    event = the_event(company, "audience.created")
    assert_made_by(event, admin_user, audience)
    assert event.extra == {"template": "loyalty_members"}


def test_analytics_csv_download_is_recorded(admin_client, admin_user, company):
    response = admin_client.get(reverse("analytics_csv", args=["stores"]) + "?range=30d")
    assert response.status_code == 200
    event = the_event(company, "analytics.exported")
    assert_made_by(event, admin_user)
    assert event.extra["chart"] == "stores" and event.extra["filters"] == "range=30d"
    assert event.extra["file"] in response["Content-Disposition"]


# --- the address, behind proxies ---------------------------------------------------------------------

def test_audit_context_takes_the_address_the_trusted_proxy_saw(admin_client, company, settings):
    settings.TRUSTED_PROXIES = 1
    admin_client.post(reverse("store_create"), {"name": "A", "state": "CO"},
                      HTTP_X_FORWARDED_FOR="6.6.6.6, 203.0.113.9")
    assert the_event(company, "store.created").ip_address == "203.0.113.9"
    settings.TRUSTED_PROXIES = 0  # not trusted: the header is the client's own say
    admin_client.post(reverse("store_create"), {"name": "B", "state": "CO"}, HTTP_X_FORWARDED_FOR="6.6.6.6")
    assert AuditEvent.objects.filter(company_id=company.pk).first().ip_address == ADDRESS


# --- append-only -------------------------------------------------------------------------------------

def test_audit_event_refuses_update_and_delete(company, admin_user):
    event = audit_record(audit=AuditContext(user=admin_user, ip="10.0.0.1"), company=company,
                         kind="store.created", changes={"name": [None, "X"]})
    attempts = [
        lambda: AuditEvent.objects.filter(pk=event.pk).update(kind="store.deleted"),
        lambda: AuditEvent.objects.filter(pk=event.pk).delete(),
        lambda: event.delete(),
        lambda: connection.cursor().execute("UPDATE stores_auditevent SET changes = '{}' WHERE id = %s",
                                            [event.pk]),
        lambda: connection.cursor().execute("DELETE FROM stores_auditevent WHERE id = %s", [event.pk]),
    ]
    for attempt in attempts:
        with pytest.raises(DatabaseError, match="Cannot update or delete"), transaction.atomic():
            attempt()
    event = AuditEvent.objects.get(pk=event.pk)
    assert (event.kind, event.changes) == ("store.created", {"name": [None, "X"]})


def test_audit_event_outlives_its_user_and_company(company, admin_user):
    audit_record(audit=AuditContext(user=admin_user, ip="10.0.0.1"), company=company, kind="store.created")
    company_id, username = company.pk, admin_user.username
    admin_user.delete()
    company.delete()
    event = AuditEvent.objects.get(company_id=company_id)
    assert event.actor_name == username and event.ip_address == "10.0.0.1"


def test_audit_changes_masks_secrets_and_keeps_only_differences():
    before = {"name": "A", "secret": "s3cr3t-old-1234", "token": "", "same": 1}
    after = {"name": "B", "secret": "s3cr3t-new-5678", "token": "t0k3n-9999", "same": 1}
    assert audit_changes(before, after, secret_fields={"secret", "token"}) == {
        "name": ["A", "B"], "secret": ["••••", "(changed)"], "token": [None, "(set)"]}
    with pytest.raises(ValueError, match="thing.action"):
        audit_record(audit=AuditContext(), company=1, kind="Store Created")


# --- Settings › Activity -----------------------------------------------------------------------------

def record(company, user, kind, obj=None, *, when=None, **kwargs):
    with time_machine.travel(when or timezone.now(), tick=False):
        return audit_record(audit=AuditContext(user=user, ip="198.51.100.7"), company=company, kind=kind,
                            obj=obj, **kwargs)


@pytest.fixture
def trail(company, other_company, admin_user):
    """A few events of this company by two people, and one of another company."""
    colleague = MembershipFactory(company=company, role=Role.ADMIN, user__username="colleague").user
    offer = offer_create(company=company, name="Five off", kind="flat", amount="5")
    store = RetailStoreFactory(company=company, name="Boulder")
    base = dt.datetime(2026, 3, 10, 12, tzinfo=dt.UTC)
    record(company, admin_user, "offer.updated", offer, when=base, changes={"points_cost": [100, 150]})
    record(company, colleague, "store.updated", store, when=base + dt.timedelta(days=1),
           changes={"opt_in_queue_enabled": [False, True]})
    record(company, colleague, "offer.deactivated", offer, when=base + dt.timedelta(days=2),
           changes={"is_active": [True, False]})
    foreign_offer = OfferFactory(company=other_company, name="Foreign offer")
    foreign_user = MembershipFactory(company=other_company, role=Role.ADMIN).user
    record(other_company, foreign_user, "offer.updated", foreign_offer, when=base,
           changes={"points_cost": [1, 2]})
    return {"colleague": colleague, "offer": offer, "store": store, "foreign_offer": foreign_offer,
            "foreign_user": foreign_user}


def rows(response) -> int:
    return response.content.decode().count('data-testid="activity-row"')


def test_activity_page_lists_newest_first_with_who_where_and_what(admin_client, trail):
    page = admin_client.get(reverse("audit_activity")).content.decode()
    assert page.count('data-testid="activity-row"') == 3
    table = page.split('data-testid="activity-table"')[1]
    assert table.index("offer.deactivated") < table.index("store.updated") < table.index("offer.updated")
    assert "colleague" in page and "198.51.100.7" in page and "Five off" in page
    assert "points_cost:</span> 100 → 150" in page
    assert "Mar 10, 2026 06:00:00" in page  # noon UTC in the company's Denver clock
    assert "Foreign offer" not in page
    # the settings navigation links to it
    assert f'href="{reverse("audit_activity")}"' in page


def test_activity_page_filters(admin_client, company, trail):
    url = reverse("audit_activity")
    assert rows(admin_client.get(url, {"person": trail["colleague"].pk})) == 2
    assert rows(admin_client.get(url, {"kind": "offer.updated"})) == 1
    assert rows(admin_client.get(url, {"object_type": "offer"})) == 2
    assert rows(admin_client.get(url, {"object": str(trail["offer"].pk), "object_type": "offer"})) == 2
    assert rows(admin_client.get(url, {"object": "boul"})) == 1
    # days are the company's: Mar 11 in Denver holds only the store's event
    assert rows(admin_client.get(url, {"start": "2026-03-11", "end": "2026-03-11"})) == 1
    assert rows(admin_client.get(url, {"start": "2026-03-11"})) == 2
    response = admin_client.get(url, {"start": "2026-03-12", "end": "2026-03-10"})
    assert "The end date is before the start date" in response.content.decode()
    # the filter offers this company's people and kinds only
    page = admin_client.get(url).content.decode()
    assert f'value="{trail["colleague"].pk}"' in page and trail["foreign_user"].username not in page


def test_activity_page_shows_nothing_of_another_company(admin_client, client, login, trail, other_company):
    url = reverse("audit_activity")
    # another company's person, object or kind in a filter finds nothing here
    assert rows(admin_client.get(url, {"person": trail["foreign_user"].pk})) == 0
    # (an offer's id: a store here may have the same number)
    foreign_offer = {"object_type": "offer", "object": str(trail["foreign_offer"].pk)}
    assert rows(admin_client.get(url, foreign_offer)) == 0
    assert rows(admin_client.get(url, {"object": "Foreign"})) == 0
    # and the other company's admin sees only their own event
    other = login(Client(), trail["foreign_user"])
    page = other.get(url).content.decode()
    assert page.count('data-testid="activity-row"') == 1
    assert "Foreign offer" in page and "Five off" not in page
    csv_rows = list(csv.reader(io.StringIO(b"".join(other.get(reverse("audit_activity_export")
                                                              ).streaming_content).decode())))
    assert [r[7] for r in csv_rows[1:]] == ["Foreign offer"]


@pytest.mark.parametrize("role", [Role.MARKETER, Role.BUDTENDER])
def test_activity_page_is_for_admins_only(client, login, company, trail, role):
    user = MembershipFactory(company=company, role=role).user
    login(client, user)
    assert client.get(reverse("audit_activity")).status_code == 403
    assert client.get(reverse("audit_activity_export")).status_code == 403
    assert reverse("audit_activity") not in client.get(reverse("persona_list")).content.decode()


def test_activity_page_pages_by_50_with_htmx_and_real_links(admin_client, company, admin_user):
    for i in range(120):
        record(company, admin_user, "store.updated", changes={"n": [i, i + 1]},
               when=dt.datetime(2026, 3, 1, tzinfo=dt.UTC) + dt.timedelta(minutes=i))
    url = reverse("audit_activity")
    first = admin_client.get(url, {"kind": "store.updated"})
    assert rows(first) == 50 and "Page 1 of 3" in first.content.decode()
    assert 'href="?kind=store.updated&page=2" hx-get="?kind=store.updated&page=2"' in first.content.decode()
    third = admin_client.get(url, {"kind": "store.updated", "page": "3"}, HTTP_HX_REQUEST="true",
                             HTTP_HX_TARGET="activity-results")
    page = third.content.decode()
    assert rows(third) == 20 and "<html" not in page and 'id="activity-results"' in page
    assert "n:</span> 0 → 1" in page  # the oldest is last
    assert "HX-Request" in third["Vary"]


def test_activity_export_csv_holds_the_filtered_rows_and_is_recorded(admin_client, admin_user, company,
                                                                     trail):
    response = admin_client.get(reverse("audit_activity_export"), {"kind": "offer.deactivated"})
    assert response["Content-Disposition"].startswith('attachment; filename="activity-')
    lines = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert lines[0] == ["when", "who", "email", "address", "kind", "object_type", "object_id", "object",
                        "changes", "details"]
    assert len(lines) == 2
    when, who, _, address, kind, object_type, object_id, label, changes, _ = lines[1]
    assert (who, address, kind, object_type, object_id, label) == (
        "colleague", "198.51.100.7", "offer.deactivated", "offer", str(trail["offer"].pk), "Five off")
    assert when == "2026-03-12T06:00:00-06:00" and changes == "is_active: yes → no"
    # the download is on the trail too, with what was asked for
    exported = the_event(company, "audit.exported")
    assert_made_by(exported, admin_user)
    assert exported.extra == {"filters": "kind=offer.deactivated", "rows": 1}


def test_activity_page_names_a_deleted_user_and_object(admin_client, company, trail):
    # given: the colleague leaves and the store is deleted
    trail["colleague"].delete()
    RetailStore.objects.filter(pk=trail["store"].pk).delete()
    page = admin_client.get(reverse("audit_activity"), {"kind": "store.updated"}).content.decode()
    assert "colleague" in page and "Boulder" in page


def test_points_adjust_without_audit_records_nothing(company, admin_user):
    # a write outside a staff page (a sync, the POS, a script) leaves no staff event
    persona = PersonaFactory(company=company)
    points_adjust(company=company, persona_id=persona.pk, delta=10, staff_user=admin_user, reason="x")
    assert not AuditEvent.objects.exists()


# --- staff sign-in settings ----------------------------------------------------------------------

def test_company_two_factor_require_is_on_the_trail(admin_client, admin_user, company, other_company):
    # when: an admin requires two-factor on Settings › Security
    admin_client.post(reverse("security_settings"), {"require_two_factor": "on"})
    # then: the decision is on this company's trail, by the admin, before → after
    event = the_event(company, "company.two_factor_required")
    assert event.changes == {"require_two_factor": [False, True]}
    assert_made_by(event, admin_user, company)
    assert not AuditEvent.objects.filter(company_id=other_company.pk).exists()


def test_two_factor_enrol_and_disable_are_on_the_trail_of_each_company_of_the_member(
        admin_client, admin_user, company, other_company):
    from django_otp.oath import totp
    from django_otp.plugins.otp_totp.models import TOTPDevice

    # given: the admin is also a marketer at another company
    MembershipFactory(user=admin_user, company=other_company, role=Role.MARKETER)
    start = dt.datetime(2026, 12, 4, 15, 0, tzinfo=dt.UTC)
    with time_machine.travel(start, tick=False) as clock:
        # when: they turn two-factor on with a code from their app, then off again
        admin_client.get(reverse("two_factor"))
        device = TOTPDevice.objects.get(user=admin_user)
        admin_client.post(reverse("two_factor_confirm"), {"code": f"{totp(device.bin_key):06d}"})
        clock.shift(30)
        admin_client.post(reverse("two_factor_disable"), {"code": f"{totp(device.bin_key):06d}"})
    # then: both companies see both changes, and no secret is on either trail
    for each in (company, other_company):
        assert_made_by(the_event(each, "two_factor.enabled"), admin_user, admin_user, object_type="user")
        assert_made_by(the_event(each, "two_factor.disabled"), admin_user, admin_user, object_type="user")
        assert device.key not in trail_text(each)
