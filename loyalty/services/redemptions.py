"""Rewards at the counter: which offers a basket can use, buying offers into the wallet,
redeem / reinstate, lock / unlock, and lock expiry.

Points leave the balance the moment a reward is locked or redeemed (a `redeem` ledger
entry) and come back when it is unlocked, expires or is reinstated (`reinstate`). Every
change happens under the persona's row lock, so concurrent redemptions can never spend
the same points twice.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from functools import cached_property

from django.db import IntegrityError, connection
from django.db import transaction as db
from django.db.models import Count
from django.http import Http404
from django.utils import timezone

from stores.errors import DomainError

from ..catalog import catalog_for
from ..locks import (
    persona_lock,
    personas_lock,
    redemptions_expired_lock,
    redemptions_lock,
    wallet_items_lock,
)
from ..models import LoyaltyProgram, Offer, Persona, PointsEntry, Redemption, WalletItem
from .points import entry_append_locked, personas_save_derived_locked
from .webhooks import webhook_event_emit

CENT = Decimal("0.01")


def _redemption_changed(redemption: Redemption) -> None:
    webhook_event_emit(company=redemption.company, event="redemption.changed", payload={
        "redemption_id": redemption.pk, "persona_id": redemption.persona_id, "offer_id": redemption.offer_id,
        "cart_id": redemption.cart_id, "state": redemption.state, "points": redemption.points,
        "discount_amount": str(redemption.discount_amount)})


class RedemptionRefused(DomainError):
    code = "redemption_refused"
    status = 409


class RedemptionReleased(RedemptionRefused):
    """A sale closes on a reward whose points already came back."""

    code = "redemption_released"


@dataclass
class BasketItem:
    sku: str = ""
    product: str = ""
    brand: str = ""
    category: str = ""
    quantity: Decimal = Decimal("1")
    unit_price: Decimal = Decimal("0")
    subtotal: Decimal | None = None
    tax_included: Decimal = Decimal("0")

    @property
    def amount(self) -> Decimal:
        return self.subtotal if self.subtotal is not None else (self.quantity * self.unit_price)


@dataclass
class Basket:
    items: list[BasketItem] = field(default_factory=list)
    subtotal: Decimal | None = None
    tax_total: Decimal = Decimal("0")
    store_id: int | None = None

    # Cached: every offer on the lookup asks again, and a basket does not change.
    @cached_property
    def pre_tax(self) -> Decimal:
        if self.subtotal is not None:
            return self.subtotal
        return sum((i.amount for i in self.items), Decimal("0"))

    @cached_property
    def categories(self) -> set[str]:
        return {i.category.strip().lower() for i in self.items if i.category}

    @cached_property
    def brands(self) -> set[str]:
        return {i.brand.strip().lower() for i in self.items if i.brand}


@dataclass
class UsableReward:
    offer: Offer
    discount: Decimal
    points: int  # what redeeming it costs now (0 for a wallet item already paid for)
    wallet_item: WalletItem | None = None
    affordable: bool = True


def offer_discount(*, offer: Offer, program: LoyaltyProgram, basket: Basket, persona: Persona | None,
                   now: dt.datetime | None = None) -> Decimal | None:
    """The cart discount `offer` gives on `basket`, or None when it does not apply."""
    now = now or timezone.now()
    if not offer.is_active or (offer.starts_at and now < offer.starts_at) or (
            offer.ends_at and now >= offer.ends_at):
        return None
    # The catalog's offers carry their stores and tiers; others ask the database.
    store_ids = getattr(offer, "_store_ids", None)
    if store_ids is None:
        store_ids = {s.pk for s in offer.stores.all()}
    if store_ids and basket.store_id not in store_ids:
        return None
    tier_names = getattr(offer, "_tier_names", None)
    if tier_names is None:
        tier_names = {t.name for t in offer.tiers.all()}
    if tier_names and (persona is None or persona.tier not in tier_names):
        return None
    pre_tax = basket.pre_tax
    if pre_tax < offer.min_subtotal:
        return None
    if offer.categories and not basket.categories & {c.strip().lower() for c in offer.categories}:
        return None
    if offer.brands and not basket.brands & {b.strip().lower() for b in offer.brands}:
        return None
    applies = offer.applies or program.discount_applies
    base = pre_tax + basket.tax_total if applies == "after_tax" else pre_tax
    if offer.kind == Offer.Kind.PERCENT:
        discount = (base * offer.amount / 100).quantize(CENT, rounding=ROUND_HALF_UP)
    else:
        discount = offer.amount
    return max(Decimal("0"), min(discount, base)).quantize(CENT)


def offer_limit_reached(persona: Persona, offer: Offer, held: dict[int, int] | None = None) -> bool:
    if offer.limit_per_persona is None:
        return False
    times = held.get(offer.pk, 0) if held is not None else offer_times_held(persona, offer)
    return times >= offer.limit_per_persona


def offer_times_held(persona: Persona, offer: Offer) -> int:
    """How often the persona holds `offer`, for its per-customer limit: wallet items, plus
    rewards applied straight from points that still hold their points."""
    return offers_times_held(persona, [offer.pk]).get(offer.pk, 0)


def offers_times_held(persona: Persona, offer_ids: list[int]) -> dict[int, int]:
    """offer_times_held for several offers in two queries."""
    held: dict[int, int] = {}
    if not offer_ids:
        return held
    for rows in (
        WalletItem.objects.filter(persona=persona, offer_id__in=offer_ids),
        Redemption.objects.filter(persona=persona, offer_id__in=offer_ids, wallet_item__isnull=True,
                                  state__in=Redemption.HOLDING),
    ):
        for offer_id, count in rows.values("offer_id").annotate(n=Count("id")).values_list("offer_id", "n"):
            held[offer_id] = held.get(offer_id, 0) + count
    return held


def rewards_usable(*, company, persona: Persona, basket: Basket | None, catalog=None) -> list[UsableReward]:
    """Wallet items and points offers this persona can use now; with a basket, only those
    that apply to it, each with its computed discount. A persona from personas_at_counter
    brings its wallet and held counts along, which saves the queries."""
    catalog = catalog or catalog_for(company)
    program = catalog.program
    offers_by_id = {offer.pk: offer for offer in catalog.offers}
    rewards: list[UsableReward] = []
    basket_or_empty = basket or Basket()
    wallet = getattr(persona, "wallet_items", None)
    if wallet is None:
        wallet = (WalletItem.objects.filter(persona=persona, state=WalletItem.State.AVAILABLE)
                  .order_by("-created_at", "-pk"))
    for item in wallet:
        offer = offers_by_id.get(item.offer_id)
        if offer is None:  # switched off since it was bought
            continue
        discount = offer_discount(offer=offer, program=program, basket=basket_or_empty, persona=persona)
        if basket is not None and discount is None:
            continue
        rewards.append(UsableReward(offer, discount or Decimal("0"), 0, wallet_item=item))
    held = getattr(persona, "offers_held", None)
    if held is None:
        held = offers_times_held(persona, [o.pk for o in catalog.offers if o.limit_per_persona is not None])
    for offer in catalog.offers:
        if offer.points_cost <= 0:
            continue
        discount = offer_discount(offer=offer, program=program, basket=basket_or_empty, persona=persona)
        if basket is not None and discount is None:
            continue
        if offer_limit_reached(persona, offer, held):
            continue
        rewards.append(UsableReward(offer, discount or Decimal("0"), offer.points_cost,
                                    affordable=persona.points_balance >= offer.points_cost))
    return rewards


def _offer_get(company, offer_id) -> Offer:
    try:
        return Offer.objects.prefetch_related("stores", "tiers").get(company=company, pk=offer_id)
    except (Offer.DoesNotExist, ValueError, TypeError):
        raise Http404("No such offer.") from None


def _spend_locked(persona: Persona, points: int, *, key: str, reason: str) -> None:
    if points <= 0:
        return
    if persona.points_balance < points:
        raise RedemptionRefused(
            f"Not enough points: the balance is {persona.points_balance} and this needs {points}.",
            code="insufficient_points", extra={"balance": persona.points_balance, "needed": points})
    entry_append_locked(persona=persona, delta=-points, kind=PointsEntry.Kind.REDEEM,
                        idempotency_key=key, reason=reason)


def _give_back_locked(persona: Persona, redemption: Redemption, *, reason: str) -> None:
    if redemption.points <= 0:
        return
    entry_append_locked(persona=persona, delta=redemption.points, kind=PointsEntry.Kind.REINSTATE,
                        idempotency_key=f"redemption:{redemption.pk}:back", reason=reason)


def offer_purchase(*, company, persona_id: int, offer_id: int, source: str = WalletItem.Source.POS,
                   purchase_token: str | None = None) -> WalletItem:
    """Spend points to put an offer in the persona's wallet. With `purchase_token` (one per
    buy form shown on the loyalty page), the same token again returns the item it bought,
    charging nothing more: the check runs under the persona's lock."""
    with db.atomic(durable=True):
        persona = persona_lock(company=company, persona_id=persona_id)
        if purchase_token:
            bought = WalletItem.objects.filter(persona=persona, purchase_token=purchase_token).first()
            if bought is not None:
                return bought
        offer = _offer_get(company, offer_id)
        if not offer.is_active:
            raise RedemptionRefused(f"Offer '{offer.name}' is not active.", code="offer_inactive")
        now = timezone.now()
        if (offer.starts_at and now < offer.starts_at) or (offer.ends_at and now >= offer.ends_at):
            raise RedemptionRefused(f"Offer '{offer.name}' is outside its validity window.",
                                    code="offer_not_valid_now")
        tier_names = {t.name for t in offer.tiers.all()}
        if tier_names and persona.tier not in tier_names:
            raise RedemptionRefused(f"Offer '{offer.name}' is for the {', '.join(sorted(tier_names))} "
                                    f"tier{'s' * (len(tier_names) > 1)} only.", code="offer_tier",
                                    extra={"tiers": sorted(tier_names)})
        if offer_limit_reached(persona, offer):
            raise RedemptionRefused(f"This customer already used offer '{offer.name}' "
                                    f"{offer.limit_per_persona} time(s), its limit.", code="offer_limit")
        item = WalletItem.objects.create(company=company, persona=persona, offer=offer,
                                         points_paid=offer.points_cost, source=source,
                                         purchase_token=purchase_token or None)
        _spend_locked(persona, offer.points_cost, key=f"wallet:{item.pk}:purchase",
                      reason=f"Bought offer '{offer.name}'")
        personas_save_derived_locked([persona])
        webhook_event_emit(company=company, event="offer.issued", payload={
            "wallet_item_id": item.pk, "persona_id": persona.pk, "offer_id": offer.pk,
            "offer_name": offer.name, "points_paid": item.points_paid, "source": "purchase"})
        return item


