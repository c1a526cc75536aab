"""Shared reads of the customer pages."""

from datetime import timedelta

from django.db.models import Max
from django.utils import timezone

from loyalty.models import LoyaltyProgram, PointsEntry
from stores.models import Company

from .models import CustomerSession, LoyaltyPageSettings


def page_settings(company) -> LoyaltyPageSettings:
    """The company's loyalty page settings (defaults until saved once)."""
    settings, _ = LoyaltyPageSettings.objects.get_or_create(company=company)
    return settings


def open_page_company(slug: str):
    """The company whose loyalty page is open at `slug`, with its page settings and loyalty
    program read in the same query (company.loyalty_page, company.program_or_none); None
    for an unknown company or a page that is off."""
    company = (Company.objects.select_related("loyalty_page", "loyalty_program")
               .filter(slug=slug).first())
    if company is None:
        return None
    try:
        if not company.loyalty_page.enabled:
            return None
    except LoyaltyPageSettings.DoesNotExist:
        return None
    try:
        company.program_or_none = company.loyalty_program
    except LoyaltyProgram.DoesNotExist:
        company.program_or_none = None
    return company


# --- My points -----------------------------------------------------------------------------------

HISTORY_PAGE_SIZE = 20
# The balance is shown as "expiring soon" this many days before it would run out.
EXPIRY_WARNING_DAYS = 30


def points_history(*, persona, page: int = 1, size: int = HISTORY_PAGE_SIZE):
    """One page of the persona's ledger, newest first, with each entry's store (through its
    sale): (entries, has_next). One indexed query (points_entry_persona_idx), no count."""
    start = (max(page, 1) - 1) * size
    rows = list(PointsEntry.objects.filter(persona=persona)
                .select_related("transaction__store").only(
                    "delta", "kind", "reason", "created_at", "balance_after",
                    "transaction__store__name")
                .order_by("-created_at", "-id")[start:start + size + 1])
    return rows[:size], len(rows) > size


def points_expiry(*, persona, program, last_entry_at=None):
    """When the persona's whole balance runs out if nothing happens (the program expires
    points after `expiry_months` without activity: loyalty.services.points.points_expire),
    or None when it never does or there is nothing to lose."""
    if program is None or not program.expiry_months or persona.points_balance <= 0:
        return None
    if last_entry_at is None:
        last_entry_at = (PointsEntry.objects.filter(persona=persona).order_by("-created_at")
                         .values_list("created_at", flat=True).first())
    last = max(filter(None, [last_entry_at, persona.last_purchase_at]), default=None)
    if last is None:
        return None
    return last + timedelta(days=round(program.expiry_months * 30.44))


def last_signed_in_fact(persona) -> list[tuple[str, str]]:
    """For the persona card: when the customer last used the loyalty page."""
    last = CustomerSession.objects.filter(persona=persona).aggregate(last=Max("last_seen_at"))["last"]
    if last is None:
        return []
    when = timezone.localtime(last)
    return [("Loyalty page", f"Signed in to the loyalty page: last {when:%b} {when.day}, {when:%Y %H:%M}")]
