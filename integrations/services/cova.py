"""Cova: connections with their credentials, store mappings to Cova locations, the sync
of customers and sales, and signups pushed back to Cova.

A sync reads everything new from Cova first (customers changed since the credential's
watermark, then each location's completed sales since its own), staging it in session
temp tables of loyalty's staging shape; then one short database transaction merges it
through loyalty's one merge (`loyalty.services.ingest.sales_merge_staged`, as the report
imports do), and moves the watermarks. A failure anywhere leaves nothing half-written
and every watermark where it was.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from decimal import Decimal

from django.core.cache import cache
from django.db import IntegrityError
from django.db import connection as db_connection
from django.db import transaction as db
from django.db.models import F
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from loyalty.models import Persona, PersonaIdentity, Source
from loyalty.phone import phone_normalize_or_blank
from loyalty.services import ingest, persona_identity_attach, source_create
from loyalty.services.privacy import persona_erased
from stores.audit import AuditContext, audit_changes, audit_record, audit_snapshot
from stores.errors import DomainError
from stores.models import RetailStore
from stores.outbound import outbound_url_check

from ..models import Connection, CovaCredential, ImportedFile, RowError, SignupPush, StoreMapping, SyncRun
from ..models import CovaLocation as StoredLocation
from ..providers.base import ProviderError
from ..providers.cova import DEFAULT_ACCOUNTS_URL, DEFAULT_API_URL, CovaClient, CovaLocation
from .connections import nightly_task_save, test_is_going
from .sync import progress_key

log = logging.getLogger(__name__)

COVA_FEE_PER_LOCATION = Decimal("15")
SYNC_TASK = "integrations.tasks.cova_sync_scheduled"
MARKET_RE = re.compile(r"^[A-Z]{2}$")
LOCATION_ID_RE = re.compile(r"^\d{1,20}$")
PRICING_GROUP_TRAIT = "CovaPricingGroup"


# --- connection and credentials ------------------------------------------------------------

def cova_connection_create(*, company, name: str = "Cova", audit: AuditContext | None = None) -> Connection:
    name = (name or "").strip() or "Cova"
    try:
        with db.atomic():
            source = source_create(company=company, kind=Source.Kind.COVA, name=name)
            connection = Connection.objects.create(company=company, name=name,
                                                   provider=Connection.Provider.COVA, source=source)
            audit_record(audit=audit, company=company, kind="connection.created", obj=connection,
                         changes={"name": [None, name], "provider": [None, Connection.Provider.COVA]})
            return connection
    except IntegrityError as exc:
        raise DomainError(f"There is already a connection or source named '{name}'.",
                          extra={"field": "name"}) from exc


def _codes(values, *, pattern: re.Pattern, field: str, what: str) -> list[str]:
    if isinstance(values, str):
        values = re.split(r"[\s,;]+", values)
    cleaned = []
    for value in values or ():
        value = str(value).strip().upper()
        if not value:
            continue
        if not pattern.match(value):
            raise DomainError(f"'{value}' is not {what}.", extra={"field": field})
        if value not in cleaned:
            cleaned.append(value)
    return cleaned


CREDENTIAL_AUDIT_FIELDS = ("client_id", "username", "cova_company_id", "accounts_url", "api_url", "markets",
                           "is_frozen", "location_ids", "pricing_group_id", "skip_payment_methods",
                           "sync_time")
CREDENTIAL_SECRETS = ("client_secret", "password")


def _credential_state(credential: CovaCredential, secrets: dict) -> dict:
    return audit_snapshot(credential, CREDENTIAL_AUDIT_FIELDS) | {
        name: secrets.get(name) for name in CREDENTIAL_SECRETS}


def cova_credential_save(*, connection: Connection, credential: CovaCredential | None = None,
                         client_id: str, client_secret: str, username: str, password: str,
                         cova_company_id: str, accounts_url: str = "", api_url: str = "",
                         markets=(), is_frozen: bool = False, location_ids=(), pricing_group_id: str = "",
                         skip_payment_methods: bool = False, sync_time=None,
                         audit: AuditContext | None = None) -> CovaCredential:
    """Add a credential to the connection, or change one. Blank secrets on an existing
    credential keep the stored ones."""
    if connection.provider != Connection.Provider.COVA:
        raise DomainError("Only a Cova connection holds Cova credentials.")
    values = {"client_id": (client_id or "").strip(), "username": (username or "").strip(),
              "cova_company_id": (cova_company_id or "").strip()}
    for field, label in (("client_id", "client id"), ("username", "username"),
                         ("cova_company_id", "Cova company id")):
        if not values[field]:
            raise DomainError(f"Enter the {label} Cova sent you.", extra={"field": field})
    if not values["cova_company_id"].isdigit():
        raise DomainError("The Cova company id is a number, e.g. 123456.", extra={"field": "cova_company_id"})
    client_secret, password = (client_secret or "").strip(), password or ""
    if credential is None and (not client_secret or not password):
        field = "client_secret" if not client_secret else "password"
        raise DomainError(f"Enter the {field.replace('_', ' ')} Cova sent you.", extra={"field": field})
    accounts_url = (accounts_url or "").strip().rstrip("/")
    api_url = (api_url or "").strip().rstrip("/")
    for field, url, what in (("accounts_url", accounts_url, "Cova sign-in server"),
                             ("api_url", api_url, "Cova API server")):
        if url:
            outbound_url_check(url, what=what, field=field)
    credential = credential or CovaCredential(connection=connection)
    if credential.connection_id != connection.pk:
        raise DomainError("That credential belongs to another connection.")
    created = credential.pk is None
    sign_in = (credential.client_id, credential.username, credential.cova_company_id,
               credential.accounts_url, credential.api_url)
    # What the trail compares: a secret that cannot be decrypted any more counts as unknown.
    try:
        old_secrets = credential.secrets_plain() if credential.secrets_encrypted else {}
    except DomainError:
        old_secrets = {}
    before = None if created else _credential_state(credential, old_secrets)
    for field, value in values.items():
        setattr(credential, field, value)
    new_secrets = old_secrets
    if client_secret or password:
        old = credential.secrets_plain() if credential.secrets_encrypted else {}
        new_secrets = {"client_secret": client_secret or old.get("client_secret", ""),
                       "password": password or old.get("password", "")}
        credential.set_secrets(**new_secrets)
    credential.accounts_url = accounts_url
    credential.api_url = api_url
    credential.markets = _codes(markets, pattern=MARKET_RE, field="markets",
                                what="a two-letter state or province code")
    credential.location_ids = _codes(location_ids, pattern=LOCATION_ID_RE, field="location_ids",
                                     what="a Cova location id (digits)")
    credential.is_frozen = bool(is_frozen)
    credential.pricing_group_id = (pricing_group_id or "").strip()
    credential.skip_payment_methods = bool(skip_payment_methods)
    if sync_time is not None:
        credential.sync_time = sync_time
    if not created and (client_secret or password or sign_in != (
            credential.client_id, credential.username, credential.cova_company_id,
            credential.accounts_url, credential.api_url)):
        # New sign-in details: what the last test or sync showed no longer holds.
        credential.verified_at = credential.failing_since = None
        credential.last_error = ""
    try:
        with db.atomic():
            credential.save()
            cova_schedule_save(credential=credential)
            audit_record(audit=audit, company=connection.company_id,
                         kind="cova_credential.created" if created else "cova_credential.updated",
                         obj=credential,
                         extra={"connection": connection.name, "connection_id": connection.pk},
                         changes=audit_changes(before, _credential_state(credential, new_secrets),
                                               secret_fields=CREDENTIAL_SECRETS),
                         if_changed=not created)
    except IntegrityError as exc:
        raise DomainError(f"This connection already has the credential {values['username']} for Cova "
                          f"company {values['cova_company_id']}.", extra={"field": "username"}) from exc
    return credential


def cova_credential_delete(*, credential: CovaCredential, audit: AuditContext | None = None) -> None:
    with db.atomic():
        task = credential.periodic_task
        connection_id = credential.connection_id
        audit_record(audit=audit, company=credential.connection.company_id, kind="cova_credential.deleted",
                     obj=credential,
                     extra={"connection": credential.connection.name, "connection_id": connection_id},
                     changes=audit_changes(audit_snapshot(credential, CREDENTIAL_AUDIT_FIELDS), None))
        credential.delete()
        if task is not None:
            task.delete()


def cova_schedule_save(*, credential: CovaCredential) -> PeriodicTask:
    """The credential's nightly sync, at its time in the company's time zone; off while frozen."""
    company = credential.connection.company
    return nightly_task_save(
        credential, name=f"cova-credential-{credential.pk}-nightly-sync", task=SYNC_TASK,
        sync_time=credential.sync_time, company=company,
        enabled=not (credential.is_frozen or credential.connection.is_frozen),
        description=f"Nightly Cova sync of {credential} ({company.name})")


def credential_failing(credential_id: int, *, error: str, at=None) -> None:
    """The Cova page shows it beside the credential, failing since its first failure."""
    at = at or timezone.now()
    CovaCredential.objects.filter(pk=credential_id, failing_since__isnull=True).update(failing_since=at)
    CovaCredential.objects.filter(pk=credential_id).update(last_error=error)


def credential_verified(credential_id: int, *, at=None) -> None:
    """The credential reached Cova: connected, with no error, as of `at`."""
    CovaCredential.objects.filter(pk=credential_id).update(
        verified_at=at or timezone.now(), failing_since=None, last_error="")


def cova_client_for(credential: CovaCredential) -> CovaClient:
    secrets = credential.secrets_plain()
    return CovaClient(client_id=credential.client_id, client_secret=secrets.get("client_secret", ""),
                      username=credential.username, password=secrets.get("password", ""),
                      company_id=credential.cova_company_id,
                      accounts_url=credential.accounts_url or DEFAULT_ACCOUNTS_URL,
                      api_url=credential.api_url or DEFAULT_API_URL)


def cova_credential_test(*, credential: CovaCredential) -> tuple[bool, str]:
    """Sign in, reach the company and check the permissions the integration needs. The
    outcome is the credential's status from now on: connected, or failing with why."""
    try:
        client = cova_client_for(credential)
        message = client.test()
    except (ProviderError, DomainError) as exc:  # DomainError: the secrets cannot be decrypted any more
        credential_failing(credential.pk, error=exc.message)
        credential.refresh_from_db()
        return False, exc.message
    credential_verified(credential.pk)
    credential.refresh_from_db()
    cova_locations_store(credential=credential, locations=client.tested_locations)
    return True, message


