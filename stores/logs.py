"""Log lines an operator can search: one access line per request, in JSON in production
(LOG_FORMAT=json) and as readable text in development (LOG_FORMAT=plain).

A small middleware with the standard library's logging, not django-structlog: that one
writes two lines per request (started, finished) with the full path and query string,
keeps its own request id next to ours, and needs every logger routed through structlog.
One line with the route, the caller and the duration costs the POS lookup less, and the
id is the one stores/requestid.py already returns in X-Request-ID and in API errors.
"""

import json
import logging
import time
from datetime import UTC, datetime

from django.conf import settings

from . import metrics

access_logger = logging.getLogger("loyalty.access")

# The attributes every LogRecord has; anything else on a record came through `extra=`.
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}
_SKIP = {"request"}  # Django's error records carry the request object: never logged whole


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, request_id, and the fields
    given as `extra=`."""

    def format(self, record: logging.LogRecord) -> str:
        line = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in _SKIP:
                line[key] = value
        if record.exc_info:
            line["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class ForbiddenFilter(logging.Filter):
    """Drops Django's "Forbidden (Permission denied)" record (a warning with the whole
    traceback of the PermissionDenied): the access line already says the request got a 403,
    and a refusal is not a fault to debug."""

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "status_code", None) != 403


def request_caller(request) -> dict:
    """Who made the request, for the access line: the company (id and slug), and the
    staff user's id or the POS's API key id. Read after the view ran: DRF's authentication
    puts the POS client on the request then."""
    user = getattr(request, "user", None)
    api_key = getattr(user, "api_key", None)
    if api_key is not None:  # the POS (loyalty.api.PosClient)
        company = user.company
        caller = {"api_key_id": api_key.pk}
    else:
        company = getattr(request, "company", None)
        caller = {"user_id": user.pk} if user is not None and user.is_authenticated else {}
    if company is not None:
        caller["company_id"], caller["company"] = company.pk, company.slug
    return caller


def route_name(request) -> str:
    """The URL pattern's name (never the raw path: ids and tokens stay out of labels)."""
    match = getattr(request, "resolver_match", None)
    if match is not None:
        return match.view_name or match.route or "unnamed"
    if request.path_info.startswith(settings.STATIC_URL):
        return "static"
    return "unmatched"


class AccessLogMiddleware:
    """One access line and one latency sample per request. The path is logged without its
    query string (a token could be in it); bodies and headers are never logged."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        started = time.perf_counter()
        response = self.get_response(request)
        duration = time.perf_counter() - started
        route = route_name(request)
        metrics.http_request_observe(method=request.method, route=route,
                                     status=response.status_code, seconds=duration)
        if access_logger.isEnabledFor(logging.INFO):
            duration_ms = round(duration * 1000, 2)
            access_logger.info(
                "%s %s %s %.1fms", request.method, request.path, response.status_code, duration_ms,
                extra={"method": request.method, "path": request.path, "route": route,
                       "status": response.status_code, "duration_ms": duration_ms,
                       **request_caller(request)})
        return response
