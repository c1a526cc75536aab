"""The loyalty program's settings and its tiers.

A persona is in the highest tier whose threshold they meet: lifetime points for a
"lifetime points" tier, the total of their completed sales of the last 365 days for a
"12-month spend" tier. "Highest" is the tier with the largest earn multiplier, then the
largest threshold, so a program may mix both kinds of tiers.
"""

import math
from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import NamedTuple

from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection
from django.db import transaction as db
from django.db.models import Sum
from django.utils import timezone

from stores.audit import AuditContext, audit_changes, audit_record, audit_snapshot
from stores.errors import DomainError

from ..bounds import POINTS_MAX
from ..catalog import catalog_changed
from ..models import LoyaltyProgram, Persona, Prompt, Tier, Transaction

SPEND_WINDOW_DAYS = 365

PROGRAM_FIELDS = ("points_per_unit", "earn_on", "members_only", "rounding", "discount_applies",
                  "lock_ttl_minutes", "refund_policy", "signup_bonus", "expiry_months",
                  "budtender_adjustment_limit", "budtenders_see_queue")

# field -> (lowest, highest, how to say it)
PROGRAM_RANGES = {
    "points_per_unit": (Decimal("0"), Decimal("1000"), "between 0 and 1,000 points per unit"),
    "lock_ttl_minutes": (1, 1440, "between 1 and 1,440 minutes (24 hours)"),
    "signup_bonus": (0, 100_000, "between 0 and 100,000 points"),
    "expiry_months": (1, 120, "between 1 and 120 months, or blank for never"),
    "budtender_adjustment_limit": (0, POINTS_MAX, f"between 0 and {POINTS_MAX:,} points"),
}

TIER_FIELDS = ("name", "threshold_kind", "threshold", "earn_multiplier")
MAX_MULTIPLIER = Decimal("100")


def _invalid(field: str, message: str) -> DomainError:
    return DomainError(message, code="invalid", extra={"field": field})


def _full_clean(instance, *, exclude=("company",)) -> None:
    try:
        instance.full_clean(exclude=list(exclude), validate_unique=False, validate_constraints=False)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise DomainError(" ".join(messages), code="invalid",
                          extra={"field": field, "errors": exc.message_dict}) from exc


def _decimal(value, field: str) -> Decimal:
    if isinstance(value, Decimal):
        result = value
    else:
        try:
            result = Decimal(str(value).strip())
        except (InvalidOperation, ValueError):
            raise _invalid(field, "Enter a number.") from None
    if not result.is_finite():
        raise _invalid(field, "Enter a number.")
    return result


# --- program ---------------------------------------------------------------------------------

def loyalty_program_update(*, company, audit: AuditContext | None = None, **fields) -> LoyaltyProgram:
    """Change the program's settings; only the fields given change."""
    unknown = set(fields) - set(PROGRAM_FIELDS)
    if unknown:
        raise DomainError(f"Unknown setting: {', '.join(sorted(unknown))}.", code="unknown_field",
                          extra={"field": sorted(unknown)[0]})
    if "points_per_unit" in fields:
        fields["points_per_unit"] = _decimal(fields["points_per_unit"], "points_per_unit")
    for name in ("lock_ttl_minutes", "signup_bonus", "expiry_months", "budtender_adjustment_limit"):
        value = fields.get(name)
        if isinstance(value, str):
            value = value.strip()
            try:
                fields[name] = int(value) if value else None
            except ValueError:
                raise _invalid(name, "Enter a whole number.") from None
    for name, (low, high, text) in PROGRAM_RANGES.items():
        value = fields.get(name)
        if value is None:
            if name in fields and name != "expiry_months":
                raise _invalid(name, "This field is required.")
            continue
        if isinstance(value, bool) or not isinstance(value, int | Decimal):
            raise _invalid(name, "Enter a number.")
        if not low <= value <= high:
            raise _invalid(name, f"Enter a value {text}.")
    with db.atomic(durable=True):
        LoyaltyProgram.objects.get_or_create(company=company)
        program = LoyaltyProgram.objects.select_for_update().get(company=company)
        before = audit_snapshot(program, PROGRAM_FIELDS)
        for name, value in fields.items():
            setattr(program, name, value)
        _full_clean(program)
        program.save()
        audit_record(audit=audit, company=company, kind="program.updated", obj=program,
                     changes=audit_changes(before, audit_snapshot(program, PROGRAM_FIELDS)),
                     if_changed=True)
    return program


# --- tiers -----------------------------------------------------------------------------------