def cova_credential_test_start(*, credential: CovaCredential) -> CovaCredential:
    """"Test connection": mark the test as going and queue it; the page follows it. Cova
    is never called inside the request, so the button answers at once even when Cova is
    down. A test already going is not queued twice."""
    from ..tasks import cova_credential_test as test_task

    with db.atomic():
        credential = CovaCredential.objects.select_for_update().get(pk=credential.pk)
        if test_is_going(credential):
            return credential
        credential.test_started_at, credential.test_ok, credential.test_message = timezone.now(), None, ""
        credential.save(update_fields=["test_started_at", "test_ok", "test_message"])
        db.on_commit(lambda: test_task.delay(credential.pk))
    return credential


def cova_credential_test_run(*, credential_id: int) -> CovaCredential:
    """The test's work (in the background): the outcome is kept for the page, and the
    credential's status follows it as before."""
    credential = CovaCredential.objects.select_related("connection").get(pk=credential_id)
    ok, message = cova_credential_test(credential=credential)
    CovaCredential.objects.filter(pk=credential_id).update(test_started_at=None, test_ok=ok,
                                                           test_message=message)
    credential.refresh_from_db()
    return credential


# --- locations and store mappings ------------------------------------------------------------

def cova_locations_store(*, credential: CovaCredential, locations: list[CovaLocation]) -> None:
    """Keep what Cova just listed for `credential` as its locations: new ones are added,
    renamed ones updated, ones Cova no longer lists removed (their store mappings stay)."""
    now = timezone.now()
    seen = {}
    for location in locations:
        seen.setdefault(location.id, location)
    with db.atomic():
        StoredLocation.objects.filter(credential=credential).exclude(location_id__in=list(seen)).delete()
        for location in seen.values():
            StoredLocation.objects.update_or_create(
                credential=credential, location_id=location.id,
                defaults={"connection_id": credential.connection_id, "name": location.name[:200],
                          "state": (location.state or "")[:40], "timezone": (location.timezone or "")[:64],
                          "fetched_at": now})
        Connection.objects.filter(pk=credential.connection_id).update(locations_fetched_at=now,
                                                                       locations_error="")


