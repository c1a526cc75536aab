"""The audit trail: every staff write and every export of customer data leaves one
append-only `AuditEvent`.

A view builds an `AuditContext` from its request (`audit_context(request)`) and hands it to
the service that does the write, as `audit=`; the service records the event with
`audit_record` in its own database transaction, so the write and its record land together
or not at all. A service called without `audit` (a Celery sync, the POS API, the demo
loader) records nothing. A management command that should leave a trail passes
`AuditContext()`: no user, no address.

`changes` is {field: [before, after]}. Build it with `audit_snapshot` before and after the
write and `audit_changes(before, after, secret_fields=...)`: secrets never reach the
trail, only the fact that they changed.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db import models

from .http import client_address, valid_ip
from .models import AuditEvent

KIND_RE = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*$")
SECRET_SET = "(set)"
SECRET_CHANGED = "(changed)"
SECRET_REMOVED = "(removed)"
SECRET_KEPT = "••••"


@dataclass(frozen=True)
class AuditContext:
    """Who does a write, and from which address. No user: a command or the system."""

    user: Any = None
    ip: str = ""


def audit_context(request) -> AuditContext:
    """The signed-in user of `request` and their address (through TRUSTED_PROXIES)."""
    user = getattr(request, "user", None)
    return AuditContext(user=user if user is not None and user.is_authenticated else None,
                        ip=client_address(request))


def _plain(value):
    """A value as the JSON column keeps it: rows by their name, times as ISO text."""
    if isinstance(value, models.Model):
        return str(value)
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="seconds")
    if isinstance(value, dt.date | dt.time):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset | models.QuerySet):
        items = [_plain(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset | models.QuerySet) else items
    return value


def audit_snapshot(instance: models.Model, fields) -> dict:
    """`fields` of `instance` as they are now: a related row as its name, a many-to-many
    as the sorted names of its rows (none before the row is saved)."""
    snapshot = {}
    for name in fields:
        field = instance._meta.get_field(name)
        if field.many_to_many:
            snapshot[name] = sorted(str(row) for row in getattr(instance, name).all()) if instance.pk else []
        else:
            snapshot[name] = getattr(instance, name)
    return snapshot


def _secret(before, after) -> list:
    if not before:
        return [None, SECRET_SET]
    return [SECRET_KEPT, SECRET_CHANGED if after else SECRET_REMOVED]


def _empty(value) -> bool:
    return value is None or (isinstance(value, str | list | tuple | dict) and not value)


def audit_changes(before: dict | None, after: dict | None, *, secret_fields=()) -> dict:
    """{field: [before, after]} for each field whose value differs. A missing side (a
    create, a delete) is None, and so is an empty value: a create lists only the fields
    it filled in. Secret fields show only that they were set or changed."""
    before, after = before or {}, after or {}
    changes = {}
    for name in list(before) + [k for k in after if k not in before]:
        old, new = before.get(name), after.get(name)
        old, new = (None if _empty(old) else old), (None if _empty(new) else new)
        if old == new:
            continue
        changes[name] = _secret(old, new) if name in secret_fields else [_plain(old), _plain(new)]
    return changes


def _company_id(company) -> int:
    return company if isinstance(company, int) else company.pk


def audit_record(*, audit: AuditContext | None, company, kind: str, obj: models.Model | None = None,
                 changes: dict | None = None, extra: dict | None = None,
                 if_changed: bool = False) -> AuditEvent | None:
    """Add one event to `company`'s trail (a Company or its id). `obj` is what it is about;
    its type, id and name are copied, so the event outlives it. Without `audit` (not a
    staff action) nothing is recorded; with `if_changed`, neither is an edit that changed
    nothing."""
    if audit is None or (if_changed and not changes):
        return None
    if not KIND_RE.match(kind):
        raise ValueError(f"An audit kind is 'thing.action' in lower case, not {kind!r}.")
    user = audit.user
    return AuditEvent.objects.create(
        company_id=_company_id(company),
        actor_id=user.pk if user is not None else None,
        actor_name=user.get_username()[:150] if user is not None else "",
        actor_email=(getattr(user, "email", "") or "")[:254] if user is not None else "",
        ip_address=valid_ip(audit.ip),
        kind=kind,
        object_type=obj._meta.model_name if obj is not None else "",
        object_id=obj.pk if obj is not None else None,
        object_label=str(obj)[:300] if obj is not None else "",
        changes=_plain(changes or {}),
        extra=_plain(extra or {}),
    )
