"""The read replica (DATABASE_REPLICA_URL): which reads may go there.

Only reads that may be a few seconds behind, and say so by running inside
`reads_from_replica()`: the Analytics page and dashboard, audience counts and previews, and
exports. Everything else (the POS, every write path and what it reads) stays on the primary,
and so does every write. A browser that has just saved something (a POST answered with a
redirect) reads the primary for REPLICA_READ_YOUR_WRITES_SECONDS, so the page it lands on
shows its own write whatever the replica's lag.
"""

from __future__ import annotations

from contextlib import contextmanager
from contextvars import ContextVar

from django.conf import settings

PRIMARY = "default"
REPLICA = "replica"
RECENT_WRITE_COOKIE = "recent_write"

_replica_ok: ContextVar[bool] = ContextVar("replica_ok", default=False)
_pinned: ContextVar[bool] = ContextVar("pinned_to_primary", default=False)


def read_alias() -> str:
    """The database this read goes to: the replica inside `reads_from_replica()` when there
    is one and this browser has not just written, else the primary."""
    if _replica_ok.get() and not _pinned.get() and REPLICA in settings.DATABASES:
        return REPLICA
    return PRIMARY


@contextmanager
def reads_from_replica():
    """Reads inside may come from the replica. Yields the alias, for raw SQL
    (`connections[alias]`) and for querysets read after the block ends (`.using(alias)`,
    e.g. a streamed export)."""
    token = _replica_ok.set(True)
    try:
        yield read_alias()
    finally:
        _replica_ok.reset(token)


class ReplicaRouter:
    def db_for_read(self, model, **hints):
        return read_alias()

    def db_for_write(self, model, **hints):
        return PRIMARY

    def allow_relation(self, obj1, obj2, **hints):
        return True  # the same data, whichever copy it was read from

    def allow_migrate(self, db, app_label, model_name=None, **hints):
        return db == PRIMARY  # the replica follows the primary's schema by replication


def _redirects(response) -> bool:
    return 300 <= response.status_code < 400 or "HX-Redirect" in response


class ReadYourWritesMiddleware:
    """After a save (a POST, PUT, PATCH or DELETE answered with a redirect, normal or
    htmx's), this browser's reads stay on the primary for a few seconds. POSTs that only
    read (the audience builder's live count) answer with a page, not a redirect, and do not
    count."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        token = _pinned.set(RECENT_WRITE_COOKIE in request.COOKIES)
        try:
            response = self.get_response(request)
        finally:
            _pinned.reset(token)
        if request.method not in ("GET", "HEAD", "OPTIONS", "TRACE") and _redirects(response):
            response.set_cookie(RECENT_WRITE_COOKIE, "1", max_age=settings.REPLICA_READ_YOUR_WRITES_SECONDS,
                                secure=settings.SESSION_COOKIE_SECURE, httponly=True, samesite="Lax")
        return response