def _tier_validate(tier: Tier) -> None:
    tier.name = (tier.name or "").strip()
    if not tier.name:
        raise _invalid("name", "Name the tier, e.g. Gold.")
    if tier.threshold_kind not in Tier.Threshold.values:
        raise _invalid("threshold_kind", "Pick lifetime points or 12-month spend.")
    tier.threshold = _decimal(tier.threshold, "threshold")
    if tier.threshold < 0:
        raise _invalid("threshold", "The threshold cannot be negative.")
    whole = tier.threshold == tier.threshold.to_integral()
    if tier.threshold_kind == Tier.Threshold.LIFETIME_POINTS and not whole:
        raise _invalid("threshold", "A points threshold is a whole number of points.")
    tier.earn_multiplier = _decimal(tier.earn_multiplier, "earn_multiplier")
    if not Decimal("0") <= tier.earn_multiplier <= MAX_MULTIPLIER:
        raise _invalid("earn_multiplier", "Enter a multiplier between 0 and 100 (1 = normal earning).")
    _full_clean(tier)
    others = Tier.objects.filter(company_id=tier.company_id).exclude(pk=tier.pk)
    if others.filter(name__iexact=tier.name).exists():
        raise _invalid("name", "Another tier already has this name.")
    if others.filter(threshold_kind=tier.threshold_kind, threshold=tier.threshold).exists():
        raise _invalid("threshold", "Another tier already starts at this threshold.")


def _tier_save(tier: Tier) -> None:
    try:
        with db.atomic():
            tier.save()
    except IntegrityError as exc:  # a concurrent save took the name or threshold
        raise _invalid("name", "Another tier already has this name or threshold.") from exc


def tier_create(*, company, name: str, threshold, threshold_kind: str = Tier.Threshold.LIFETIME_POINTS,
                earn_multiplier=Decimal("1"), audit: AuditContext | None = None) -> Tier:
    """A new tier; every persona's tier is recomputed."""
    tier = Tier(company=company, name=name, threshold_kind=threshold_kind, threshold=threshold,
                earn_multiplier=earn_multiplier)
    with db.atomic(durable=True):
        _tier_validate(tier)
        _tier_save(tier)
        tiers_recompute(company=company)
        audit_record(audit=audit, company=company, kind="tier.created", obj=tier,
                     changes=audit_changes(None, audit_snapshot(tier, TIER_FIELDS)))
    return tier


def tier_update(*, tier: Tier, audit: AuditContext | None = None, **fields) -> Tier:
    """Change a tier; a new name is carried to the POS prompts that name it."""
    unknown = set(fields) - set(TIER_FIELDS)
    if unknown:
        raise DomainError(f"Unknown field: {', '.join(sorted(unknown))}.", code="unknown_field")
    with db.atomic(durable=True):
        tier = Tier.objects.select_for_update().get(pk=tier.pk)
        old_name = tier.name
        before = audit_snapshot(tier, TIER_FIELDS)
        for name, value in fields.items():
            setattr(tier, name, value)
        _tier_validate(tier)
        _tier_save(tier)
        if tier.name != old_name:
            Prompt.objects.filter(company_id=tier.company_id, condition=Prompt.Condition.TIER,
                                  value__iexact=old_name).update(value=tier.name)
        catalog_changed(tier.company_id)
        tiers_recompute(company=tier.company)
        audit_record(audit=audit, company=tier.company_id, kind="tier.updated", obj=tier,
                     changes=audit_changes(before, audit_snapshot(tier, TIER_FIELDS)),
                     if_changed=True)
    return tier


def tier_delete(*, tier: Tier, audit: AuditContext | None = None) -> None:
    """Remove a tier that no offer or prompt depends on; its personas move down."""
    with db.atomic(durable=True):
        tier = Tier.objects.select_for_update().get(pk=tier.pk)
        offers = list(tier.offers.order_by("name").values_list("name", flat=True)[:3])
        if offers:
            raise DomainError(
                f"Offers are limited to {tier.name} ({', '.join(offers)}); take the tier off them "
                "first, or they would be open to everyone.", code="tier_in_use",
                extra={"field": "tier", "offers": offers})
        prompts = list(Prompt.objects.filter(company_id=tier.company_id, condition=Prompt.Condition.TIER,
                                             value__iexact=tier.name).values_list("name", flat=True)[:3])
        if prompts:
            raise DomainError(f"POS prompts fire on {tier.name} ({', '.join(prompts)}); change them first.",
                              code="tier_in_use", extra={"field": "tier", "prompts": prompts})
        company = tier.company
        audit_record(audit=audit, company=company, kind="tier.deleted", obj=tier,
                     changes=audit_changes(audit_snapshot(tier, TIER_FIELDS), None))
        tier.delete()
        tiers_recompute(company=company)


