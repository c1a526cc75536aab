"""The customer's rewards and wallet on the loyalty page. Buying goes through the POS's own
`offer_purchase` (one ledger, the persona's row lock, the same refusals); what is offered
here is what the POS would sell them: active, inside its dates, for their tier, within its
per-customer limit."""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from django.http import Http404
from django.utils import timezone

from loyalty.catalog import catalog_for
from loyalty.models import Offer, Persona, WalletItem
from loyalty.services.offers import offer_is_current
from loyalty.services.redemptions import RedemptionRefused, offer_purchase, offers_times_held
from stores.errors import DomainError
from stores.models import RetailStore


class RewardNotBought(DomainError):
    """A purchase refused on the loyalty page, in the customer's words; nothing was charged."""

    code = "reward_not_bought"
    status = 409


@dataclass
class RewardOnSale:
    offer: Offer
    cost: int
    balance: int
    store_names: list[str] = field(default_factory=list)
    times_left: int | None = None  # under a per-customer limit
    currency: str = "USD"

    @property
    def affordable(self) -> bool:
        return self.balance >= self.cost

    @property
    def shortfall(self) -> int:
        return max(0, self.cost - self.balance)

    @property
    def balance_after(self) -> int:
        return self.balance - self.cost

    @property
    def gives(self) -> str:
        return offer_gives(self.offer, currency=self.currency, store_names=self.store_names)


SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£"}


def offer_gives(offer: Offer, *, currency: str, store_names=()) -> str:
    """What an offer takes off, in a sentence: "$10.00 off an order of $40.00 or more, at Downtown"."""
    def money(value) -> str:
        symbol = SYMBOLS.get(currency, "")
        return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency}"

    amount = f"{offer.amount.normalize():f}%" if offer.kind == Offer.Kind.PERCENT else money(offer.amount)
    text = f"{amount} off {'an order' if offer.min_subtotal else 'your order'}"
    if offer.min_subtotal:
        text += f" of {money(offer.min_subtotal)} or more"
    if offer.categories or offer.brands:
        text += " with " + " or ".join([*offer.categories, *offer.brands])
    if store_names:
        text += f", at {', '.join(store_names)} only"
    return text


def purchase_token_new() -> str:
    """One per buy form shown: submitting that form twice buys once."""
    return secrets.token_urlsafe(24)


def rewards_on_sale(*, company, persona: Persona) -> list[RewardOnSale]:
    """The offers this customer may buy with points now, cheapest first."""
    catalog = catalog_for(company)
    now = timezone.now()
    offers = [o for o in catalog.offers if o.points_cost > 0 and offer_is_current(o, now=now)
              and (not o._tier_names or persona.tier in o._tier_names)]
    held = offers_times_held(persona, [o.pk for o in offers if o.limit_per_persona is not None])
    store_ids = {pk for o in offers for pk in o._store_ids}
    stores = dict(RetailStore.objects.filter(company=company, pk__in=store_ids).values_list("pk", "name"))
    rewards = []
    for offer in offers:
        left = None
        if offer.limit_per_persona is not None:
            left = offer.limit_per_persona - held.get(offer.pk, 0)
            if left <= 0:
                continue
        rewards.append(RewardOnSale(offer=offer, cost=offer.points_cost, balance=persona.points_balance,
                                    store_names=sorted(stores[pk] for pk in offer._store_ids if pk in stores),
                                    times_left=left, currency=company.currency))
    rewards.sort(key=lambda r: (r.cost, r.offer.name.casefold()))
    return rewards


def reward_on_sale(*, company, persona: Persona, offer_id) -> RewardOnSale:
    """One reward this customer may buy; any other offer (another company's, another
    tier's, ended, at its limit) is a 404."""
    for reward in rewards_on_sale(company=company, persona=persona):
        if str(reward.offer.pk) == str(offer_id):
            return reward
    raise Http404("No such reward.")


def reward_refused(*, company, persona: Persona, offer_id) -> RewardOnSale:
    """The reward a refused purchase was for, to say why beside it (it may be off sale for
    this customer now: another tier, at its limit)."""
    offer = Offer.objects.filter(company=company, pk=offer_id, points_cost__gt=0).first()
    if offer is None:
        raise Http404("No such reward.")
    return RewardOnSale(offer=offer, cost=offer.points_cost, balance=persona.points_balance,
                        currency=company.currency)


def reward_buy(*, company, persona: Persona, offer_id: int, purchase_token: str) -> WalletItem:
    """Spend the customer's points on an offer, into their wallet; the same `purchase_token`
    again returns the item already bought. Refusals say what to do, in the customer's words."""
    if not purchase_token or len(purchase_token) > 64:
        raise RewardNotBought("This form has expired; open the reward again.", code="form_expired")
    offer = Offer.objects.filter(company=company, pk=offer_id).first()
    if offer is None or offer.points_cost <= 0:
        raise Http404("No such reward.")
    try:
        return offer_purchase(company=company, persona_id=persona.pk, offer_id=offer.pk,
                              source=WalletItem.Source.LOYALTY_PAGE, purchase_token=purchase_token)
    except RedemptionRefused as exc:
        raise RewardNotBought(_in_customer_words(exc, offer), code=exc.code, extra=exc.extra) from None


def _in_customer_words(exc: RedemptionRefused, offer: Offer) -> str:
    if exc.code == "insufficient_points":
        more = exc.extra["needed"] - exc.extra["balance"]
        return f"You need {more:,} more point{'s' * (more != 1)} for {offer.name}."
    if exc.code == "offer_tier":
        tiers = exc.extra["tiers"]
        return f"{offer.name} is for {' and '.join(tiers)} members only."
    if exc.code == "offer_limit":
        times = offer.limit_per_persona
        return f"You already have {offer.name} {'once' if times == 1 else f'{times} times'}, its limit."
    return f"{offer.name} is no longer available."


@dataclass
class Wallet:
    available: list[WalletItem]
    past: list[WalletItem]  # used, expired, or their offer ended or was switched off


def wallet_of(*, company, persona: Persona) -> Wallet:
    now = timezone.now()
    available, past = [], []
    items = (WalletItem.objects.filter(persona=persona, company=company)
             .select_related("offer").order_by("-created_at", "-pk"))
    for item in items:
        usable = item.state == WalletItem.State.AVAILABLE and offer_is_current(item.offer, now=now)
        item.expires_at = item.offer.ends_at
        item.gives = offer_gives(item.offer, currency=company.currency)
        item.shown_state = item.get_state_display() if item.state != WalletItem.State.AVAILABLE else (
            "Expired" if item.offer.ends_at and item.offer.ends_at <= now else "No longer offered")
        (available if usable else past).append(item)
    return Wallet(available=available, past=past)


def wallet_item_of(*, persona: Persona, code: str) -> WalletItem:
    """The signed-in customer's own item with this code; anyone else's is a 404."""
    item = WalletItem.objects.filter(persona=persona, company_id=persona.company_id, code=code).first()
    if item is None:
        raise Http404("No such wallet item.")
    return item
