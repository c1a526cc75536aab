"""Connections: create, change, test, schedule, freeze, map headers and stores, delete."""

from __future__ import annotations

import datetime as dt
import json
import zoneinfo

from django.db import IntegrityError
from django.db import transaction as db
from django.db.models import Q
from django.utils import timezone as django_timezone
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from loyalty.services import ingest, source_create, source_rename, source_retire
from stores.audit import AuditContext, audit_changes, audit_record, audit_snapshot
from stores.errors import DomainError
from stores.models import RetailStore
from stores.outbound import outbound_url_check

from .. import fields as F
from ..connectors import connector_class, source_kind_of
from ..models import Connection, ImportedFile, StoreMapping
from ..providers import ProviderError, provider_class, provider_for

SYNC_TASK = "integrations.tasks.connection_sync_scheduled"


CONNECTION_AUDIT_FIELDS = ("name", "provider", "default_store", "enroll_new_customers", "is_frozen",
                           "sync_time")


def _audit_state(connection: Connection, credentials: dict) -> dict:
    """What the trail shows of a connection: its fields, each setting, each credential
    (credentials only ever as "(set)" / "(changed)")."""
    state = audit_snapshot(connection, CONNECTION_AUDIT_FIELDS)
    state |= {f"settings.{name}": value for name, value in (connection.settings or {}).items()}
    state |= {f"credentials.{name}": value for name, value in credentials.items() if value}
    return state


def _audit_changes(before: dict | None, after: dict | None) -> dict:
    secret = {name for name in (before or {}) | (after or {}) if name.startswith("credentials.")}
    return audit_changes(before, after, secret_fields=secret)


def _clean_settings(provider: str, values: dict, *, company) -> dict:
    """The provider's settings, trimmed and checked; a server URL pointing at a private or
    local address is refused with its field named."""
    cls = provider_class(provider)
    names = [name for name, _, _ in cls.setting_fields]
    cleaned = cls.settings_clean({name: str(values.get(name) or "").strip() for name in names},
                                 company_slug=company.slug)
    for name, what in cls.url_settings:
        if cleaned.get(name):
            outbound_url_check(cleaned[name], what=what, field=name)
    return cleaned


def connection_create(*, company, name: str, provider: str, settings: dict, credentials: dict,
                      default_store: RetailStore | None = None, enroll_new_customers: bool = True,
                      sync_time=None, audit: AuditContext | None = None) -> Connection:
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the connection a name.", extra={"field": "name"})
    try:
        provider_class(provider)
    except KeyError:
        raise DomainError(f"Unknown provider '{provider}'.", extra={"field": "provider"}) from None
    if default_store is not None and default_store.company_id != company.pk:
        raise DomainError("That store belongs to another company.", extra={"field": "default_store"})
    settings = _clean_settings(provider, settings, company=company)
    try:
        with db.atomic():
            source = source_create(company=company, kind=source_kind_of(connector_class(provider)), name=name)
            connection = Connection(company=company, name=name, provider=provider, source=source,
                                    settings=settings,
                                    default_store=default_store,
                                    enroll_new_customers=enroll_new_customers)
            if sync_time is not None:
                connection.sync_time = sync_time
            names = [n for n, _, _ in provider_class(provider).credential_fields]
            plain = {n: str(credentials.get(n) or "").strip() for n in names}
            connection.set_credentials(plain)
            connection.save()
            connection_schedule_save(connection=connection)
            audit_record(audit=audit, company=company, kind="connection.created", obj=connection,
                         changes=_audit_changes(None, _audit_state(connection, plain)))
    except IntegrityError as exc:
        raise DomainError(f"There is already a connection or source named '{name}'.",
                          extra={"field": "name"}) from exc
    return connection