# Every persona of the company (or the given ones) gets the name of the highest tier they
# qualify for, or '' for none. Rows are locked in primary-key order before they are
# written, as the balance services lock them, so the two cannot deadlock.
_RECOMPUTE_SQL = """
WITH spend AS (
    SELECT t.persona_id, SUM(t.total) AS amount
    FROM loyalty_transaction t
    WHERE t.company_id = %(company)s AND t.status = %(completed)s
      AND t.occurred_at >= %(since)s AND t.persona_id IS NOT NULL {txn_filter}
    GROUP BY t.persona_id
), target AS (
    SELECT p.id, COALESCE((
        SELECT tier.name FROM loyalty_tier tier
        WHERE tier.company_id = p.company_id AND (
            (tier.threshold_kind = %(lifetime)s AND tier.threshold <= p.lifetime_points)
            OR (tier.threshold_kind = %(spend12)s AND tier.threshold <= COALESCE(s.amount, 0)))
        ORDER BY tier.earn_multiplier DESC, tier.threshold DESC, tier.id DESC
        LIMIT 1), '') AS tier
    FROM loyalty_persona p LEFT JOIN spend s ON s.persona_id = p.id
    WHERE p.company_id = %(company)s {persona_filter}
), changed AS (
    SELECT p.id, target.tier FROM loyalty_persona p JOIN target ON target.id = p.id
    WHERE p.tier IS DISTINCT FROM target.tier
    ORDER BY p.id
    FOR UPDATE OF p
)
UPDATE loyalty_persona p SET tier = changed.tier FROM changed WHERE p.id = changed.id
"""


def tiers_recompute(*, company, persona_ids=None) -> int:
    """Set each persona's tier (all of the company's, or `persona_ids`) in one statement.
    Returns how many personas changed tier."""
    params = {
        "company": company.pk, "completed": Transaction.Status.COMPLETED,
        "since": timezone.now() - timedelta(days=SPEND_WINDOW_DAYS),
        "lifetime": Tier.Threshold.LIFETIME_POINTS, "spend12": Tier.Threshold.SPEND_12M,
    }
    txn_filter = persona_filter = ""
    if persona_ids is not None:
        ids = sorted({int(pk) for pk in persona_ids if pk is not None})
        if not ids:
            return 0
        params["ids"] = ids
        txn_filter = "AND t.persona_id = ANY(%(ids)s)"
        persona_filter = "AND p.id = ANY(%(ids)s)"
    sql = _RECOMPUTE_SQL.format(txn_filter=txn_filter, persona_filter=persona_filter)
    with db.atomic(), connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.rowcount


# --- progress --------------------------------------------------------------------------------

class TierProgress(NamedTuple):
    """Where a persona stands: their tier, the next one up, and how far it is
    (`to_next` points for a points tier, an amount of money for a spend tier)."""

    current: Tier | None
    next: Tier | None
    to_next: int | Decimal | None

    @property
    def to_next_unit(self) -> str:
        if self.next is None:
            return ""
        return "points" if self.next.threshold_kind == Tier.Threshold.LIFETIME_POINTS else "spend"


def tiers_ranked(*, company) -> list[Tier]:
    """The company's tiers from the lowest to the highest."""
    return sorted(Tier.objects.filter(company=company),
                  key=lambda t: (t.earn_multiplier, t.threshold, t.pk))


def persona_spend_12m(persona: Persona) -> Decimal:
    since = timezone.now() - timedelta(days=SPEND_WINDOW_DAYS)
    total = (Transaction.objects.filter(persona=persona, status=Transaction.Status.COMPLETED,
                                        occurred_at__gte=since)
             .aggregate(total=Sum("total"))["total"])
    return total or Decimal("0")


def tier_progress(persona: Persona, *, tiers: list[Tier] | None = None) -> TierProgress:
    """The persona's tier as their points and spend stand now, the next tier up and what
    is missing to reach it. `tiers` (from `tiers_ranked`) saves the query when known."""
    if tiers is None:
        tiers = tiers_ranked(company=persona.company_id)
    if not tiers:
        return TierProgress(None, None, None)
    spend = None
    if any(t.threshold_kind == Tier.Threshold.SPEND_12M for t in tiers):
        spend = getattr(persona, "spend_12m", None)  # brought by personas_at_counter
        if spend is None:
            spend = persona_spend_12m(persona)

    def metric(tier: Tier):
        return persona.lifetime_points if tier.threshold_kind == Tier.Threshold.LIFETIME_POINTS else spend

    qualified = [i for i, t in enumerate(tiers) if metric(t) >= t.threshold]
    top = qualified[-1] if qualified else -1
    current = tiers[top] if top >= 0 else None
    following = tiers[top + 1] if top + 1 < len(tiers) else None
    if following is None:
        return TierProgress(current, None, None)
    missing = following.threshold - metric(following)
    if following.threshold_kind == Tier.Threshold.LIFETIME_POINTS:
        missing = max(1, math.ceil(missing))
    else:
        missing = max(Decimal("0.01"), missing.quantize(Decimal("0.01")))
    return TierProgress(current, following, missing)
