import datetime as dt
import re
from dataclasses import dataclass

from django.db import connection
from django.db.models import F, Prefetch, Q, QuerySet
from django.http import Http404
from django.utils import timezone

from stores.models import AuditEvent, Membership, Role
from stores.selectors import audit_events

from .bounds import BUDTENDER_ADJUSTMENT_LIMIT_DEFAULT
from .models import (
    LineItem,
    LoyaltyProgram,
    Persona,
    PersonaBulkJob,
    PersonaIdentity,
    PersonaMerge,
    PointsEntry,
    Transaction,
)

# Column key -> ORDER BY. Every sort ends on id so pages never overlap or skip rows.
PERSONA_SORTS = {
    "name": ("last_name", "first_name"),
    "phone": ("phone",),
    "email": ("email",),
    "loyalty": ("is_member", "enrolled_at"),
    "points": ("points_balance",),
    "store": ("favourite_store__name",),
    "source": ("sourced_from__name",),
    "last_purchase": ("last_purchase_at",),
}
DEFAULT_SORT = "name"
NULLABLE_SORT_COLUMNS = {"enrolled_at", "favourite_store__name", "sourced_from__name",
                         "last_purchase_at"}


@dataclass
class PersonaFilters:
    q: str = ""
    member: str = ""  # "yes" / "no" / ""
    store_id: int | None = None
    source_id: int | None = None
    sort: str = DEFAULT_SORT
    descending: bool = False


def _search_q(q: str) -> Q:
    digits = re.sub(r"\D", "", q)
    if digits and re.fullmatch(r"[\d\s().+-]+", q):
        # Someone typing a phone number: match it however it was formatted.
        if len(digits) == 11 and digits.startswith("1"):
            digits = digits[1:]
        return Q(phone__contains=digits)
    if "@" in q:
        return Q(email__istartswith=q.lower())
    condition = Q()
    for word in q.split():
        condition &= (Q(first_name__istartswith=word) | Q(last_name__istartswith=word)
                      | Q(email__istartswith=word))
    return condition


def persona_list(*, company, filters: PersonaFilters) -> QuerySet[Persona]:
    qs = Persona.objects.filter(company=company).select_related("favourite_store", "sourced_from")
    if filters.q.strip():
        qs = qs.filter(_search_q(filters.q.strip()))
    if filters.member == "yes":
        qs = qs.filter(is_member=True)
    elif filters.member == "no":
        qs = qs.filter(is_member=False)
    if filters.store_id:
        qs = qs.filter(favourite_store_id=filters.store_id)
    if filters.source_id:
        qs = qs.filter(sourced_from_id=filters.source_id)
    columns = PERSONA_SORTS.get(filters.sort, PERSONA_SORTS[DEFAULT_SORT])
    # Blanks sort last either way; NULLS LAST only where a column can be null, so that
    # PostgreSQL can still walk the (company, column) indexes backwards for the rest.
    if filters.descending:
        order = [F(c).desc(nulls_last=True) if c in NULLABLE_SORT_COLUMNS else F(c).desc()
                 for c in columns] + ["-id"]
    else:
        order = [F(c).asc() for c in columns] + ["id"]
    return qs.order_by(*order)


def persona_erasure(*, persona: Persona):
    """The persona's ErasureRequest, or None (read with persona_get: no query)."""
    try:
        return persona.erasure
    except Persona.erasure.RelatedObjectDoesNotExist:
        return None


def persona_get(*, company, persona_id) -> Persona:
    """One persona of `company`; another company's id is a 404, as a missing one is."""
    try:
        return (Persona.objects.select_related("favourite_store", "sourced_from", "erasure__requested_by")
                .get(company=company, pk=persona_id))
    except (Persona.DoesNotExist, ValueError, TypeError):
        raise Http404("No such persona.") from None


