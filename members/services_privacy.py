"""The customer's preferences and own data on the loyalty page: consents (each change a
ConsentRecord with its exact wording), favourite store, "Stop SMS" and "Unsubscribe",
"Download my data" and "Delete my account"."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import datetime
from decimal import Decimal, InvalidOperation

from django.db import transaction as db
from django.db.models import Prefetch
from django.utils import timezone

from loyalty.locks import persona_lock
from loyalty.models import (
    ConsentRecord,
    ErasureRequest,
    LineItem,
    Persona,
    PointsEntry,
    Transaction,
    WalletItem,
)
from loyalty.services.privacy import persona_erase
from stores.errors import DomainError
from stores.http import valid_ip

from .models import LoginCode
from .services import consent_wording, sign_in_code_check, sign_in_code_send

# What the "Stop SMS" and "Unsubscribe from email" buttons say, stored with their record.
STOP_WORDING = {
    ConsentRecord.Channel.SMS: "Stop SMS: send me no more text messages from {company}.",
    ConsentRecord.Channel.EMAIL: "Unsubscribe from email: send me no more email from {company}.",
}
OPT_IN_FIELD = {ConsentRecord.Channel.SMS: "sms_opt_in", ConsentRecord.Channel.EMAIL: "email_opt_in"}


def _consent_record(*, company, persona, channel, granted, wording, address, page_url, now) -> ConsentRecord:
    return ConsentRecord.objects.create(company=company, persona=persona, channel=channel, granted=granted,
                                        wording=wording, ip=valid_ip(address), page_url=page_url[:500],
                                        created_at=now)


def preferences_update(*, company, persona_id: int, sms_opt_in: bool, email_opt_in: bool, favourite_store,
                       address: str = "", page_url: str = "", now: datetime | None = None) -> Persona:
    """Save the preferences form: each consent that changes is a ConsentRecord with the exact
    sentence beside its box (granted or withdrawn) and the persona's opt-in follows it."""
    now = now or timezone.now()
    if favourite_store is not None and favourite_store.company_id != company.pk:
        raise DomainError("Pick your favourite store.", code="invalid_store",
                          extra={"field": "favourite_store"})
    wording = consent_wording(company)
    with db.atomic():
        persona = persona_lock(company=company, persona_id=persona_id)
        changed = []
        for channel, wanted in ((ConsentRecord.Channel.SMS, sms_opt_in),
                                (ConsentRecord.Channel.EMAIL, email_opt_in)):
            field = OPT_IN_FIELD[channel]
            if getattr(persona, field) != bool(wanted):
                setattr(persona, field, bool(wanted))
                changed.append(field)
                _consent_record(company=company, persona=persona, channel=channel, granted=bool(wanted),
                                wording=wording[channel], address=address, page_url=page_url, now=now)
        if persona.favourite_store_id != (favourite_store.pk if favourite_store else None):
            persona.favourite_store = favourite_store
            changed.append("favourite_store")
        if changed:
            persona.save(update_fields=[*changed, "updated_at"])
    return persona


def consent_stop(*, company, persona_id: int, channel: str, address: str = "", page_url: str = "",
                 wording: str = "", now: datetime | None = None) -> Persona:
    """"Stop SMS" / "Unsubscribe from email" (or a reply STOP, an email's unsubscribe link:
    `wording` says what the customer did): the opt-in is off at once, and the request is
    recorded (even when it was already off: the customer asked)."""
    now = now or timezone.now()
    if channel not in OPT_IN_FIELD:
        raise DomainError("Unknown channel.", code="invalid_channel")
    with db.atomic():
        persona = persona_lock(company=company, persona_id=persona_id)
        field = OPT_IN_FIELD[channel]
        if getattr(persona, field):
            setattr(persona, field, False)
            persona.save(update_fields=[field, "updated_at"])
        _consent_record(company=company, persona=persona, channel=channel, granted=False,
                        wording=wording or STOP_WORDING[channel].format(company=company.name),
                        address=address, page_url=page_url, now=now)
    return persona