LOCATIONS_REFRESH_STALE = dt.timedelta(minutes=10)


def cova_locations_refresh_start(*, connection: Connection, audit: AuditContext | None = None) -> Connection:
    """"Refresh from Cova": mark the refresh as going and queue it; the page follows it.
    A refresh already going is not queued twice (unless it has been stuck for minutes)."""
    from ..tasks import cova_locations_refresh as refresh_task

    with db.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection.pk)
        started = connection.locations_refresh_started_at
        if started is not None and timezone.now() - started < LOCATIONS_REFRESH_STALE:
            return connection
        connection.locations_refresh_started_at = timezone.now()
        connection.save(update_fields=["locations_refresh_started_at"])
        audit_record(audit=audit, company=connection.company_id,
                     kind="connection.locations_refresh_requested", obj=connection,
                     extra={"connection": connection.name, "connection_id": connection.pk})
        db.on_commit(lambda: refresh_task.delay(connection.pk))
    return connection


def cova_locations_refresh(*, connection_id: int) -> Connection:
    """The refresh's work (in the background): ask Cova for every credential's locations
    and store them. When Cova cannot be reached, the stored ones stay and the reason is
    kept for the page."""
    connection = Connection.objects.get(pk=connection_id, provider=Connection.Provider.COVA)
    error = ""
    for credential in connection.cova_credentials.all():
        try:
            locations = cova_client_for(credential).locations()
        except (ProviderError, DomainError) as exc:
            error = error or exc.message
            continue
        cova_locations_store(credential=credential, locations=locations)
    Connection.objects.filter(pk=connection_id).update(locations_refresh_started_at=None,
                                                       locations_error=error)
    connection.refresh_from_db()
    return connection


