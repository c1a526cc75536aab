"""Version stamps in the shared cache, for what processes keep in memory (a company's
loyalty rules, checked API keys): a change bumps the stamp and every process reloads."""

import uuid

from django.core.cache import cache
from django.db import transaction


def version_get(key: str) -> str:
    return cache.get(key) or "0"


def version_bump(key: str) -> None:
    """Now, and again once the change commits, so a process that reloaded in between does
    not keep what the transaction replaced."""

    def bump():
        cache.set(key, uuid.uuid4().hex, None)

    bump()
    transaction.on_commit(bump)
