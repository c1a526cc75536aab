"""Places where apps above `stores` add to its pages without `stores` importing them.

A store's edit page shows its Store mappings (which location of each connected system the
store is). The integrations app owns those; it registers them here from its AppConfig."""

from dataclasses import dataclass
from typing import Any, Protocol


class StoreMappings(Protocol):
    def form(self, *, company, store, data=None) -> Any: ...

    def save(self, *, form, store, audit=None) -> bool: ...


@dataclass
class _NoMappings:
    """What the page shows when no app provides store mappings: nothing to map."""

    sections: tuple = ()
    report_mappings: tuple = ()
    errors: tuple = ()

    def is_valid(self) -> bool:
        return True


_store_mappings: StoreMappings | None = None


def store_mappings_register(provider: StoreMappings) -> None:
    global _store_mappings
    _store_mappings = provider


def store_mappings_form(*, company, store, data=None):
    if _store_mappings is None:
        return _NoMappings()
    return _store_mappings.form(company=company, store=store, data=data)


def store_mappings_save(*, form, store, audit=None) -> bool:
    if _store_mappings is None:
        return True
    return _store_mappings.save(form=form, store=store, audit=audit)