def persona_identities(*, persona: Persona) -> QuerySet[PersonaIdentity]:
    return persona.identities.select_related("source").order_by("source__name", "external_id")


def persona_consents(*, persona: Persona):
    """The consents the customer gave or withdrew themselves, newest first."""
    return persona.consents.order_by("-created_at", "-id")[:50]


def persona_merged_into(*, company, persona_id) -> int | None:
    """The persona a merged-away persona lives on in (its records follow later merges)."""
    return (PersonaMerge.objects.filter(company=company, merged_persona_id=persona_id)
            .values_list("persona_id", flat=True).first())


def persona_merged_in(*, persona: Persona) -> QuerySet[PersonaMerge]:
    return persona.merged_in.select_related("staff_user").order_by("-merged_at", "-id")


ACTIVITY_SIZE = 50


def persona_activity(*, company, persona: Persona) -> list[AuditEvent]:
    """What staff did on this persona's card (and on the cards of personas merged into
    it): points adjustments, enrolment, merges, wallet grants. Newest first."""
    merged = PersonaMerge.objects.filter(company=company, persona=persona).values("merged_persona_id")
    return list(audit_events(company=company).filter(object_type="persona")
                .filter(Q(object_id=persona.pk) | Q(object_id__in=merged))[:ACTIVITY_SIZE])


def persona_possible_duplicates(*, persona: Persona, limit: int = 5) -> list[Persona]:
    """Other personas of the company with the same phone or email: likely the same
    customer, known twice."""
    same = Q()
    if persona.phone:
        same |= Q(phone=persona.phone)
    if persona.email:
        same |= Q(email__iexact=persona.email)
    if not same:
        return []
    return list(Persona.objects.filter(same, company_id=persona.company_id).exclude(pk=persona.pk)
                .order_by("id")[:limit])


def persona_ledger(*, persona: Persona, limit: int = 50) -> QuerySet[PointsEntry]:
    return (persona.points_entries.select_related("staff_user", "transaction")
            .order_by("-created_at", "-id")[:limit])


def persona_orders(*, persona: Persona, limit: int = 20) -> QuerySet[Transaction]:
    return (persona.transactions.select_related("store", "source")
            .prefetch_related(Prefetch("line_items", queryset=LineItem.objects.order_by("line_no")),
                              "payments")
            .order_by("-occurred_at", "-id")[:limit])


def loyalty_program_get(*, company) -> LoyaltyProgram:
    """The company's program (a Company or its id), made with the defaults on first use."""
    return LoyaltyProgram.objects.get_or_create(company_id=getattr(company, "pk", company))[0]


def staff_role(*, company, user) -> str | None:
    """`user`'s role in the company (a Company or its id); None for someone not on its staff."""
    return (Membership.objects.filter(company_id=getattr(company, "pk", company), user=user)
            .values_list("role", flat=True).first())


def points_adjust_limit(*, company, role: str | None) -> int | None:
    """The most points staff with `role` may add or take back at a time: None for admins
    (only the ledger's columns bound them), the program's budtender limit for anyone else."""
    if role == Role.ADMIN:
        return None
    limit = (LoyaltyProgram.objects.filter(company_id=getattr(company, "pk", company))
             .values_list("budtender_adjustment_limit", flat=True).first())
    return BUDTENDER_ADJUSTMENT_LIMIT_DEFAULT if limit is None else limit


# --- loyalty engine settings pages and the persona card ---------------------------------------

def _scoped_get(model, *, company, pk, what: str):
    try:
        return model.objects.get(company=company, pk=pk)
    except (model.DoesNotExist, ValueError, TypeError):
        raise Http404(f"No such {what}.") from None


def tier_get(*, company, tier_id):
    from .models import Tier

    return _scoped_get(Tier, company=company, pk=tier_id, what="tier")


def offer_get(*, company, offer_id):
    from .models import Offer

    return _scoped_get(Offer, company=company, pk=offer_id, what="offer")