def cova_monthly_fee(*, connection: Connection) -> tuple[int, Decimal]:
    """Mapped locations and what they cost a month."""
    mapped = connection.store_mappings.count()
    return mapped, mapped * COVA_FEE_PER_LOCATION


def _location_text(mapping: StoreMapping | None) -> str | None:
    if mapping is None:
        return None
    return f"{mapping.location_name} ({mapping.external_location_id})" if mapping.location_name \
        else mapping.external_location_id


def _store_mapping_audit(audit, *, store, connection, before: str | None, after: str | None) -> None:
    audit_record(audit=audit, company=store.company_id, kind="store.mapping_changed", obj=store,
                 changes=audit_changes({"cova_location": before}, {"cova_location": after}),
                 extra={"connection": connection.name, "connection_id": connection.pk})


def store_mapping_save(*, store: RetailStore, connection: Connection, external_location_id: str,
                       location_name: str = "", audit: AuditContext | None = None) -> StoreMapping | None:
    """Map `store` to a location of the connection ("" unmaps the store). The sales that
    waited for this location are attached to the store, and their customers' favourite
    stores follow."""
    if store.company_id != connection.company_id:
        raise DomainError("That store belongs to another company.", extra={"field": "store"})
    location_id = (external_location_id or "").strip()
    with db.atomic():
        current = StoreMapping.objects.filter(connection=connection, store=store).first()
        before = _location_text(current)
        if not location_id:
            if current is not None:
                current.delete()
                _store_mapping_audit(audit, store=store, connection=connection, before=before, after=None)
            return None
        taken = (StoreMapping.objects.filter(connection=connection, external_location_id=location_id)
                 .exclude(store=store).select_related("store").first())
        if taken is not None:
            raise DomainError(f"Location {location_id} is already mapped to {taken.store.name}.",
                              extra={"field": "external_location_id"})
        if current is None:
            current = StoreMapping(connection=connection, store=store)
        current.external_location_id = location_id
        current.location_name = (location_name or "")[:200]
        current.save()
        ingest.transactions_attach_store(source_id=connection.source_id, location_id=location_id,
                                         store_id=store.pk)
        if _location_text(current) != before:
            _store_mapping_audit(audit, store=store, connection=connection, before=before,
                                 after=_location_text(current))
    return current