def redemption_apply(*, company, persona_id: int, cart_id: str, basket: Basket, offer_id: int | None = None,
                     wallet_item_id: int | None = None, lock: bool = False) -> Redemption:
    """Apply a reward to an open cart: redeem it now, or (`lock`) hold its points for the
    program's lock time. Locking the same cart again recomputes the discount and extends
    the hold. At most one loyalty discount per cart."""
    cart_id = (cart_id or "").strip()
    if not cart_id:
        raise DomainError("cart_id: the POS's cart or transaction id is required.",
                          extra={"field": "cart_id"})
    if (offer_id is None) == (wallet_item_id is None):
        raise DomainError("Send either offer_id or wallet_item_id.", extra={"field": "offer_id"})
    program = catalog_for(company).program
    with db.atomic(durable=True):
        persona = persona_lock(company=company, persona_id=persona_id)
        _locks_expire_for_locked(persona)
        wallet_item = None
        if wallet_item_id is not None:
            wallet_item = wallet_items_lock(persona=persona, ids=[wallet_item_id]).get(wallet_item_id)
            if wallet_item is None:
                raise Http404("No such wallet item for this persona.")
            if wallet_item.state != WalletItem.State.AVAILABLE:
                raise RedemptionRefused("That wallet item was already used.", code="wallet_item_used")
            offer = _offer_get(company, wallet_item.offer_id)
        else:
            offer = _offer_get(company, offer_id)
        existing = Redemption.objects.filter(company=company, cart_id=cart_id,
                                             state__in=Redemption.HOLDING).first()
        if existing is not None:
            same = existing.offer_id == offer.pk and existing.persona_id == persona.pk
            if not (lock and same and existing.state == Redemption.State.LOCKED):
                raise RedemptionRefused(
                    f"Cart {cart_id} already has a loyalty discount ({existing.offer.name}, "
                    f"{existing.state}); only one per order.", code="one_discount_per_order",
                    extra={"redemption_id": existing.pk})
        discount = offer_discount(offer=offer, program=program, basket=basket, persona=persona)
        if discount is None:
            raise RedemptionRefused(f"Offer '{offer.name}' does not apply to this basket.",
                                    code="offer_not_applicable")
        if existing is not None:  # the same lock again, after the cart changed
            existing = next(iter(redemptions_lock(persona=persona, ids=[existing.pk],
                                                  states=[Redemption.State.LOCKED])), None)
        if existing is not None:
            existing.discount_amount = discount
            existing.locked_until = timezone.now() + dt.timedelta(minutes=program.lock_ttl_minutes)
            existing.store_id = basket.store_id or existing.store_id
            existing.save(update_fields=["discount_amount", "locked_until", "store", "updated_at"])
            _redemption_changed(existing)
            return existing
        if wallet_item is None and offer_limit_reached(persona, offer):
            raise RedemptionRefused(f"This customer reached the limit of offer '{offer.name}'.",
                                    code="offer_limit")
        points = 0 if wallet_item is not None else offer.points_cost
        if persona.points_balance < points:
            raise RedemptionRefused(
                f"Not enough points: the balance is {persona.points_balance} and '{offer.name}' costs "
                f"{points}.", code="insufficient_points",
                extra={"balance": persona.points_balance, "needed": points})
        state = Redemption.State.LOCKED if lock else Redemption.State.REDEEMED
        try:
            with db.atomic():
                redemption = Redemption.objects.create(
                    company=company, persona=persona, offer=offer, wallet_item=wallet_item,
                    store_id=basket.store_id, cart_id=cart_id, state=state, points=points,
                    discount_amount=discount,
                    locked_until=(timezone.now() + dt.timedelta(minutes=program.lock_ttl_minutes)
                                  if lock else None))
        except IntegrityError:  # another register put a discount on this cart meanwhile
            raise RedemptionRefused(f"Cart {cart_id} already has a loyalty discount; only one per order.",
                                    code="one_discount_per_order") from None
        _spend_locked(persona, points, key=f"redemption:{redemption.pk}:spend",
                      reason=f"{'Locked' if lock else 'Redeemed'} '{offer.name}' on cart {cart_id}")
        if wallet_item is not None:
            wallet_item.state = WalletItem.State.USED
            wallet_item.used_at = timezone.now()
            wallet_item.save(update_fields=["state", "used_at"])
        personas_save_derived_locked([persona])
        _redemption_changed(redemption)
        return redemption