def consent_restart(*, company, persona_id: int, channel: str, wording: str, address: str = "",
                    page_url: str = "", now: datetime | None = None) -> Persona:
    """The customer asked for the channel again (a reply START): the opt-in is on, and the
    request is recorded with `wording`, what they did."""
    now = now or timezone.now()
    if channel not in OPT_IN_FIELD:
        raise DomainError("Unknown channel.", code="invalid_channel")
    with db.atomic():
        persona = persona_lock(company=company, persona_id=persona_id)
        field = OPT_IN_FIELD[channel]
        if not getattr(persona, field):
            setattr(persona, field, True)
            persona.save(update_fields=[field, "updated_at"])
        _consent_record(company=company, persona=persona, channel=channel, granted=True, wording=wording,
                        address=address, page_url=page_url, now=now)
    return persona


# --- download my data ------------------------------------------------------------------------------

def _when(value) -> str | None:
    return value.isoformat() if value else None


def _money(value) -> str | None:
    return None if value is None else str(value)


def persona_data_export(*, company, persona_id: int) -> dict:
    """Everything the company holds about this one persona, for "Download my data": profile,
    points history, wallet, purchases with their lines, consents. Only rows of this persona
    in this company."""
    persona = (Persona.objects.select_related("favourite_store")
               .get(company=company, pk=persona_id))
    identities = [{"source": i.source.name, "external_id": i.external_id}
                  for i in persona.identities.select_related("source").filter(company=company).order_by("id")]
    profile = {
        "id": persona.pk, "first_name": persona.first_name, "last_name": persona.last_name,
        "phone": persona.phone, "email": persona.email,
        "birth_date": persona.birth_date.isoformat() if persona.birth_date else None,
        "market": persona.market, "member": persona.is_member, "enrolled_at": _when(persona.enrolled_at),
        "sms_opt_in": persona.sms_opt_in, "email_opt_in": persona.email_opt_in,
        "favourite_store": persona.favourite_store.name if persona.favourite_store else None,
        "points_balance": persona.points_balance, "lifetime_points": persona.lifetime_points,
        "tier": persona.tier, "custom_traits": persona.custom_traits, "identities": identities,
        "created_at": _when(persona.created_at),
    }
    points = [{"at": _when(e.created_at), "kind": e.kind, "points": e.delta, "balance_after": e.balance_after,
               "reason": e.reason, "purchase": e.transaction.external_id if e.transaction else None}
              for e in PointsEntry.objects.filter(company=company, persona=persona)
              .select_related("transaction").order_by("created_at", "id")]
    wallet = [{"reward": w.offer.name, "code": w.code, "state": w.state, "points_paid": w.points_paid,
               "got_at": _when(w.created_at), "used_at": _when(w.used_at)}
              for w in WalletItem.objects.filter(company=company, persona=persona)
              .select_related("offer").order_by("created_at", "id")]
    purchases = [{
        "id": t.external_id, "at": _when(t.occurred_at), "store": t.store.name if t.store else None,
        "status": t.status, "subtotal": _money(t.subtotal), "discount": _money(t.discount_total),
        "tax": _money(t.tax_total), "total": _money(t.total),
        "lines": [{"product": li.product, "brand": li.brand, "category": li.category,
                   "quantity": _money(li.quantity), "unit_price": _money(li.unit_price),
                   "discount": _money(li.discount), "total": _money(li.total)}
                  for li in t.line_items.all()],
    } for t in Transaction.objects.filter(company=company, persona=persona).select_related("store")
        .prefetch_related(Prefetch("line_items", LineItem.objects.order_by("line_no")))
        .order_by("occurred_at", "id")]
    consents = [{"at": _when(c.created_at), "channel": c.channel, "granted": c.granted, "wording": c.wording,
                 "ip": c.ip, "page": c.page_url}
                for c in ConsentRecord.objects.filter(company=company, persona=persona)
                .order_by("created_at", "id")]
    return {"company": company.name, "exported_at": _when(timezone.now()), "profile": profile,
            "points_history": points, "wallet": wallet, "purchases": purchases, "consents": consents}