# --- sync -----------------------------------------------------------------------------------

def _progress(run: SyncRun, *, rows: int) -> None:
    cache.set(progress_key(run.pk), rows, 3600)


def cova_sync(run: SyncRun) -> None:
    """A Cova run's work, inside sync_run_execute: stage what changed, then merge it and
    move the watermarks in one transaction."""
    credential = run.credential
    connection = run.connection
    try:
        with db_connection.cursor() as cursor:
            ingest.api_staging_create(cursor)
            staged = _fetch(run, credential, cursor)
        with db.atomic(durable=True):
            Connection.objects.select_for_update().filter(pk=connection.pk).first()
            counts = _merge_staged(connection, staged)
            CovaCredential.objects.filter(pk=credential.pk).update(
                customers_since=staged["customers_since"], sales_since=staged["sales_since"],
                last_synced_at=timezone.now(), last_error="")
            _sales_rejected_record(run, counts["too_large"])
    finally:
        ingest.api_staging_drop()
    SyncRun.objects.filter(pk=run.pk).update(
        customers_synced=counts["customers"], sales_synced=counts["sales"],
        sales_unmapped=counts["unmapped"], rows_accepted=counts["lines"],
        rows_rejected=counts["rejected_lines"])


def _fetch(run: SyncRun, credential: CovaCredential, cursor) -> dict:
    """Read what changed in Cova into the staging tables; nothing touches our data yet."""
    connection = credential.connection
    company = connection.company
    country = company.country or "US"
    client = cova_client_for(credential)
    markets = set(credential.markets)

    # Customers changed since the watermark (overlapping by design: `ge`, merged idempotently).
    customers_since = credential.customers_since
    customers = ingest.StagingCopy(cursor, "staged_customers", ingest.CUSTOMER_COLUMNS)
    SyncRun.objects.filter(pk=run.pk).update(current_file="Customers")
    for page in client.customers_changed(customers_since):
        for c in page:
            if customers_since is None or c.modified_at > customers_since:
                customers_since = c.modified_at
            customers.add((customers.rows + 1, c.id, c.first_name, c.last_name, c.email.lower(),
                           phone_normalize_or_blank(c.phone, country=country),
                           c.birth_date.isoformat() if c.birth_date else None, c.state.upper(),
                           json.dumps({PRICING_GROUP_TRAIT: c.pricing_group_id or None}),
                           c.created_at.isoformat(),
                           c.survivor_id or c.id))
        customers.flush()
        _progress(run, rows=customers.rows)
    # A customer changed during the reading comes twice: the later version is the one.
    # Only then does the market filter apply, to what the customer is now.
    cursor.execute("DELETE FROM staged_customers a USING staged_customers b "
                   "WHERE a.customer_id = b.customer_id AND a.seq < b.seq")
    if markets:
        cursor.execute("DELETE FROM staged_customers WHERE market <> ALL(%s)", [sorted(markets)])
    cursor.execute("ALTER TABLE staged_customers ADD PRIMARY KEY (customer_id)")
    cursor.execute("SELECT count(*) FROM staged_customers")
    customer_count = cursor.fetchone()[0]

    # Sales per location since each one's watermark.
    mapped = dict(StoreMapping.objects.filter(connection=connection)
                  .values_list("external_location_id", "store_id"))
    wanted = set(credential.location_ids)
    sales_since = dict(credential.sales_since or {})
    lines = ingest.StagingCopy(cursor, "staged_lines", ingest.API_LINE_COLUMNS)
    payments = ingest.StagingCopy(cursor, "staged_payments", ingest.PAYMENT_COLUMNS)
    sales = unmapped = 0
    listed = client.locations()
    cova_locations_store(credential=credential, locations=listed)
    for location in listed:
        if wanted and location.id not in wanted:
            continue
        SyncRun.objects.filter(pk=run.pk).update(current_file=f"Sales of {location.name}")
        since_text = sales_since.get(location.id)
        since = dt.datetime.fromisoformat(since_text) if since_text else None
        newest = since
        store_id = mapped.get(location.id)
        for page in client.sales(location.id, since, payments=not credential.skip_payment_methods):
            for sale in page:
                if newest is None or sale.completed_at > newest:
                    newest = sale.completed_at
                sales += 1
                if store_id is None:
                    unmapped += 1
                for item in sale.items:
                    lines.add((lines.rows + 1, sale.id, sale.customer_id or "", sale.completed_at.isoformat(),
                               store_id, item.sku, item.product, item.brand, item.category, item.quantity,
                               item.unit_price, item.discount, item.tax, item.total, sale.fulfillment,
                               sale.employee, "" if store_id else location.id))
                for payment in sale.payments:
                    payments.add((sale.id, payment.method, payment.amount))
            lines.flush()
            payments.flush()
            _progress(run, rows=customer_count + sales)
        if newest is not None:
            sales_since[location.id] = newest.isoformat()
    return {"customers": customer_count, "sales": sales, "unmapped": unmapped, "lines": lines.rows,
            "customers_since": customers_since, "sales_since": sales_since,
            "has_payments": payments.rows > 0}