def _redemption_find(company, *, redemption_id=None, cart_id=None) -> Redemption:
    """The redemption asked for, read without a lock: its persona is locked first."""
    query = Redemption.objects.filter(company=company)
    if redemption_id is not None:
        query = query.filter(pk=redemption_id)
    elif cart_id:
        query = query.filter(cart_id=cart_id, state__in=Redemption.HOLDING)
    else:
        raise DomainError("Send redemption_id or cart_id.", extra={"field": "redemption_id"})
    try:
        return query.get()
    except (Redemption.DoesNotExist, ValueError, TypeError):
        raise Http404("No such redemption.") from None


def _release(company, *, redemption_id, cart_id, from_state: str, to_state: str, reason: str) -> Redemption:
    with db.atomic(durable=True):
        # The lock order (loyalty.locks): the persona, then the redemption, read again.
        found = _redemption_find(company, redemption_id=redemption_id, cart_id=cart_id)
        persona = persona_lock(company=company, persona_id=found.persona_id)
        redemption = next(iter(redemptions_lock(persona=persona, ids=[found.pk])), None)
        if redemption is None:  # moved to another persona (a merge) between the two reads
            raise RedemptionRefused("This redemption changed meanwhile; try again.", code="wrong_state")
        if redemption.state == to_state:
            return redemption  # asked twice: nothing more to give back
        if redemption.state != from_state:
            raise RedemptionRefused(f"This redemption is {redemption.state}, not {from_state}.",
                                    code="wrong_state", extra={"state": redemption.state})
        redemption.state = to_state
        redemption.locked_until = None if to_state != Redemption.State.LOCKED else redemption.locked_until
        redemption.save(update_fields=["state", "locked_until", "updated_at"])
        _give_back_locked(persona, redemption, reason=reason)
        if redemption.wallet_item_id:
            WalletItem.objects.filter(pk=redemption.wallet_item_id).update(
                state=WalletItem.State.AVAILABLE, used_at=None)
        personas_save_derived_locked([persona])
        _redemption_changed(redemption)
        return redemption


