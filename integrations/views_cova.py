"""Settings › Integrations: the catalog of every integration, the feature grid, and the
Cova pages (connect, credentials, test, sync now, fee, locations). Also the "Store mappings"
section of a retail store's edit page. Thin, as `views.py`: reads through the selectors
(scoped by the request's company, so another company's id is a 404), writes through
`services.cova`."""

from __future__ import annotations

from dataclasses import dataclass
from functools import wraps

from django.contrib import messages
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.cache import patch_vary_headers
from django.views.decorators.http import require_GET, require_POST
from django_htmx.http import HttpResponseClientRedirect

from stores.audit import audit_context
from stores.errors import DomainError
from stores.tenancy import company_view

from . import selectors
from . import views as report_views
from .connectors import FEATURES, Location, connector_class_of, connector_classes, listing_of
from .forms_cova import CovaConnectForm, CovaCredentialForm, StoreMappingsForm
from .models import StoreMapping, SyncRun
from .providers.cova import REQUIRED_PERMISSIONS
from .selectors import unmapped_locations
from .services.connections import test_is_going
from .services.cova import (
    COVA_FEE_PER_LOCATION,
    LOCATIONS_REFRESH_STALE,
    cova_connection_create,
    cova_credential_delete,
    cova_credential_save,
    cova_credential_test_start,
    cova_locations_refresh_start,
    cova_monthly_fee,
    store_mapping_save,
)
from .services.sync import sync_run_create
from .tasks import connection_sync

# -- the catalog ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Integration:
    key: str  # a connector's key, or "pos_api"
    name: str
    kind: str
    summary: str
    initials: str
    color: str
    features: frozenset
    keywords: str = ""
    fee: str = ""
    fee_short: str = ""
    connect_url_name: str = ""
    page_url_name: str = ""

    def matches(self, query: str) -> bool:
        text = f"{self.name} {self.kind} {self.summary} {self.keywords}".lower()
        return all(word in text for word in query.lower().split())


# Not a connector: the POS calls our API with a key.
POS_API = Integration(
    "pos_api", "POS API", "Point of sale",
    "Any POS that calls our API: look customers up, redeem rewards and send each sale as it "
    "happens, with an API key.",
    "API", "#5925dc", frozenset({"customers", "sales", "payment_methods", "realtime_loyalty"}),
    keywords="api key rest register lookup send_transaction")


def integrations() -> list[Integration]:
    """Every registered connector as the catalog shows it, then the POS API."""
    found = []
    for key, cls in connector_classes().items():
        listing = listing_of(cls)
        found.append(Integration(key, listing.name, listing.kind, listing.summary, listing.initials,
                                 listing.color, listing.features, listing.keywords, listing.fee,
                                 listing.fee_short, cls.connect_url_name, cls.page_url_name))
    return [*found, POS_API]


def _card(integration: Integration, status) -> dict:
    """What a catalog card shows and where its button goes."""
    connections = status.connections
    if integration.key == "pos_api":
        connect_url = reverse("api_key_list")
        manage_url = connect_url if status.state != selectors.Status.NOT_CONNECTED else ""
    elif integration.connect_url_name == "connection_create":  # the report pages, for any report connector
        connect_url = f"{reverse('connection_create')}?provider={integration.key}"
        if len(connections) == 1:
            manage_url = reverse(integration.page_url_name, args=[connections[0].pk])
        else:
            manage_url = reverse("connection_list") if connections else ""
    else:  # a connector with pages of its own (Cova)
        connect_url = reverse(integration.connect_url_name)
        manage_url = reverse(integration.page_url_name, args=[connections[0].pk]) if connections else ""
    links = [(c.name, reverse(integration.page_url_name, args=[c.pk]), c.state) for c in connections]
    return {"integration": integration, "status": status, "connect_url": connect_url,
            "manage_url": manage_url, "links": links,
            "add_another": bool(manage_url) and integration.key != "pos_api"}


@require_GET
@company_view("integrations.manage")
def integration_catalog(request):
    """Every integration as a card with its status; `?q=` narrows them."""
    query = request.GET.get("q", "").strip()[:100]
    statuses = selectors.integration_statuses(company=request.company)
    cards = [_card(i, statuses[i.key]) for i in integrations() if not query or i.matches(query)]
    template = "integrations/catalog.html"
    if request.htmx and request.htmx.target == "catalog-cards":
        template += "#cards"
    response = render(request, template, {"cards": cards, "query": query})
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@require_GET
@company_view("integrations.manage")
def integration_grid(request):
    """What each integration supports, side by side."""
    statuses = selectors.integration_statuses(company=request.company)
    rows = [{"integration": i, "status": statuses[i.key],
             "cells": [key in i.features for key, _, _ in FEATURES]} for i in integrations()]
    return render(request, "integrations/grid.html", {"rows": rows, "features": FEATURES})


