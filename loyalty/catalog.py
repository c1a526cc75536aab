"""A company's loyalty rules (program, offers, tiers, prompts) as one in-memory snapshot.

The POS asks for them on every lookup, and they change a few times a day. Each process
keeps the snapshot it built and a version number; any change to the rules bumps the
version in the shared cache (Redis), so every process rebuilds on its next read."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass

from django.core.cache import cache
from django.db import transaction

from .models import LoyaltyProgram, Offer, Prompt, Tier

MAX_AGE_SECONDS = 60  # a rebuild now and then, whatever happens to the version
_snapshots: dict[int, tuple[str, float, Catalog]] = {}


@dataclass(frozen=True)
class Catalog:
    program: LoyaltyProgram
    offers: list[Offer]  # active, each with _store_ids and _tier_names filled in
    tiers: list[Tier]  # lowest to highest
    prompts: list[Prompt]  # active


def _version_key(company_id: int) -> str:
    return f"loyalty-catalog:{company_id}"


def catalog_for(company) -> Catalog:
    version = cache.get(_version_key(company.pk)) or "0"
    held = _snapshots.get(company.pk)
    if held and held[0] == version and time.monotonic() - held[1] < MAX_AGE_SECONDS:
        return held[2]
    catalog = _build(company)
    _snapshots[company.pk] = (version, time.monotonic(), catalog)
    return catalog


def _build(company) -> Catalog:
    from .services.program import tiers_ranked

    offers = list(Offer.objects.filter(company=company, is_active=True).prefetch_related("stores", "tiers"))
    for offer in offers:
        offer._store_ids = frozenset(s.pk for s in offer.stores.all())
        offer._tier_names = frozenset(t.name for t in offer.tiers.all())
    return Catalog(
        program=LoyaltyProgram.objects.get_or_create(company=company)[0],
        offers=offers,
        tiers=tiers_ranked(company=company),
        prompts=list(Prompt.objects.filter(company=company, is_active=True).order_by("name", "pk")),
    )


def catalog_changed(company_id: int) -> None:
    """Call on any change to a company's rules: now, and again once it commits (so a
    process that rebuilt in between does not keep the old rules)."""
    def bump():
        cache.set(_version_key(company_id), uuid.uuid4().hex, None)

    bump()
    transaction.on_commit(bump)