def _merge_staged(connection: Connection, staged: dict) -> dict:
    """What the sync staged, through loyalty's one merge (loyalty.services.ingest)."""
    merged = ingest.sales_merge_staged(
        company=connection.company, source=connection.source,
        batch=ingest.Batch(customers=True, payments=staged["has_payments"],
                           enroll=connection.enroll_new_customers, noun="Cova sale"))
    return {"customers": staged["customers"], "sales": merged.new_sales, "unmapped": staged["unmapped"],
            "lines": staged["lines"] - merged.rejected_lines, "rejected_lines": merged.rejected_lines,
            "too_large": merged.too_large, "erased_skipped": merged.customers_skipped}


COVA_FIELDS = {"line_total": "Total", "unit_price": "UnitPrice", "discount": "Discount", "tax": "Tax"}


def _sales_rejected_record(run: SyncRun, too_large: list) -> ImportedFile | None:
    """The sales left out of a run, one row error each naming the Cova sale and field, on
    the run's page like a report file's (with its download)."""
    if not too_large:
        return None
    lines = sum(len(rows) for _sale, rows, _column, _reason in too_large)
    imported_file = ImportedFile.objects.create(
        connection_id=run.connection_id, key=f"Cova sales of run {run.pk}", state=ImportedFile.State.IMPORTED,
        rows_rejected=lines, last_run=run, imported_at=timezone.now())
    RowError.objects.bulk_create(
        RowError(imported_file=imported_file, row_number=rows[0], column=COVA_FIELDS.get(column, column),
                 value=sale, reason=reason[:500], row=[sale])
        for sale, rows, column, reason in too_large)
    return imported_file


