"""Every URL that takes an object id, tried with another company's ids: a 404 (or a 405, or
the customer sign-in page), never their data, and nothing of theirs changes.

The URLs come from the URL conf itself, so a new page with an id in its path is tried as soon
as it exists; an id of a new kind fails here until the fixture below makes one of it."""

import datetime as dt

import pytest
from django.db.models import Model
from django.http import HttpResponse
from django.test import Client, RequestFactory
from django.urls import URLPattern, URLResolver, get_resolver, reverse
from django.urls.converters import IntConverter
from django.utils import timezone

from audiences.models import Audience, AudienceMember
from campaigns.models import Campaign, CampaignRecipient
from integrations.models import Connection, CovaCredential, ImportedFile, SyncRun
from integrations.services.connections import connection_create
from integrations.services.cova import cova_connection_create, cova_credential_save
from integrations.services.sync import sync_run_create, sync_run_execute
from loyalty.models import Persona, PointsEntry, WalletItem, WebhookDelivery
from loyalty.services import points_adjust
from loyalty.services.webhooks import webhook_endpoint_create
from members.selectors import page_settings
from members.sessions import CUSTOMER_COOKIE, customer_session_start
from stores.models import Role
from stores.services import api_key_create
from tests.factories import (
    MembershipFactory,
    OfferFactory,
    PersonaFactory,
    PromptFactory,
    RetailStoreFactory,
    TierFactory,
)
from waitingroom.models import QueueEntry
from waitingroom.services import queue_check_in

pytestmark = pytest.mark.django_db

MARKER = "SecretZebra"

# Which foreign object each int kwarg takes. A pattern whose name starts with a key of
# BY_URL_PREFIX takes that object instead (the Cova pages want a Cova connection).
KINDS = {
    "audience_id": "audience",
    "campaign_id": "campaign",
    "connection_id": "connection",
    "credential_id": "cova_credential",
    "delivery_id": "webhook_delivery",
    "endpoint_id": "webhook_endpoint",
    "entry_id": "queue_entry",
    "file_id": "imported_file",
    "key_id": "api_key",
    "offer_id": "offer",
    "persona_id": "persona",
    "prompt_id": "prompt",
    "run_id": "sync_run",
    "store_id": "store",
    "tier_id": "tier",
}
BY_URL_PREFIX = {"cova_": {"connection_id": "cova_connection"}}

# The string kwargs of these patterns, as their views expect them; None is our own
# company's slug (the signed-in customer's page: only the offer is someone else's).
STRINGS = {
    ("queue_entry_action", "action"): "remove",
    ("members:reward_confirm", "slug"): None,
}

# The Django admin and django-otp's admin have ids of their own, behind is_staff.
SKIPPED_KWARGS = {"object_id", "content_type_id", "pk"}


def _walk(patterns, prefix="", namespace="", converters=None):
    """(name, route, converters) of each named pattern, with its includes' prefixes."""
    for entry in patterns:
        here = (converters or {}) | getattr(entry.pattern, "converters", {})
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            yield from _walk(entry.url_patterns, prefix + str(entry.pattern), inner, here)
        elif isinstance(entry, URLPattern) and entry.name:
            yield namespace + entry.name, prefix + str(entry.pattern), here


def id_patterns() -> list[tuple[str, str, list[str], list[str]]]:
    """(name, route, int kwargs, other kwargs) of every named pattern with an int id."""
    found = []
    for name, route, converters in _walk(get_resolver().url_patterns):
        ints = sorted(k for k, c in converters.items() if isinstance(c, IntConverter))
        if not ints or route.startswith("admin/") or set(ints) & SKIPPED_KWARGS:
            continue
        found.append((name, route, ints, sorted(set(converters) - set(ints))))
    return found


PATTERNS = id_patterns()


def kind_of(url_name: str, kwarg: str) -> str | None:
    for prefix, kinds in BY_URL_PREFIX.items():
        if url_name.startswith(prefix) and kwarg in kinds:
            return kinds[kwarg]
    return KINDS.get(kwarg)


def recent() -> str:
    return (timezone.localdate() - dt.timedelta(days=3)).strftime("%m/%d/%Y")