def prompt_get(*, company, prompt_id):
    from .models import Prompt

    return _scoped_get(Prompt, company=company, pk=prompt_id, what="prompt")


def offers_list(*, company):
    from django.db.models import Count

    from .models import Offer

    return (Offer.objects.filter(company=company).prefetch_related("stores", "tiers")
            .annotate(held=Count("wallet_items", distinct=True)).order_by("name"))


def offers_grantable(*, company):
    """Active offers a staff member can put in a wallet now."""
    from django.utils import timezone

    from .models import Offer

    now = timezone.now()
    return (Offer.objects.filter(company=company, is_active=True)
            .filter(Q(starts_at__isnull=True) | Q(starts_at__lte=now))
            .filter(Q(ends_at__isnull=True) | Q(ends_at__gt=now)).order_by("name"))


def prompts_list(*, company):
    from .models import Prompt

    return Prompt.objects.filter(company=company).order_by("name")


def persona_wallet(*, persona: Persona, limit: int = 50):
    return (persona.wallet.select_related("offer", "granted_by")
            .order_by("-created_at", "-id")[:limit])


def persona_redemptions(*, persona: Persona, limit: int = 50):
    from .models import Redemption

    return (Redemption.objects.filter(persona=persona).select_related("offer", "store", "transaction")
            .order_by("-created_at", "-id")[:limit])


# The POS looks a customer up on every scan. One query brings the persona with what the
# counter needs beside it (is a lock overdue, the wallet, how often each offer is held),
# instead of four: at the register, round trips are the cost. It runs on a plain cursor
# and builds the Persona with from_db: a RawQuerySet re-derives its column mapping on
# every call, which cost more than the query itself.
_COUNTER_SQL = """
SELECT {columns},
  EXISTS (SELECT 1 FROM loyalty_redemption r WHERE r.persona_id = p.id AND r.state = 'locked'
          AND r.locked_until <= now()) AS has_overdue_lock,
  (SELECT coalesce(json_agg(json_build_object('id', w.id, 'offer_id', w.offer_id, 'code', w.code)
                            ORDER BY w.created_at DESC, w.id DESC), '[]'::json)
     FROM loyalty_walletitem w WHERE w.persona_id = p.id AND w.state = 'available') AS wallet_available,
  {held} AS offers_held,
  {spend} AS spend_12m
FROM loyalty_persona p
WHERE p.company_id = %(company)s AND {match}
ORDER BY p.id
LIMIT %(limit)s
"""
# How often each offer is held, for per-customer limits; skipped when no offer has one.
_COUNTER_HELD = """(SELECT coalesce(json_object_agg(h.offer_id, h.n), '{}'::json) FROM (
     SELECT offer_id, count(*) AS n FROM (
       SELECT offer_id FROM loyalty_walletitem WHERE persona_id = p.id
       UNION ALL
       SELECT offer_id FROM loyalty_redemption WHERE persona_id = p.id AND wallet_item_id IS NULL
         AND state = ANY(%(holding)s)) held GROUP BY offer_id) h)"""
# Completed sales of the last 12 months, for tiers on spend (as persona_spend_12m).
_COUNTER_SPEND = """(SELECT coalesce(sum(t.total), 0) FROM loyalty_transaction t
     WHERE t.persona_id = p.id AND t.status = 'completed'
       AND t.occurred_at >= %(spend_since)s::timestamptz)"""
_COUNTER_MATCH = {
    "phone": "p.phone = %(value)s::text",
    "email": "lower(p.email) = lower(%(value)s::text)",
    "persona_id": "p.id = %(value)s::bigint",
    "external_id": "p.id IN (SELECT i.persona_id FROM loyalty_personaidentity i "
                   "WHERE i.company_id = %(company)s AND i.external_id = %(value)s::text)",
    "wallet_code": "p.id IN (SELECT w.persona_id FROM loyalty_walletitem w "
                   "WHERE w.company_id = %(company)s AND w.code = %(value)s::text)",
}
# What the counter shows and decides on, in the model's order (as from_db reads them);
# the other fields load on first use.
_COUNTER_FIELDS = tuple(f.attname for f in Persona._meta.concrete_fields if f.attname in {
    "id", "company_id", "first_name", "last_name", "phone", "email", "birth_date", "is_member",
    "points_balance", "lifetime_points", "tier"})