def redemption_reinstate(*, company, redemption_id=None, cart_id=None) -> Redemption:
    """The discount came off the cart: the points go back."""
    return _release(company, redemption_id=redemption_id, cart_id=cart_id,
                    from_state=Redemption.State.REDEEMED, to_state=Redemption.State.REINSTATED,
                    reason="Discount removed from the cart")


def redemption_unlock(*, company, redemption_id=None, cart_id=None) -> Redemption:
    return _release(company, redemption_id=redemption_id, cart_id=cart_id,
                    from_state=Redemption.State.LOCKED, to_state=Redemption.State.UNLOCKED,
                    reason="Lock released by the POS")


def _locks_expire_for_locked(persona: Persona) -> int:
    """Expired locks of a persona whose row the caller holds: points back now."""
    released = 0
    for redemption in redemptions_expired_lock(persona=persona, now=timezone.now()):
        redemption.state = Redemption.State.EXPIRED
        redemption.save(update_fields=["state", "updated_at"])
        _give_back_locked(persona, redemption, reason="Lock expired")
        if redemption.wallet_item_id:
            WalletItem.objects.filter(pk=redemption.wallet_item_id).update(
                state=WalletItem.State.AVAILABLE, used_at=None)
        _redemption_changed(redemption)
        released += 1
    return released


