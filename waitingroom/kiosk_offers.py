"""What the kiosk offers a customer once checked in, from apps above the waiting room
without it importing them (the members app offers a link to the loyalty page by SMS)."""

from collections.abc import Callable

# (request, entry) -> {"action": url, "token": str, "label": str} or None; each posts a form.
KioskOffer = Callable[[object, object], dict | None]

_providers: list[KioskOffer] = []


def kiosk_offer_register(provider: KioskOffer) -> None:
    if provider not in _providers:
        _providers.append(provider)


def kiosk_offers(request, entry) -> list[dict]:
    return [offer for provider in _providers if (offer := provider(request, entry))]