# -- report connections: a Cova connection has its own page --------------------------------

@company_view("integrations.manage")
def connection_create(request):
    """"Add connection" with a connector that has pages of its own (Cova) goes to its connect page."""
    cls = connector_classes().get(request.POST.get("provider") or request.GET.get("provider") or "")
    if cls is not None and cls.connect_url_name != "connection_create":
        return redirect(cls.connect_url_name)
    return report_views.connection_create_view(request)


def report_connection_only(view):
    """For the report connection pages: the id of a connection whose connector has pages of
    its own (Cova) goes to its page (the report pages would look for files and a report
    provider it does not have)."""

    @company_view("integrations.manage")
    @wraps(view)
    def wrapped(request, connection_id, *args, **kwargs):
        provider = (selectors.connection_list(company=request.company).filter(pk=connection_id)
                    .values_list("provider", flat=True).first())
        cls = connector_classes().get(provider or "")
        if provider is not None and cls is None:
            # Its connector was taken out of this installation: say so, and let it be deleted
            # (its customers and sales stay), rather than fail on a connector that is gone.
            connection = selectors.connection_get(company=request.company, connection_id=connection_id)
            return render(request, "integrations/connection_uninstalled.html", {"connection": connection},
                          status=200 if request.method == "GET" else 409)
        if cls is not None and cls.page_url_name != "connection_detail":
            return redirect(cls.page_url_name, connection_id=connection_id)
        return view(request, connection_id, *args, **kwargs)

    return wrapped


# -- Cova: connect, the connection page, credentials ---------------------------------------

def _int(value: str) -> int:
    if not value.isdigit():
        raise Http404
    return int(value)


def _redirect(request, url):
    """After a successful POST: a normal redirect, or an HX-Redirect for htmx."""
    return HttpResponseClientRedirect(url) if request.htmx else redirect(url)


def _add_error(form, exc: DomainError) -> None:
    field = exc.extra.get("field")
    form.add_error(field if field in form.fields else None, exc.message)


def _cova_url(connection) -> str:
    return reverse("cova_connection", args=[connection.pk])


def _credential_form_page(request, form, *, connection=None, credential=None):
    """htmx swaps only 2xx responses: an htmx re-render with errors is a 200 of the form
    alone, a plain POST with errors a 400 page."""
    template = "integrations/cova_credential_form.html"
    status = 400 if form.errors else 200
    if request.htmx and request.method == "POST":
        template += "#credential-form"
        status = 200
    return render(request, template, {
        "form": form, "connection": connection, "credential": credential,
        "fee_per_location": COVA_FEE_PER_LOCATION, "required_permissions": REQUIRED_PERMISSIONS,
    }, status=status)


@company_view("integrations.manage")
def cova_connect(request):
    """Connect Cova: name the connection and enter the first credential Cova sent."""
    form = CovaConnectForm(request.POST if request.method == "POST" else None, company=request.company)
    if request.method == "POST" and form.is_valid():
        try:
            connection = cova_connection_create(company=request.company, name=form.cleaned_data["name"],
                                                audit=audit_context(request))
        except DomainError as exc:
            _add_error(form, exc)
            return _credential_form_page(request, form)
        try:
            cova_credential_save(connection=connection, audit=audit_context(request), **form.service_kwargs())
            cova_locations_refresh_start(connection=connection)
        except DomainError as exc:
            # The connection is there now: the rest of the form goes to its "Add credential".
            retry = CovaCredentialForm(request.POST, company=request.company)
            retry.is_valid()
            _add_error(retry, exc)
            retry.add_error(None, f"Connection “{connection.name}” is added, but not this credential yet.")
            return _credential_form_page(request, retry, connection=connection)
        messages.success(request, f"Cova is connected as “{connection.name}”. Test the credential, then map "
                                  "your stores to Cova locations.")
        return _redirect(request, _cova_url(connection))
    return _credential_form_page(request, form)


def _fee(connection) -> dict:
    count, total = cova_monthly_fee(connection=connection)
    return {"locations": count, "total": total, "per_location": COVA_FEE_PER_LOCATION}