# --- signups pushed to Cova ------------------------------------------------------------------

def signup_push_queue(*, persona: Persona) -> list[SignupPush]:
    """Queue the creation in Cova of a persona who enrolled here, on each credential that
    pushes (not frozen; the persona's market among its markets, when it has some). A
    persona Cova already knows is not pushed."""
    credentials = CovaCredential.objects.filter(
        connection__company_id=persona.company_id, is_frozen=False, connection__is_frozen=False,
    ).select_related("connection")
    queued = []
    for credential in credentials:
        if credential.markets and persona.market not in credential.markets:
            continue
        known = PersonaIdentity.objects.filter(persona=persona, source_id=credential.connection.source_id)
        if known.exists():
            continue
        push, created = SignupPush.objects.get_or_create(
            persona=persona, credential=credential, defaults={"company_id": persona.company_id})
        if created or push.state == SignupPush.State.FAILED:
            queued.append(push)
    return queued


def signup_push_send(*, push_id: int) -> SignupPush:
    """Create the persona in Cova with the credential's forced pricing group, and keep the
    id Cova gives them as their Cova identity. Raises ProviderError (the task retries)."""
    push = SignupPush.objects.select_related("persona", "credential__connection").get(pk=push_id)
    if push.state == SignupPush.State.SENT:
        return push
    if push.state == SignupPush.State.QUEUED and push.attempts:
        # Queued with an attempt counted: that attempt's worker was lost mid-request (every
        # attempt that ends records sent or failed), so Cova may have the customer already.
        error = ("The worker was lost while creating this customer in Cova: they may or may not "
                 "exist there. Look for this customer in Cova before creating them there.")
        SignupPush.objects.filter(pk=push.pk, state=SignupPush.State.QUEUED, attempts=push.attempts).update(
            state=SignupPush.State.FAILED, error=error)
        push.refresh_from_db()
        return push
    persona, credential = push.persona, push.credential
    if persona_erased(persona):  # a retry after the customer was erased: nothing of theirs goes
        SignupPush.objects.filter(pk=push.pk).update(
            state=SignupPush.State.FAILED, error="The customer's data was erased; nothing was sent to Cova.")
        push.refresh_from_db()
        return push
    # Queued while in flight; of two deliveries of the task, only one takes it.
    if not SignupPush.objects.filter(pk=push.pk, state=push.state, attempts=push.attempts).update(
            state=SignupPush.State.QUEUED, attempts=F("attempts") + 1):
        push.refresh_from_db()
        return push
    try:
        cova_id = cova_client_for(credential).customer_create(
            first_name=persona.first_name, last_name=persona.last_name, email=persona.email,
            phone=persona.phone, birth_date=persona.birth_date, pricing_group_id=credential.pricing_group_id)
    except ProviderError as exc:
        error = exc.message
        if exc.acted_maybe:
            error += " Look for this customer in Cova before creating them there."
        SignupPush.objects.filter(pk=push.pk).update(state=SignupPush.State.FAILED, error=error)
        raise
    with db.atomic():
        identity = persona_identity_attach(persona=persona, source_id=credential.connection.source_id,
                                           external_id=cova_id)
        if identity is None:  # erased while Cova was creating them
            SignupPush.objects.filter(pk=push.pk).update(state=SignupPush.State.FAILED, error=(
                f"The customer's data was erased while they were being created in Cova (Cova id {cova_id}): "
                f"delete them in Cova too."))
        else:
            SignupPush.objects.filter(pk=push.pk).update(state=SignupPush.State.SENT, external_id=cova_id,
                                                         error="")
    push.refresh_from_db()
    return push