@pytest.fixture
def foreign(other_company, reports_root, fake_dns) -> dict[str, Model]:
    """One object of each kind in the other company, each with MARKER where it shows a text."""
    fake_dns["secret.example.com"] = ["93.184.215.14"]  # a public address, never contacted
    store = RetailStoreFactory(company=other_company, name=f"{MARKER} store", opt_in_queue_enabled=True)
    persona = PersonaFactory(company=other_company, first_name=MARKER, last_name="Customer")
    staff = MembershipFactory(company=other_company, role=Role.ADMIN).user
    points_adjust(company=other_company, persona_id=persona.pk, delta=500, staff_user=staff, reason="Welcome")
    duplicate = PersonaFactory(company=other_company, first_name=f"{MARKER}-duplicate")
    offer = OfferFactory(company=other_company, name=f"{MARKER} offer", points_cost=10)

    folder = reports_root / other_company.slug
    folder.mkdir()
    (folder / f"{MARKER}-sales.csv").write_text(
        f"ReceiptId,customerId,TransactionDate,Location,FirstName\n"
        f"R1,C1,{recent()},{store.name},{MARKER}\nR2,C2,13/45/2020,{store.name},{MARKER}\n")
    connection = connection_create(company=other_company, name=f"{MARKER} reports", provider="folder",
                                   settings={"path": ""}, credentials={})
    run = sync_run_execute(run_id=sync_run_create(connection=connection, trigger=SyncRun.Trigger.MANUAL).pk)
    cova = cova_connection_create(company=other_company, name=f"{MARKER} Cova")
    endpoint = webhook_endpoint_create(company=other_company, url="https://secret.example.com/hook",
                                       events=["points.changed"], secret=f"{MARKER}-signing-secret")
    return {
        "store": store,
        "persona": persona,
        "duplicate_persona": duplicate,
        "offer": offer,
        "tier": TierFactory(company=other_company, name=f"{MARKER} tier"),
        "prompt": PromptFactory(company=other_company, name=f"{MARKER} prompt", message=f"{MARKER} message"),
        "audience": Audience.objects.create(company=other_company, name=f"{MARKER} audience",
                                            description=MARKER, rules={}),
        "api_key": api_key_create(company=other_company, name=f"{MARKER} register", level=2)[0],
        "connection": connection,
        "sync_run": run,
        "imported_file": ImportedFile.objects.get(connection=connection),
        "cova_connection": cova,
        "cova_credential": cova_credential_save(connection=cova, client_id=f"{MARKER}-client",
                                                client_secret="s", username=f"{MARKER}-user", password="p",
                                                cova_company_id="424242"),
        "webhook_endpoint": endpoint,
        "webhook_delivery": WebhookDelivery.objects.create(endpoint=endpoint, event="points.changed",
                                                           payload={"note": MARKER}),
        "queue_entry": queue_check_in(store=store, phone="3035550142", first_name=MARKER),
        "campaign": _campaign(other_company, persona),
    }


def _campaign(company, persona) -> Campaign:
    """A draft text message, ready to send, to an audience of one consenting persona."""
    persona.sms_opt_in = True
    persona.save(update_fields=["sms_opt_in"])
    audience = Audience.objects.create(company=company, name=f"{MARKER} texters", kind=Audience.Kind.STATIC,
                                       size=1)
    AudienceMember.objects.create(audience=audience, persona=persona, added_at=timezone.now())
    return Campaign.objects.create(company=company, name=f"{MARKER} campaign", channel="sms",
                                   audience=audience, sms_body=f"{MARKER}: double points today",
                                   holdout_percent=0)


def the_state(company, foreign: dict[str, Model]) -> dict:
    """Every foreign object's row as stored, and counts of what a request could add for them."""
    return {
        "rows": {kind: _row(obj) for kind, obj in foreign.items()},
        "counts": {
            "personas": Persona.objects.filter(company=company).count(),
            "points entries": PointsEntry.objects.filter(persona__company=company).count(),
            "wallet items": WalletItem.objects.filter(persona__company=company).count(),
            "sync runs": SyncRun.objects.filter(connection__company=company).count(),
            "connections": Connection.objects.filter(company=company).count(),
            "cova credentials": CovaCredential.objects.filter(connection__company=company).count(),
            "webhook deliveries": WebhookDelivery.objects.filter(endpoint__company=company).count(),
            "queue entries": QueueEntry.objects.filter(company=company).count(),
            "campaigns": Campaign.objects.filter(company=company).count(),
            "campaign recipients": CampaignRecipient.objects.filter(campaign__company=company).count(),
        },
    }


def _row(obj: Model) -> dict | None:
    """The object's stored fields; None once it is deleted."""
    return type(obj)._default_manager.filter(pk=obj.pk).values().first()


def _body(response) -> bytes:
    if getattr(response, "streaming", False):
        return b"".join(response.streaming_content)
    return response.content


def test_every_int_kwarg_has_a_foreign_object():
    missing = [f"{name} ({route}): {kwarg}" for name, route, ints, _ in PATTERNS
               for kwarg in ints if kind_of(name, kwarg) is None]
    assert not missing, ("these URLs take an id that this test has no other-company object for; "
                         f"add one to `foreign` and KINDS: {missing}")


def test_the_urls_of_today_are_all_found():
    names = {name for name, *_ in PATTERNS}
    assert {"persona_detail", "queue_entry_action", "members:reward_confirm", "cova_credential_edit",
            "webhook_delivery_resend", "api_audience_refresh", "imported_file_purge", "campaign_detail",
            "campaign_send", "campaign_email_preview", "campaign_outcomes_csv"} <= names
    assert not any(route.startswith("admin/") for _, route, *_ in PATTERNS)


# GET and POST everywhere; the API's PATCH too (its audiences are edited with it).
CASES = [(*pattern, method) for pattern in PATTERNS
         for method in ("get", "post", *(("patch",) if pattern[1].startswith("api/") else ()))]