def connection_update(*, connection: Connection, name: str, settings: dict, credentials: dict,
                      default_store: RetailStore | None, enroll_new_customers: bool,
                      sync_time=None, audit: AuditContext | None = None) -> Connection:
    """Blank credential fields keep the stored secret: it is never shown again."""
    name = (name or "").strip()
    if not name:
        raise DomainError("Give the connection a name.", extra={"field": "name"})
    if default_store is not None and default_store.company_id != connection.company_id:
        raise DomainError("That store belongs to another company.", extra={"field": "default_store"})
    try:
        stored = connection.credentials_plain()
    except DomainError:
        # Saved under another FIELD_ENCRYPTION_KEY: unreadable, so what is typed now is all
        # there is (the page asks for every secret again).
        stored = {}
    before = _audit_state(connection, stored)
    for key, value in credentials.items():
        if value and value.strip():
            stored[key] = value.strip()
    settings = _clean_settings(connection.provider, settings, company=connection.company)
    try:
        with db.atomic():
            connection.name = name
            connection.settings = settings
            connection.notice = ""  # it asked for new settings; these passed the checks
            connection.set_credentials(stored)
            connection.default_store = default_store
            connection.enroll_new_customers = enroll_new_customers
            if sync_time is not None:
                connection.sync_time = sync_time
            connection.save()
            source_rename(source_id=connection.source_id, name=name)
            connection_schedule_save(connection=connection)
            audit_record(audit=audit, company=connection.company_id, kind="connection.updated",
                         obj=connection,
                         changes=_audit_changes(before, _audit_state(connection, stored)),
                         if_changed=True)
    except IntegrityError as exc:
        raise DomainError(f"There is already a connection or source named '{name}'.",
                          extra={"field": "name"}) from exc
    return connection


def connection_test(*, connection: Connection) -> tuple[bool, str]:
    """(worked, what happened) in the merchant's words."""
    try:
        return True, provider_for(connection).test()
    except ProviderError as exc:
        labels = {
            "unreachable": "Unreachable", "bad_credentials": "Bad credentials",
            "not_found": "Not found", "no_permission": "No permission",
            "misconfigured": "Settings incomplete",
        }
        return False, f"{labels.get(exc.problem, 'Failed')}: {exc.message}"


# A test whose worker died stops being shown as going (and can be started again).
TEST_STALE = dt.timedelta(minutes=5)


def test_is_going(owner) -> bool:
    """Whether `owner`'s (a report connection's or a Cova credential's) Test connection is going."""
    started = owner.test_started_at
    return started is not None and django_timezone.now() - started < TEST_STALE


def connection_test_start(*, connection: Connection) -> Connection:
    """"Test connection" of a source that is reached over the network (S3, OneDrive): mark
    it as going and queue it, so the button answers at once even when the source hangs.
    A test already going is not queued twice."""
    from ..tasks import connection_test as test_task

    with db.atomic():
        connection = Connection.objects.select_for_update().get(pk=connection.pk)
        if test_is_going(connection):
            return connection
        connection.test_started_at, connection.test_ok, connection.test_message = \
            django_timezone.now(), None, ""
        connection.save(update_fields=["test_started_at", "test_ok", "test_message"])
        db.on_commit(lambda: test_task.delay(connection.pk))
    return connection


def connection_test_run(*, connection_id: int) -> Connection:
    """The test's work (in the background); the outcome is kept for the page."""
    connection = Connection.objects.get(pk=connection_id)
    try:
        ok, message = connection_test(connection=connection)
    except DomainError as exc:  # e.g. a secret that can no longer be decrypted
        ok, message = False, exc.message
    Connection.objects.filter(pk=connection_id).update(
        test_started_at=None, test_ok=ok, test_message=f"Connected: {message}" if ok else message)
    connection.refresh_from_db()
    return connection


def nightly_task_save(owner, *, name: str, task: str, sync_time, company, enabled: bool,
                      description: str) -> PeriodicTask:
    """Create or update `owner`'s nightly beat entry (its `periodic_task`), running `task`
    with the owner's id at `sync_time` in the company's time zone."""
    crontab, _ = CrontabSchedule.objects.get_or_create(
        minute=str(sync_time.minute), hour=str(sync_time.hour),
        day_of_week="*", day_of_month="*", month_of_year="*", timezone=zoneinfo.ZoneInfo(company.timezone),
    )
    values = {"crontab": crontab, "task": task, "args": json.dumps([owner.pk]), "enabled": enabled,
              "description": description}
    entry = owner.periodic_task
    if entry is None:
        entry = PeriodicTask.objects.create(name=name, **values)
        type(owner).objects.filter(pk=owner.pk).update(periodic_task=entry)
        owner.periodic_task = entry
    else:
        for key, value in values.items():
            setattr(entry, key, value)
        entry.save()
    return entry


def connection_schedule_save(*, connection: Connection) -> PeriodicTask:
    """The nightly beat entry, at the connection's time in the company's time zone."""
    return nightly_task_save(
        connection, name=f"connection-{connection.pk}-nightly-sync", task=SYNC_TASK,
        sync_time=connection.sync_time, company=connection.company, enabled=not connection.is_frozen,
        description=f"Nightly sync of {connection.name} ({connection.company.name})")


