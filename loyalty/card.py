"""Lines that apps above loyalty add to the persona card's profile, without loyalty importing
them (the members app adds when the customer last signed in to the loyalty page)."""

from collections.abc import Callable

# persona -> [(label, value)]; each provider runs one query at most.
CardFacts = Callable[[object], list[tuple[str, str]]]

_providers: list[CardFacts] = []


def persona_card_facts_register(provider: CardFacts) -> None:
    if provider not in _providers:
        _providers.append(provider)


def persona_card_facts(persona) -> list[tuple[str, str]]:
    return [fact for provider in _providers for fact in provider(persona)]