@pytest.mark.parametrize(("url_name", "route", "ints", "others", "method"), CASES,
                         ids=[f"{name}-{method}" for name, *_, method in CASES])
def test_another_companys_ids_are_not_found(client, admin_user, company, other_company, foreign,
                                            url_name, route, ints, others, method):
    missing = [kwarg for kwarg in ints if kind_of(url_name, kwarg) is None]
    assert not missing, f"{url_name} ({route}): no other-company object for {missing}"
    kwargs = {kwarg: foreign[kind_of(url_name, kwarg)].pk for kwarg in ints}
    for kwarg in others:
        assert (url_name, kwarg) in STRINGS, f"{url_name} ({route}): no value for the {kwarg!r} kwarg"
        kwargs[kwarg] = STRINGS[url_name, kwarg] or company.slug
    url = reverse(url_name, kwargs=kwargs)
    before = the_state(other_company, foreign)

    customer_page = route.startswith("c/")
    api = route.startswith("api/")
    if api:
        _, raw = api_key_create(company=company, name="Register 1", level=2)
        client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_ACCOUNT_UID=str(company.account_uid))
        extra = {"HTTP_IDEMPOTENCY_KEY": f"tenancy-{url_name}"} if method == "post" else {}
        response = getattr(client, method)(url, None if method == "get" else {"name": "Hijacked"},
                                           content_type="application/json", **extra)
    else:
        client.force_login(admin_user)
        if customer_page:
            _sign_in_customer(client, company)
        response = getattr(client, method)(url, _harmless_post(foreign) if method == "post" else None)

    allowed = {404, 405} | ({302} if customer_page else set())
    assert response.status_code in allowed, (f"{method.upper()} {url} answered {response.status_code} "
                                             "with another company's ids")
    if response.status_code == 302:
        assert response["Location"].startswith(reverse("members:sign_in", args=[company.slug])), url
    request = f"{method.upper()} {url}"
    assert MARKER.encode() not in _body(response), f"{request} shows another company's data"
    assert the_state(other_company, foreign) == before, f"{request} changed another company's data"


def _harmless_post(foreign) -> dict:
    """Fields the POST forms read, with values that would act if the view took the id."""
    return {"name": "Hijacked", "description": "Hijacked", "delta": 500, "reason": "x", "token": "t",
            "state": "CO", "confirm": "erase", "duplicate_id": foreign["duplicate_persona"].pk,
            "is_active": "0", "frozen": "1", "keep_data": "remove", "purchase_token": "tenancy-token",
            "offer": foreign["offer"].pk, "message": "Hijacked", "url": "https://secret.example.com/x",
            "events": "points.changed", "level": "2", "threshold": "1", "earn_multiplier": "1"}


def _sign_in_customer(client, company):
    """A member of our company with points, signed in on its loyalty page."""
    settings = page_settings(company)
    settings.enabled = True
    settings.save(update_fields=["enabled"])
    persona = PersonaFactory(company=company, is_member=True)
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    points_adjust(company=company, persona_id=persona.pk, delta=1000, staff_user=staff, reason="Welcome")
    response = HttpResponse()
    customer_session_start(company=company, persona=persona, request=RequestFactory().get("/"),
                           response=response)
    client.cookies[CUSTOMER_COOKIE] = response.cookies[CUSTOMER_COOKIE].value


@pytest.mark.parametrize(("method", "url_name"), [("get", "queue_profile"), ("post", "queue_entry_action")])
def test_our_store_with_their_queue_entry_is_not_found(admin_client, company, other_company, foreign,
                                                       method, url_name):
    ours = RetailStoreFactory(company=company, name="Denver", opt_in_queue_enabled=True)
    kwargs = {"store_id": ours.pk, "entry_id": foreign["queue_entry"].pk}
    if url_name == "queue_entry_action":
        kwargs["action"] = "remove"
    before = the_state(other_company, foreign)

    response = getattr(admin_client, method)(reverse(url_name, kwargs=kwargs))

    assert response.status_code == 404
    assert MARKER.encode() not in response.content
    assert the_state(other_company, foreign) == before


@pytest.mark.parametrize(("url_name", "field", "kind"), [
    ("persona_merge", "duplicate_id", "duplicate_persona"),
    ("persona_wallet_grant", "offer", "offer"),
])
def test_their_id_in_the_form_of_our_persona_is_refused(admin_client, company, other_company, foreign,
                                                        url_name, field, kind):
    ours = PersonaFactory(company=company, first_name="Mine")
    before = the_state(other_company, foreign)

    response = admin_client.post(reverse(url_name, args=[ours.pk]), {field: foreign[kind].pk})

    assert response.status_code in (302, 400, 404)
    assert MARKER.encode() not in response.content
    assert the_state(other_company, foreign) == before
    assert not WalletItem.objects.filter(persona=ours).exists()
    ours.refresh_from_db()
    assert ours.first_name == "Mine"