def connection_freeze(*, connection: Connection, frozen: bool,
                      audit: AuditContext | None = None) -> Connection:
    with db.atomic():
        was = connection.is_frozen
        connection.is_frozen = frozen
        connection.save(update_fields=["is_frozen"])
        connection_schedule_save(connection=connection)
        if was != frozen:
            audit_record(audit=audit, company=connection.company_id,
                         kind="connection.frozen" if frozen else "connection.unfrozen", obj=connection,
                         changes={"is_frozen": [was, frozen]})
    return connection


def connection_header_map_save(*, connection: Connection, mapping: dict[str, str],
                               audit: AuditContext | None = None) -> Connection:
    """Header -> canonical field; '' ignores a column. Two headers may not claim one field."""
    cleaned, claimed = {}, {}
    for header, field in mapping.items():
        if field and field not in F.BY_NAME:
            raise DomainError(f"'{field}' is not a field we import.", extra={"field": header})
        if field and field in claimed:
            raise DomainError(
                f"Columns '{claimed[field]}' and '{header}' are both mapped to "
                f"{F.BY_NAME[field].label}; pick one.", extra={"field": header})
        if field:
            claimed[field] = header
        cleaned[header] = field
    missing = [F.BY_NAME[r].label for r in F.REQUIRED if r not in claimed]
    if missing:
        raise DomainError(f"Map a column to {' and '.join(missing)}: every report needs it.",
                          extra={"field": "mapping"})
    with db.atomic():
        before = {f"header:{h}": f for h, f in (connection.header_map or {}).items()}
        connection.header_map = cleaned
        connection.save(update_fields=["header_map"])
        _files_retry(connection)
        audit_record(audit=audit, company=connection.company_id, kind="connection.header_map_saved",
                     obj=connection,
                     changes=audit_changes(before, {f"header:{h}": f for h, f in cleaned.items()}),
                     if_changed=True)
    return connection


def _files_retry(connection: Connection) -> int:
    """After a mapping changes, files that were rejected or had rejected rows are read
    again on the next sync (a re-import replaces what the file brought before)."""
    return (ImportedFile.objects.filter(connection=connection, removed_at__isnull=True)
            .filter(Q(state=ImportedFile.State.REJECTED) | Q(rows_rejected__gt=0))
            .update(etag=""))


def store_mapping_set(*, connection: Connection, external_location_id: str,
                      store: RetailStore | None, audit: AuditContext | None = None) -> StoreMapping | None:
    """Map a location value in the reports to a store; no store removes the mapping."""
    value = (external_location_id or "").strip()
    if not value:
        raise DomainError("Enter the location as it appears in the reports.",
                          extra={"field": "external_location_id"})
    if store is not None and store.company_id != connection.company_id:
        raise DomainError("That store belongs to another company.", extra={"field": "store"})
    with db.atomic():
        current = (StoreMapping.objects.filter(connection=connection, external_location_id=value)
                   .select_related("store").first())
        before = {f"location:{value}": current.store.name if current else None}
        mapping = None
        if store is None:
            StoreMapping.objects.filter(connection=connection, external_location_id=value).delete()
        else:
            mapping, _ = StoreMapping.objects.update_or_create(
                connection=connection, external_location_id=value, defaults={"store": store})
            _files_retry(connection)
        changes = audit_changes(before, {f"location:{value}": store.name if store else None})
        if changes:
            audit_record(audit=audit, company=connection.company_id, kind="connection.store_mapping_changed",
                         obj=connection, changes=changes)
    return mapping


def connection_delete(*, connection: Connection, keep_data: bool, audit: AuditContext | None = None) -> int:
    """Delete the connection. With `keep_data` its customers and sales stay (under its
    source, renamed); without, its sales go and their points are reversed."""
    removed = 0
    with db.atomic(durable=True):
        if not keep_data:
            removed = ingest.source_transactions_remove(
                company=connection.company, source_id=connection.source_id,
                reason=f"Connection {connection.name} deleted with its data")
        # The nightly entries: the connection's own, and each Cova credential's.
        tasks = [connection.periodic_task_id,
                 *connection.cova_credentials.values_list("periodic_task_id", flat=True)]
        source = connection.source
        audit_record(audit=audit, company=connection.company_id, kind="connection.deleted", obj=connection,
                     changes=audit_changes(audit_snapshot(connection, CONNECTION_AUDIT_FIELDS), None),
                     extra={"keep_data": keep_data, "sales_removed": removed})
        ImportedFile.objects.filter(connection=connection).delete()
        connection.delete()
        PeriodicTask.objects.filter(pk__in=[pk for pk in tasks if pk]).delete()
        source_retire(source=source, keep=keep_data, renamed=f"{source.name} (deleted connection)")
    return removed
