"""Reads for the waiting room: which queues a user may see, today's queue, and the
customer profile a budtender opens beside it."""

from dataclasses import dataclass

from django.db.models import Count, Exists, F, Q, QuerySet, Sum
from django.http import Http404
from django.utils import timezone

from loyalty import selectors as loyalty_selectors
from loyalty.models import LineItem, Persona, Transaction, WalletItem
from loyalty.services.program import tier_progress
from stores.models import RetailStore, Role

from .models import IN_LINE, QueueEntry
from .services import store_local_date


@dataclass
class QueueAccess:
    """The stores whose queue the user may open, and why there may be none."""

    stores: list[RetailStore]
    # Plain words for an empty list: what is turned off, and where to turn it on.
    reason: str = ""
    # For admins, who still see the queue: that budtenders do not.
    notice: str = ""


def queue_access(*, membership) -> QueueAccess:
    company = membership.company
    notice = ""
    if not loyalty_selectors.loyalty_program_get(company=company).budtenders_see_queue:
        if membership.role != Role.ADMIN:
            return QueueAccess([], "The waiting-room queue is turned off for budtenders in the "
                                   "loyalty settings. Ask an admin to turn on “Budtenders can "
                                   "see the waiting-room queue”.")
        notice = ("Budtenders cannot see this queue: “Budtenders can see the waiting-room queue” "
                  "is off in the loyalty settings.")
    stores = company.stores.filter(opt_in_queue_enabled=True).select_related("company")
    if membership.role != Role.ADMIN:
        # A member tied to some stores sees those; no stores means every store.
        theirs = RetailStore.objects.filter(memberships=membership).values("pk")
        stores = stores.filter(Q(pk__in=theirs) | ~Exists(theirs))
    enabled = list(stores)
    if not enabled:
        return QueueAccess([], "No store of yours has the opt-in queue turned on. It is turned "
                               "on per store, under Settings › Retail stores › Edit › "
                               "Additional settings.")
    return QueueAccess(enabled, notice=notice)


def queue_store_get(*, access: QueueAccess, store_id) -> RetailStore:
    """A store whose queue this user may open; anything else is a 404."""
    for store in access.stores:
        if str(store.pk) == str(store_id):
            return store
    raise Http404("No such queue.")


def checkin_store_get(*, token: str) -> RetailStore:
    """The store a kiosk link belongs to, while its queue is on; otherwise a 404."""
    store = (RetailStore.objects.select_related("company")
             .filter(checkin_token=token, opt_in_queue_enabled=True).first())
    if store is None:
        raise Http404("This check-in link is not active.")
    return store


def queue_today(*, store: RetailStore) -> QuerySet[QueueEntry]:
    """Who is in line at the store today (its own clock), first come first."""
    today = store_local_date(store, timezone.now())
    # Only what a row shows: the queue is drawn every two seconds on every open screen.
    return (QueueEntry.objects.filter(store=store, local_date=today, state__in=IN_LINE)
            .select_related("persona", "served_by")
            .only("state", "checked_in_at", "persona__first_name", "persona__last_name",
                  "persona__email", "persona__phone", "persona__is_member", "served_by__username")
            .order_by("checked_in_at", "id"))


def queue_waiting_counts(*, stores: list[RetailStore]) -> dict[int, int]:
    """How many are in line today at each store, in one query."""
    if not stores:
        return {}
    today = {store.pk: store_local_date(store, timezone.now()) for store in stores}
    match = Q()
    for store_id, day in today.items():
        match |= Q(store_id=store_id, local_date=day)
    rows = (QueueEntry.objects.filter(match, state__in=IN_LINE).values("store_id")
            .annotate(n=Count("id")).values_list("store_id", "n"))
    return dict(rows)


def queue_entry_get(*, store: RetailStore, entry_id) -> QueueEntry:
    try:
        return (QueueEntry.objects.select_related("persona", "company")
                .get(store=store, pk=entry_id))
    except (QueueEntry.DoesNotExist, ValueError, TypeError):
        raise Http404("No such queue entry.") from None


def queue_position(*, entry: QueueEntry) -> int:
    """1 for the first in line."""
    return QueueEntry.objects.filter(
        store_id=entry.store_id, local_date=entry.local_date, state__in=IN_LINE,
        checked_in_at__lte=entry.checked_in_at).exclude(
        Q(checked_in_at=entry.checked_in_at) & Q(pk__gt=entry.pk)).count()


def persona_preferences(*, persona: Persona, limit: int = 5) -> dict[str, list[dict]]:
    """Top categories, brands and products from completed purchases, by what was spent."""
    lines = LineItem.objects.filter(transaction__persona=persona,
                                    transaction__status=Transaction.Status.COMPLETED)
    preferences = {}
    for field in ("category", "brand", "product"):
        preferences[field] = list(
            lines.exclude(**{field: ""}).values(name=F(field))
            .annotate(orders=Count("transaction", distinct=True), spent=Sum("total"))
            .order_by("-spent", "name")[:limit])
    return preferences


def persona_profile(*, persona: Persona) -> dict:
    """Everything the profile panel shows about a customer."""
    company = persona.company
    affordable = (loyalty_selectors.offers_grantable(company=company)
                  .filter(points_cost__gt=0, points_cost__lte=persona.points_balance))
    return {
        "persona": persona,
        "tier": tier_progress(persona),
        "wallet": list(persona.wallet.filter(state=WalletItem.State.AVAILABLE)
                       .select_related("offer").order_by("-created_at", "-id")[:20]),
        "affordable": list(affordable[:10]),
        "preferences": persona_preferences(persona=persona),
        "orders": loyalty_selectors.persona_orders(persona=persona, limit=10),
    }
