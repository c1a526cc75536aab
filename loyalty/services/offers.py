"""Offers (the rewards a persona can get) and staff grants into a persona's wallet."""

from decimal import Decimal, InvalidOperation

from django.core.exceptions import ValidationError
from django.db import IntegrityError
from django.db import transaction as db
from django.http import Http404
from django.utils import timezone

from stores.audit import AuditContext, audit_changes, audit_record, audit_snapshot
from stores.errors import DomainError
from stores.models import RetailStore

from ..bounds import POINTS_MAX
from ..catalog import catalog_changed
from ..locks import persona_lock
from ..models import Offer, Tier, WalletItem
from .redemptions import offer_times_held
from .webhooks import webhook_event_emit

OFFER_FIELDS = ("name", "description", "kind", "amount", "points_cost", "applies", "starts_at",
                "ends_at", "min_subtotal", "categories", "brands", "limit_per_persona", "is_active")
OFFER_RELATIONS = ("stores", "tiers")
OFFER_AUDIT_FIELDS = OFFER_FIELDS + OFFER_RELATIONS
MAX_LIST_VALUES = 50


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(message, code="invalid", extra={"field": field})


def _decimal(value, field: str) -> Decimal:
    try:
        result = value if isinstance(value, Decimal) else Decimal(str(value).strip())
    except (InvalidOperation, ValueError):
        raise _invalid(field, "Enter an amount.") from None
    if not result.is_finite():
        raise _invalid(field, "Enter an amount.")
    return result