def _locations(connection, credentials) -> dict:
    """The connection's Cova locations as last fetched, each with its store and waiting
    sales; whether a refresh is going, and why the last one failed. Read from our database
    only: the page answers at once even when Cova is down."""
    started = connection.locations_refresh_started_at
    state = {"connection": connection, "credentials": credentials,
             # A refresh whose worker died stops being shown as going (and can be started again).
             "refreshing": started is not None and timezone.now() - started < LOCATIONS_REFRESH_STALE,
             "locations_error": connection.locations_error, "locations": []}
    if not credentials:
        return state
    found = selectors.cova_locations(connection=connection)
    mapped = {m.external_location_id: m for m in connection.store_mappings.select_related("store")}
    waiting = {u["location_id"]: u["sales"]
               for u in unmapped_locations(company=connection.company, connection=connection)}
    state["locations"] = [{"location": loc, "mapping": mapped.get(loc.id), "waiting": waiting.get(loc.id, 0)}
                          for loc in found]
    return state


def _connection_context(connection) -> dict:
    credentials = list(selectors.cova_credentials(connection=connection))
    for credential in credentials:
        state = _test_context(credential)
        credential.test, credential.testing = state["test"], state["testing"]
    runs = list(selectors.cova_runs(connection=connection))
    return {
        "connection": connection, "credentials": credentials, "fee": _fee(connection),
        "runs": runs, "any_active": any(r.is_active for r in runs),
    } | _locations(connection, credentials)


@require_GET
@company_view("integrations.manage")
def cova_connection(request, connection_id):
    """Credentials with their options, the fee, the locations and the runs; the runs table
    polls itself while a run is queued or running."""
    connection = selectors.cova_connection_get(company=request.company, connection_id=connection_id)
    if request.htmx and request.htmx.target == "cova-locations":
        credentials = list(selectors.cova_credentials(connection=connection))
        response = render(request, "integrations/cova_connection.html#locations",
                          _locations(connection, credentials))
    elif request.htmx and (request.htmx.target or "").startswith("test-result-"):
        credential = selectors.cova_credential_get(company=request.company,
                                                   credential_id=_int(request.htmx.target[12:]))
        if credential.connection_id != connection.pk:
            raise Http404
        response = render(request, "integrations/cova_connection.html#test-result", _test_context(credential))
    elif request.htmx and request.htmx.target == "cova-runs":
        runs = list(selectors.cova_runs(connection=connection))
        response = render(request, "integrations/cova_connection.html#runs", {
            "connection": connection, "runs": runs, "any_active": any(r.is_active for r in runs)})
    else:
        response = render(request, "integrations/cova_connection.html", _connection_context(connection))
    patch_vary_headers(response, ["HX-Request", "HX-Target"])
    return response


@company_view("integrations.manage")
def cova_credential_create(request, connection_id):
    """Add credential."""
    connection = selectors.cova_connection_get(company=request.company, connection_id=connection_id)
    form = CovaCredentialForm(request.POST if request.method == "POST" else None, company=request.company)
    if request.method == "POST" and form.is_valid():
        try:
            credential = cova_credential_save(connection=connection, audit=audit_context(request),
                                              **form.service_kwargs())
            cova_locations_refresh_start(connection=connection)
        except DomainError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Credential {credential.username} added to {connection.name}.")
            return _redirect(request, _cova_url(connection))
    return _credential_form_page(request, form, connection=connection)


@company_view("integrations.manage")
def cova_credential_edit(request, credential_id):
    """Change a credential; blank secrets keep the stored ones."""
    credential = selectors.cova_credential_get(company=request.company, credential_id=credential_id)
    connection = credential.connection
    form = CovaCredentialForm(request.POST if request.method == "POST" else None, company=request.company,
                              credential=credential)
    if request.method == "POST" and form.is_valid():
        try:
            cova_credential_save(connection=connection, credential=credential, audit=audit_context(request),
                                 **form.service_kwargs())
            cova_locations_refresh_start(connection=connection)
        except DomainError as exc:
            _add_error(form, exc)
        else:
            messages.success(request, f"Connection “{connection.name}” updated.")
            return _redirect(request, _cova_url(connection))
    return _credential_form_page(request, form, connection=connection, credential=credential)


@require_POST
@company_view("integrations.manage")
def cova_credential_delete_view(request, credential_id):
    credential = selectors.cova_credential_get(company=request.company, credential_id=credential_id)
    connection, username = credential.connection, credential.username
    cova_credential_delete(credential=credential, audit=audit_context(request))
    messages.success(request, f"Credential {username} removed: it no longer syncs. Customers and sales it "
                              "brought in stay.")
    return _redirect(request, _cova_url(connection))


@require_POST
@company_view("integrations.manage")
def cova_credential_test_view(request, credential_id):
    """Test connection: Cova is asked in the background (the button answers at once even
    when Cova is down); the credential's test result follows it and then says exactly
    which permission is missing, if any."""
    credential = selectors.cova_credential_get(company=request.company, credential_id=credential_id)
    credential = cova_credential_test_start(credential=credential)
    if request.htmx:
        return render(request, "integrations/cova_connection.html#test-result", _test_context(credential))
    return redirect(_cova_url(credential.connection))


