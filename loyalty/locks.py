"""Row locks for balance changes, always taken in one order so two database transactions
that touch the same rows cannot deadlock:

    1. personas (by primary key)
    2. their redemptions (by primary key)
    3. their wallet items (by primary key)

Every lock on these rows goes through the functions here. A service that starts from a
redemption or a wallet item reads its persona id without a lock, locks the persona, then
locks and re-reads the row and checks its state again: it may have changed meanwhile.
"""

from django.db.models import Q
from django.http import Http404

from .models import Persona, Redemption, WalletItem


def personas_for_update():
    return Persona.objects.select_for_update(of=("self",)).order_by("pk")


def _remember(persona: Persona) -> Persona:
    # What the derived fields were when locked, so only real changes are written back.
    persona._loaded_derived = (persona.points_balance, persona.lifetime_points,
                               persona.last_purchase_at)
    return persona


def persona_lock(*, company, persona_id) -> Persona:
    """Lock one persona of `company`; a missing or foreign id is a 404."""
    try:
        return _remember(personas_for_update().get(company=company, pk=persona_id))
    except (Persona.DoesNotExist, ValueError, TypeError):
        raise Http404("No such persona.") from None


def personas_lock(*, company, persona_ids) -> dict[int, Persona]:
    ids = sorted({pk for pk in persona_ids if pk is not None})
    if not ids:
        return {}
    return {p.pk: _remember(p)
            for p in personas_for_update().filter(company=company, pk__in=ids)}


def _persona_ids(persona) -> list[int]:
    personas = persona if isinstance(persona, list | tuple | set | dict) else [persona]
    return [p if isinstance(p, int) else p.pk for p in personas]


def redemptions_lock(*, persona, ids=(), cart_id: str | None = None, states=None) -> list[Redemption]:
    """Lock, in pk order, the redemptions of `persona` (one, or several: the caller holds
    their locks already) with these ids or on this cart, optionally only in `states`."""
    wanted = Q(pk__in=list(ids))
    if cart_id:
        wanted |= Q(cart_id=cart_id)
    query = (Redemption.objects.select_for_update(of=("self",))
             .filter(wanted, persona_id__in=_persona_ids(persona)).order_by("pk"))
    if states is not None:
        query = query.filter(state__in=list(states))
    return list(query)


def redemptions_expired_lock(*, persona, now) -> list[Redemption]:
    """Lock the persona's locks that ran out (the caller holds the persona's lock)."""
    return list(Redemption.objects.select_for_update(of=("self",))
                .filter(persona_id__in=_persona_ids(persona), state=Redemption.State.LOCKED,
                        locked_until__lte=now).order_by("pk"))


def wallet_items_lock(*, persona, ids) -> dict[int, WalletItem]:
    """Lock, in pk order, wallet items of `persona` (the caller holds its lock)."""
    return {w.pk: w for w in WalletItem.objects.select_for_update(of=("self",)).select_related("offer")
            .filter(persona_id__in=_persona_ids(persona), pk__in=list(ids)).order_by("pk")}