def names_list(value, field: str) -> list[str]:
    """Categories or brands from a list or a comma-separated string: trimmed, without
    blanks or repeats (ignoring case), in the order given."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    seen, result = set(), []
    for item in items:
        if not isinstance(item, str):
            raise _invalid(field, "Enter names separated by commas.")
        item = " ".join(item.split())
        if item and item.casefold() not in seen:
            if len(item) > 200:
                raise _invalid(field, f"“{item[:40]}…” is longer than 200 characters.")
            seen.add(item.casefold())
            result.append(item)
    if len(result) > MAX_LIST_VALUES:
        raise _invalid(field, f"At most {MAX_LIST_VALUES} names.")
    return result


def _company_rows(model, company, values, field: str, what: str) -> list:
    """The rows of `company` that `values` (rows or ids) name; any other is an error."""
    ids = set()
    for value in values or ():
        try:
            ids.add(int(getattr(value, "pk", value)))
        except (TypeError, ValueError):
            raise _invalid(field, f"Pick {what} from the list.") from None
    rows = list(model.objects.filter(company=company, pk__in=ids))
    if len(rows) != len(ids):
        raise _invalid(field, f"Pick {what} of this company only.")
    return rows


def _offer_validate(offer: Offer) -> None:
    offer.name = " ".join((offer.name or "").split())
    if not offer.name:
        raise _invalid("name", "Name the offer, e.g. $5 off.")
    if offer.kind not in Offer.Kind.values:
        raise _invalid("kind", "Pick a flat amount or a percent.")
    offer.amount = _decimal(offer.amount, "amount")
    if offer.amount <= 0:
        raise _invalid("amount", "The discount must be more than zero.")
    if offer.kind == Offer.Kind.PERCENT and offer.amount > 100:
        raise _invalid("amount", "A percent discount is at most 100.")
    offer.min_subtotal = _decimal(offer.min_subtotal if offer.min_subtotal is not None else 0,
                                  "min_subtotal")
    if offer.min_subtotal < 0:
        raise _invalid("min_subtotal", "The minimum subtotal cannot be negative.")
    if (isinstance(offer.points_cost, bool) or not isinstance(offer.points_cost, int)
            or not 0 <= offer.points_cost <= POINTS_MAX):
        raise _invalid("points_cost", f"The points cost is a whole number from 0 to {POINTS_MAX:,}.")
    if offer.limit_per_persona is not None and (
            isinstance(offer.limit_per_persona, bool) or not isinstance(offer.limit_per_persona, int)
            or offer.limit_per_persona < 1):
        raise _invalid("limit_per_persona", "The limit is 1 or more, or blank for no limit.")
    if offer.applies not in ("", "before_tax", "after_tax"):
        raise _invalid("applies", "Pick before or after tax.")
    if offer.starts_at and offer.ends_at and offer.ends_at <= offer.starts_at:
        raise _invalid("ends_at", "The offer must end after it starts.")
    offer.categories = names_list(offer.categories, "categories")
    offer.brands = names_list(offer.brands, "brands")
    try:
        offer.full_clean(exclude=["company"], validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise DomainError(" ".join(messages), code="invalid",
                          extra={"field": field, "errors": exc.message_dict}) from exc
    clash = Offer.objects.filter(company_id=offer.company_id, name__iexact=offer.name).exclude(pk=offer.pk)
    if clash.exists():
        raise _invalid("name", "Another offer already has this name.")


def _offer_save(offer: Offer, *, stores, tiers) -> Offer:
    store_rows = tier_rows = None
    if stores is not None:
        store_rows = _company_rows(RetailStore, offer.company_id, stores, "stores", "stores")
    if tiers is not None:
        tier_rows = _company_rows(Tier, offer.company_id, tiers, "tiers", "tiers")
    try:
        with db.atomic():
            offer.save()
    except IntegrityError as exc:
        raise _invalid("name", "Another offer already has this name.") from exc
    if store_rows is not None:
        offer.stores.set(store_rows)
    if tier_rows is not None:
        offer.tiers.set(tier_rows)
    return offer


def offer_create(*, company, name: str, kind: str, amount, points_cost: int = 0, description: str = "",
                 applies: str = "", starts_at=None, ends_at=None, min_subtotal=Decimal("0"),
                 categories=(), brands=(), stores=(), tiers=(), limit_per_persona: int | None = None,
                 is_active: bool = True, audit: AuditContext | None = None) -> Offer:
    offer = Offer(company=company, name=name, description=(description or "").strip(), kind=kind,
                  amount=amount, points_cost=points_cost, applies=applies or "", starts_at=starts_at,
                  ends_at=ends_at, min_subtotal=min_subtotal, categories=categories, brands=brands,
                  limit_per_persona=limit_per_persona, is_active=is_active)
    with db.atomic(durable=True):
        _offer_validate(offer)
        offer = _offer_save(offer, stores=stores, tiers=tiers)
        audit_record(audit=audit, company=company, kind="offer.created", obj=offer,
                     changes=audit_changes(None, audit_snapshot(offer, OFFER_AUDIT_FIELDS)))
        return offer


def offer_update(*, offer: Offer, audit: AuditContext | None = None, **fields) -> Offer:
    """Change an offer; only the fields given change (`stores`, `tiers`: the new sets)."""
    unknown = set(fields) - set(OFFER_FIELDS) - set(OFFER_RELATIONS)
    if unknown:
        raise DomainError(f"Unknown field: {', '.join(sorted(unknown))}.", code="unknown_field")
    with db.atomic(durable=True):
        offer = Offer.objects.select_for_update().get(pk=offer.pk)
        before = audit_snapshot(offer, OFFER_AUDIT_FIELDS)
        for name in OFFER_FIELDS:
            if name in fields:
                setattr(offer, name, fields[name])
        if "description" in fields:
            offer.description = (offer.description or "").strip()
        offer.applies = offer.applies or ""
        _offer_validate(offer)
        offer = _offer_save(offer, stores=fields.get("stores"), tiers=fields.get("tiers"))
        audit_record(audit=audit, company=offer.company_id, kind="offer.updated", obj=offer,
                     changes=audit_changes(before, audit_snapshot(offer, OFFER_AUDIT_FIELDS)),
                     if_changed=True)
        return offer


def offer_set_active(*, offer: Offer, is_active: bool, audit: AuditContext | None = None) -> Offer:
    with db.atomic():
        was = Offer.objects.filter(pk=offer.pk).values_list("is_active", flat=True).first()
        Offer.objects.filter(pk=offer.pk).update(is_active=bool(is_active))
        offer.is_active = bool(is_active)
        if was != offer.is_active:
            audit_record(audit=audit, company=offer.company_id,
                         kind="offer.activated" if offer.is_active else "offer.deactivated", obj=offer,
                         changes={"is_active": [was, offer.is_active]})
    catalog_changed(offer.company_id)
    return offer


def offer_is_current(offer: Offer, *, now=None) -> bool:
    """Active and inside its validity window."""
    now = now or timezone.now()
    return offer.is_active and (offer.starts_at is None or offer.starts_at <= now) and (
        offer.ends_at is None or now < offer.ends_at)


def wallet_grant(*, company, persona_id: int, offer_id: int, staff_user,
                 audit: AuditContext | None = None) -> WalletItem:
    """Staff put an offer in a persona's wallet, free of points. Another company's persona
    or offer is a 404; the offer must be current and within its limit per persona."""
    if staff_user is None:
        raise DomainError("A grant needs the staff member who makes it.", code="invalid")
    with db.atomic(durable=True):
        persona = persona_lock(company=company, persona_id=persona_id)  # serialises the limit check
        try:
            offer = Offer.objects.get(company=company, pk=offer_id)
        except (Offer.DoesNotExist, ValueError, TypeError):
            raise Http404("No such offer.") from None
        if not offer_is_current(offer):
            raise DomainError(f"“{offer.name}” is not active now; it cannot be granted.",
                              code="offer_not_active", extra={"field": "offer"})
        if offer.limit_per_persona is not None:
            held = offer_times_held(persona, offer)  # counted as the POS counts it
            if held >= offer.limit_per_persona:
                raise DomainError(
                    f"{persona.display_name} already has “{offer.name}” {held} time{'s' * (held != 1)}; "
                    f"the limit is {offer.limit_per_persona}.",
                    code="offer_limit_reached", extra={"field": "offer", "limit": offer.limit_per_persona})
        item = WalletItem.objects.create(company=company, persona=persona, offer=offer, points_paid=0,
                                         granted_by=staff_user, source=WalletItem.Source.STAFF)
        webhook_event_emit(company=company, event="offer.issued", payload={
            "persona_id": persona.pk, "wallet_item_id": item.pk, "offer_id": offer.pk,
            "offer_name": offer.name, "points_paid": 0, "granted": True})
        audit_record(audit=audit, company=company, kind="wallet.granted", obj=persona,
                     changes={"wallet": [None, offer.name]},
                     extra={"offer_id": offer.pk, "wallet_item_id": item.pk})
        return item
