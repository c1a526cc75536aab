"""One id per request, in the `X-Request-ID` response header, in API error bodies and in
every log line written while the request runs, so a POS developer's report of a failed call
leads straight to its log lines."""

import contextlib
import logging
import re
import uuid
from contextvars import ContextVar

_current: ContextVar[str | None] = ContextVar("request_id", default=None)

# A caller's own id is kept when it is a plain token (a proxy's or the POS's trace id);
# anything else (too long, spaces, control characters) could forge or break log lines.
_SANE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]{0,127}")


def request_id_current() -> str | None:
    """The id of the request being answered, None outside a request."""
    return _current.get()


def request_id_bind(request_id: str | None):
    """Make `request_id` current (a task started by a request); give the token to reset."""
    return _current.set(request_id)


def request_id_reset(token) -> None:
    if token is None:
        return
    with contextlib.suppress(ValueError):  # set in another context: nothing of ours to undo
        _current.reset(token)


class RequestIdMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        given = request.headers.get("X-Request-ID", "")
        request.request_id = given if _SANE.fullmatch(given) else uuid.uuid4().hex
        token = _current.set(request.request_id)
        try:
            response = self.get_response(request)
        finally:
            _current.reset(token)
        response["X-Request-ID"] = request.request_id
        return response


class RequestIdFilter(logging.Filter):
    """Adds `request_id` to every record ("-" outside a request). Django logs a request's
    error status after the middleware has returned; that record carries the request."""

    def filter(self, record):
        request = getattr(record, "request", None)
        record.request_id = getattr(request, "request_id", None) or _current.get() or "-"
        return True
