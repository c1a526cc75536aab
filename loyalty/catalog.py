"""A company's loyalty rules (program, offers, tiers, prompts) as one in-memory snapshot.

The POS asks for them on every lookup, and they change a few times a day. Each process
keeps the snapshot it built and a version number; any change to the rules bumps the
version in the shared cache (Redis), so every process rebuilds on its next read."""

from __future__ import annotations

import time
from dataclasses import dataclass

from stores.versions import version_bump, version_get

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
    """The company's rules; `company` may be a Company or its id."""
    company_id = getattr(company, "pk", company)
    version = version_get(_version_key(company_id))
    held = _snapshots.get(company_id)
    if held and held[0] == version and time.monotonic() - held[1] < MAX_AGE_SECONDS:
        return held[2]
    catalog = _build(company_id)
    _snapshots[company_id] = (version, time.monotonic(), catalog)
    return catalog


def _build(company_id: int) -> Catalog:
    from .selectors import loyalty_program_get
    from .services.program import tiers_ranked

    offers = list(Offer.objects.filter(company_id=company_id, is_active=True)
                  .prefetch_related("stores", "tiers"))
    for offer in offers:
        offer._store_ids = frozenset(s.pk for s in offer.stores.all())
        offer._tier_names = frozenset(t.name for t in offer.tiers.all())
    return Catalog(
        program=loyalty_program_get(company=company_id),
        offers=offers,
        tiers=tiers_ranked(company=company_id),
        prompts=list(Prompt.objects.filter(company_id=company_id, is_active=True).order_by("name", "pk")),
    )


def catalog_changed(company_id: int) -> None:
    """Call on any change to a company's rules."""
    version_bump(_version_key(company_id))