def _test_context(credential) -> dict:
    """The credential's test result as the page shows it; while the test is going the
    result polls, and its last answer swaps in the credential's badge and error."""
    testing = test_is_going(credential)
    test = None if testing or credential.test_ok is None else \
        {"ok": credential.test_ok, "message": credential.test_message}
    return {"credential": credential, "test": test, "testing": testing, "oob": True}


@require_POST
@company_view("integrations.manage")
def cova_credential_sync(request, credential_id):
    """Sync now: queue a run of this credential and follow it on the run's page."""
    credential = selectors.cova_credential_get(company=request.company, credential_id=credential_id)
    try:
        run = sync_run_create(connection=credential.connection, credential=credential,
                              trigger=SyncRun.Trigger.MANUAL, audit=audit_context(request))
    except DomainError as exc:  # frozen, or a run is already queued or running
        if request.htmx:
            return render(request, "integrations/cova_connection.html#sync-error", {
                "credential": credential, "sync_error": exc.message, "busy_run_id": exc.extra.get("run_id")})
        messages.error(request, exc.message)
        return redirect(_cova_url(credential.connection))
    transaction.on_commit(lambda: connection_sync.delay(run.pk))
    return _redirect(request, reverse("sync_run_detail", args=[run.pk]))


@require_POST
@company_view("integrations.manage")
def cova_locations_refresh_view(request, connection_id):
    """Refresh from Cova: the locations are fetched in the background; the locations card
    follows the refresh."""
    connection = selectors.cova_connection_get(company=request.company, connection_id=connection_id)
    connection = cova_locations_refresh_start(connection=connection, audit=audit_context(request))
    if request.htmx:
        credentials = list(selectors.cova_credentials(connection=connection))
        return render(request, "integrations/cova_connection.html#locations",
                      _locations(connection, credentials))
    return redirect(_cova_url(connection))


# -- the "Store mappings" section of a retail store's edit page ----------------------------

def store_mappings_form(*, company, store, data=None) -> StoreMappingsForm:
    """One select per connection whose connector keeps its locations (Cova: as last
    fetched and stored, so this page never waits on the source), and the store's mappings
    of the connections whose location values are typed on their own page (the reports)."""
    connections = selectors.connection_list(company=company).order_by("name").prefetch_related(
        Prefetch("store_mappings", queryset=StoreMapping.objects.select_related("store")))
    sections = []
    for connection in connections:
        connector = connector_class_of(connection)
        locations = connector.locations_stored(connection)
        if locations is None:
            continue
        mappings = list(connection.store_mappings.all())
        current = next((m for m in mappings if m.store_id == store.pk), None)
        section = {"connection": connection, "field_name": f"{connection.provider}-{connection.pk}",
                   "listing": listing_of(connector),
                   "current": current.external_location_id if current else "",
                   "mapped_elsewhere": {m.external_location_id: m.store.name for m in mappings
                                        if m.store_id != store.pk},
                   "setup": connector.locations_setup(connection),
                   "locations": locations, "error": "",
                   "fetched_at": connection.locations_fetched_at,
                   "page_url": reverse(connector.page_url_name, args=[connection.pk])}
        if section["setup"] is None and not section["locations"]:
            # Nothing to choose from: say why (the last refresh failed, or none has run yet).
            section["error"] = connector.locations_missing(connection)
        if (current and not section["error"]
                and all(loc.id != current.external_location_id for loc in section["locations"])):
            # Mapped to a location the source no longer lists: keep it choosable.
            section["locations"].append(Location(current.external_location_id,
                                                 current.location_name or "Unknown location"))
        section["current_name"] = current.location_name if current else ""
        sections.append(section)
    form = StoreMappingsForm(data, sections=sections)
    picked = {section["connection"].pk for section in sections}
    form.report_mappings = [m for m in selectors.store_mappings_of_store(store=store)
                            if m.connection_id not in picked]
    return form


def store_mappings_save(*, form: StoreMappingsForm, store, audit=None) -> bool:
    """Save the changed selects; a refusal goes on its select. True when all were saved."""
    saved = True
    for section, location_id in form.changes():
        names = {loc.id: loc.name for loc in section["locations"]}
        try:
            store_mapping_save(store=store, connection=section["connection"],
                               external_location_id=location_id, location_name=names.get(location_id, ""),
                               audit=audit)
        except DomainError as exc:
            form.add_error(section["field_name"], exc.message)
            saved = False
    return saved


class StoreMappingsSection:
    """The store edit page's Store mappings, registered with stores.extensions."""

    form = staticmethod(store_mappings_form)
    save = staticmethod(store_mappings_save)