# Rows held inside a section's rows, as a file of their own: a purchase's lines go to
# purchase_lines.csv, each with its purchase's id in the "purchase" column.
CSV_INNER_ROWS = {"purchases": ("lines", "purchase_lines", "purchase")}
# A column's heading: its key in words ("balance_after": "balance after"), or this.
CSV_HEADINGS = {"at": "date"}


def _is_number(value: str) -> bool:
    try:
        Decimal(value)
    except InvalidOperation:
        return False
    return True


def _csv_cell(value) -> str | int:
    """One value as a spreadsheet cell: blank for none, yes/no, JSON for a nested value; text
    a spreadsheet would run as a formula (=, @, or + and - before anything but a number)
    starts with a quote mark."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return value
    if isinstance(value, (dict, list)):
        value = json.dumps(value, ensure_ascii=False)
    value = str(value)
    if value[:1] in ("=", "@", "\t", "\r") or (value[:1] in ("+", "-") and not _is_number(value)):
        return "'" + value
    return value


def _csv_file(header: list[str], rows: list[list]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(header)
    writer.writerows([[_csv_cell(value) for value in row] for row in rows])
    return out.getvalue().encode("utf-8-sig")  # the mark tells spreadsheets it is UTF-8


def _is_rows(value) -> bool:
    return isinstance(value, list) and all(isinstance(row, dict) for row in value)


def _csv_heading(key: str) -> str:
    return CSV_HEADINGS.get(key, key.replace("_", " "))


def _csv_table(rows: list[dict]) -> bytes:
    """Rows as a table, a column per key (an empty list is an empty file)."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    if not columns:
        return b""
    return _csv_file([_csv_heading(c) for c in columns], [[row.get(c) for c in columns] for row in rows])


def persona_data_zip(export: dict) -> bytes:
    """The export of persona_data_export as a ZIP of CSV files for a spreadsheet, one per
    section: profile.csv (field, value; with the company and the date of the export), a
    table for each list in it (identities.csv), and one for each other section
    (points_history.csv, wallet.csv, purchases.csv with purchase_lines.csv, consents.csv)."""
    about = [[_csv_heading(key), value] for key, value in export.items()
             if not isinstance(value, (dict, list))]
    files: dict[str, bytes] = {}
    for name, section in export.items():
        if isinstance(section, dict):
            tables = {key: value for key, value in section.items() if _is_rows(value)}
            fields = [[_csv_heading(key), value] for key, value in section.items() if key not in tables]
            files[f"{name}.csv"] = _csv_file(["field", "value"], about + fields)
            files.update({f"{key}.csv": _csv_table(rows) for key, rows in tables.items()})
        elif _is_rows(section):
            inner_key, inner_name, parent_column = CSV_INNER_ROWS.get(name, (None, None, None))
            files[f"{name}.csv"] = _csv_table([{k: v for k, v in row.items() if k != inner_key}
                                               for row in section])
            if inner_key:
                files[f"{inner_name}.csv"] = _csv_table([{parent_column: row.get("id"), **line}
                                                         for row in section for line in row[inner_key]])
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for filename, content in files.items():
            archive.writestr(filename, content)
    return buffer.getvalue()


# --- delete my account -----------------------------------------------------------------------------

def account_delete_code_send(*, company, persona, address: str) -> None:
    """Text the signed-in customer a code that confirms deleting their account."""
    sign_in_code_send(company=company, phone=persona.phone, address=address, purpose=LoginCode.Purpose.ERASE)


def account_delete(*, company, persona, code: str) -> ErasureRequest:
    """The code is right: the customer's personal data is erased (loyalty.services.privacy),
    which also ends their sign-in sessions. A wrong or expired code is a DomainError."""
    sign_in_code_check(company=company, phone=persona.phone, code=code, purpose=LoginCode.Purpose.ERASE)
    return persona_erase(company=company, persona_id=persona.pk, via=ErasureRequest.Via.PAGE)
