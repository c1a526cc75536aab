"""Audiences: reads, always scoped to a company, and the values the builder suggests."""

from __future__ import annotations

import hashlib

from django.core.cache import cache
from django.db import connection as db_connection
from django.db.models import Count, QuerySet
from django.shortcuts import get_object_or_404

from loyalty.models import LineItem, Persona, Source, Tier, Transaction
from stores.models import RetailStore
from stores.replica import reads_from_replica

from .models import Audience, AudienceMember

SUGGESTIONS_LIMIT = 50
SUGGESTIONS_SECONDS = 300  # the builder may offer values a few minutes old
LINE_FIELDS = {"categories": "category", "brands": "brand", "products": "product"}
FULFILLMENTS = tuple(Transaction.Fulfillment.values)


def audience_get(*, company, audience_id: int) -> Audience:
    """The company's audience; another company's id is the same 404 as a missing one."""
    return get_object_or_404(Audience, company=company, pk=audience_id)


def audiences_list(*, company) -> QuerySet[Audience]:
    return Audience.objects.filter(company=company).order_by("name", "pk")


def audiences_other(*, company, exclude_id: int | None = None) -> list[tuple[int, str]]:
    """(id, name) of the company's audiences a membership condition may name."""
    qs = Audience.objects.filter(company=company).order_by("name")
    if exclude_id is not None:
        qs = qs.exclude(pk=exclude_id)
    return list(qs.values_list("pk", "name"))


def audience_export_rows(*, audience: Audience):
    """The audience's current members with their contact fields, streamed from a
    server-side cursor. Only personas of the audience's company, however the rows came.
    From the replica when there is one, unless this browser has just saved (the audience)."""
    with reads_from_replica() as alias:
        members = AudienceMember.objects.using(alias)  # bound now: the rows are read after the view returns
    return (members
            .filter(audience=audience, persona__company_id=audience.company_id)
            .order_by("persona_id")
            .values_list("persona_id", "persona__first_name", "persona__last_name", "persona__email",
                         "persona__phone", "persona__sms_opt_in", "persona__email_opt_in",
                         "persona__is_member", "persona__points_balance", "persona__tier",
                         "persona__favourite_store__name", "persona__market")
            .iterator(chunk_size=2000))


def persona_total(*, company) -> int:
    """How many customers the company has (for "n% of all"), counted at most once a minute."""
    key = f"audiences:persona-total:{company.account_uid}"
    with reads_from_replica():
        return cache.get_or_set(key, lambda: Persona.objects.filter(company=company).count(), 60)


# --- suggestions for the builder ------------------------------------------------------------------

def _cached(company, name: str, compute):
    # account_uid is random per company, so a key never outlives its company's meaning.
    return cache.get_or_set(f"audiences:suggest:{company.account_uid}:{name}", compute, SUGGESTIONS_SECONDS)


def line_values(*, company, kind: str) -> list[str]:
    """The company's most bought categories, brands or products (completed sales, by line
    count), most frequent first."""
    field = LINE_FIELDS[kind]

    def compute():
        rows = (LineItem.objects.filter(transaction__company=company, transaction__status="completed")
                .exclude(**{field: ""})
                .values(field).annotate(n=Count("id")).order_by("-n", field)[:SUGGESTIONS_LIMIT])
        return [row[field] for row in rows]

    return _cached(company, kind, compute)


def top_categories(*, company, limit: int = 3) -> list[str]:
    return line_values(company=company, kind="categories")[:limit]


def tier_names(*, company) -> list[str]:
    names = list(Tier.objects.filter(company=company).order_by("threshold").values_list("name", flat=True))
    used = (Persona.objects.filter(company=company).exclude(tier="").exclude(tier__in=names)
            .values_list("tier", flat=True).distinct().order_by("tier")[:SUGGESTIONS_LIMIT])
    return names + list(used)


def market_values(*, company) -> list[str]:
    def compute():
        rows = (Persona.objects.filter(company=company).exclude(market="").values("market")
                .annotate(n=Count("id")).order_by("-n", "market")[:SUGGESTIONS_LIMIT])
        markets = [row["market"] for row in rows]
        states = RetailStore.objects.filter(company=company).exclude(state="").values_list("state", flat=True)
        return markets + sorted({s for s in states if s not in markets})

    return _cached(company, "markets", compute)


def source_names(*, company) -> list[str]:
    return list(Source.objects.filter(company=company).order_by("name").values_list("name", flat=True))


def store_choices(*, company) -> list[tuple[int, str]]:
    return list(RetailStore.objects.filter(company=company).order_by("name").values_list("pk", "name"))


def custom_trait_keys(*, company) -> list[str]:
    """The custom brand traits (e.g. CovaPricingGroup) the company's personas carry."""

    def compute():
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT k FROM loyalty_persona p, jsonb_object_keys(p.custom_traits) k "
                           "WHERE p.company_id = %s AND jsonb_typeof(p.custom_traits) = 'object' "
                           "GROUP BY k ORDER BY count(*) DESC, k LIMIT %s", [company.pk, SUGGESTIONS_LIMIT])
            return [row[0] for row in cursor.fetchall()]

    return _cached(company, "custom-keys", compute)


def custom_trait_values(*, company, key: str) -> list[str]:
    """The values one custom trait takes, most common first."""

    def compute():
        with db_connection.cursor() as cursor:
            cursor.execute("SELECT v FROM (SELECT p.custom_traits ->> %s::text AS v FROM loyalty_persona p "
                           "WHERE p.company_id = %s AND jsonb_typeof(p.custom_traits) = 'object') q "
                           "WHERE coalesce(v, '') <> '' GROUP BY v ORDER BY count(*) DESC, v LIMIT %s",
                           [key, company.pk, SUGGESTIONS_LIMIT])
            return [row[0] for row in cursor.fetchall()]

    # Keys are a brand's own words: hash them into the cache key.
    digest = hashlib.sha1(key.encode()).hexdigest()[:16]
    return _cached(company, f"custom-values:{digest}", compute)


def suggestions(*, company, kind: str, key: str = "") -> list[str]:
    """The values the builder offers for one `Trait.suggest` kind."""
    if kind in LINE_FIELDS:
        return line_values(company=company, kind=kind)
    if kind == "tiers":
        return tier_names(company=company)
    if kind == "markets":
        return market_values(company=company)
    if kind == "sources":
        return source_names(company=company)
    if kind == "custom":
        return custom_trait_values(company=company, key=key)
    if kind == "fulfillment":
        return list(FULFILLMENTS)
    return []