def locks_expire(*, company=None, persona_id: int | None = None) -> int:
    """Release expired locks: every company's (the periodic task), or one persona's
    (checked whenever a POS reads it). Returns how many were released."""
    if persona_id is not None:
        # The common case on every lookup is "none": one indexed probe, no ORM.
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1 FROM loyalty_redemption WHERE persona_id = %s AND state = 'locked' "
                           "AND locked_until <= now() LIMIT 1", [persona_id])
            if cursor.fetchone() is None:
                return 0
    query = Redemption.objects.filter(state=Redemption.State.LOCKED, locked_until__lte=timezone.now())
    if company is not None:
        query = query.filter(company=company)
    if persona_id is not None:
        query = query.filter(persona_id=persona_id)
    released = 0
    for company_id, pid in set(query.values_list("company_id", "persona_id")):
        with db.atomic():
            for persona in personas_lock(company=company_id, persona_ids=[pid]).values():
                released += _locks_expire_for_locked(persona)
                personas_save_derived_locked([persona])
    return released


def redemptions_close_for_transaction_locked(*, company, transaction, redemption_ids: list[int],
                                            personas: dict[int, Persona]) -> list[Redemption]:
    """A closed transaction arrives carrying discounts: its locks become redemptions. A
    voided one releases what it redeemed. The caller holds the persona locks."""
    closed = []
    wanted = set(redemption_ids)
    for redemption in redemptions_lock(persona=personas, ids=wanted,
                                       cart_id=transaction.external_id.split("/", 1)[-1]):
        persona = personas[redemption.persona_id]
        if (redemption.pk in wanted and redemption.state in Redemption.RELEASED
                and transaction.status != transaction.Status.VOIDED):
            # The sale carries a discount whose points already came back (an unlock or
            # expiry won the race): storing it would give the discount and the points.
            raise RedemptionReleased(
                "The reward was released before the sale closed; look the customer up again.",
                extra={"redemption_id": redemption.pk, "state": redemption.state})
        if redemption.state not in Redemption.HOLDING:
            continue  # an earlier lock on this cart, released before: nothing to close
        if transaction.status == transaction.Status.VOIDED:
            redemption.state = (Redemption.State.UNLOCKED if redemption.state == Redemption.State.LOCKED
                                else Redemption.State.REINSTATED)
            redemption.transaction = transaction
            redemption.save(update_fields=["state", "transaction", "updated_at"])
            _give_back_locked(persona, redemption, reason=f"Transaction {transaction.external_id} voided")
            if redemption.wallet_item_id:
                WalletItem.objects.filter(pk=redemption.wallet_item_id).update(
                    state=WalletItem.State.AVAILABLE, used_at=None)
        elif redemption.state == Redemption.State.REDEEMED and redemption.transaction_id == transaction.pk:
            continue  # the same transaction sent again
        else:
            redemption.state = Redemption.State.REDEEMED
            redemption.locked_until = None
            redemption.transaction = transaction
            redemption.save(update_fields=["state", "locked_until", "transaction", "updated_at"])
        _redemption_changed(redemption)
        closed.append(redemption)
    return closed