_COUNTER_QUERIES = {
    (by, with_held, with_spend): _COUNTER_SQL.format(
        columns=", ".join(f"p.{name}" for name in _COUNTER_FIELDS), match=match,
        held=_COUNTER_HELD if with_held else "NULL::json", spend=_COUNTER_SPEND if with_spend else "NULL")
    for by, match in _COUNTER_MATCH.items() for with_held in (True, False) for with_spend in (True, False)}


def personas_at_counter(*, company, by: str, value, limit: int = 6, with_offers_held: bool = True,
                        with_spend_12m: bool = False) -> list[Persona]:
    """Personas matching `by` (phone, email, persona_id, external_id or wallet_code) exactly, with the
    fields the counter shows (the others load on first use), each with has_overdue_lock,
    wallet_items (available, newest first, unsaved WalletItem objects carrying id,
    offer_id and code), with_offers_held offers_held ({offer id: times held}) and with_spend_12m
    spend_12m (for tiers on spend)."""
    from .models import Redemption, WalletItem
    from .services.program import SPEND_WINDOW_DAYS

    params = {"company": company.pk, "value": value, "limit": limit}
    if with_offers_held:
        params["holding"] = list(Redemption.HOLDING)
    if with_spend_12m:
        params["spend_since"] = timezone.now() - dt.timedelta(days=SPEND_WINDOW_DAYS)
    with connection.cursor() as cursor:
        cursor.execute(_COUNTER_QUERIES[by, with_offers_held, with_spend_12m], params)
        rows = cursor.fetchall()
    width = len(_COUNTER_FIELDS)
    personas = []
    for row in rows:
        persona = Persona.from_db(connection.alias, _COUNTER_FIELDS, row[:width])
        persona.has_overdue_lock, wallet_available, offers_held, spend_12m = row[width:]
        if spend_12m is not None:
            persona.spend_12m = spend_12m
        persona.wallet_items = [
            WalletItem(pk=w["id"], offer_id=w["offer_id"], persona_id=persona.pk, company_id=company.pk,
                       state=WalletItem.State.AVAILABLE, code=w["code"]) for w in wallet_available]
        if offers_held is not None:
            persona.offers_held = {int(k): n for k, n in offers_held.items()}
        personas.append(persona)
    return personas


def personas_selected(*, company, filters: PersonaFilters, persona_ids: list[int],
                      all_matching: bool) -> QuerySet[Persona]:
    """The personas a bulk action on the list is about: every one the list's filters
    match ("Select all N matching"), or the ids ticked. A ticked id that is not this
    company's persona is a 404, as it would be on its card."""
    if all_matching:
        return persona_list(company=company, filters=filters)
    wanted = set(persona_ids)
    qs = Persona.objects.filter(company=company, pk__in=wanted).order_by("pk")
    if len(wanted) != qs.count():
        raise Http404("No such persona.")
    return qs


BULK_JOBS_SHOWN_FOR = dt.timedelta(minutes=15)


def persona_bulk_jobs_recent(*, company) -> list[PersonaBulkJob]:
    """The company's background bulk jobs still running, or over in the last minutes."""
    since = timezone.now() - BULK_JOBS_SHOWN_FOR
    return list(PersonaBulkJob.objects.filter(company=company, in_background=True)
                .filter(Q(finished_at__isnull=True) | Q(finished_at__gte=since))
                .defer("persona_ids").select_related("created_by").order_by("-created_at")[:5])
