"""Exceptions to Sentry (or a compatible service), started from the settings when
SENTRY_DSN is set, so the web server, the Celery workers and the commands all report."""

import sentry_sdk
from sentry_sdk.integrations.celery import CeleryIntegration
from sentry_sdk.integrations.django import DjangoIntegration

from .requestid import request_id_current


def event_scrubbed(event, hint):
    """The request's query string and cookies never leave (a token may ride in a link);
    the request id stays, to find the request's log lines."""
    request = event.get("request")
    if request:
        request.pop("query_string", None)
        request.pop("cookies", None)
        if isinstance(request.get("url"), str):
            request["url"] = request["url"].split("?", 1)[0]
    request_id = request_id_current()
    if request_id:
        event.setdefault("tags", {})["request_id"] = request_id
    return event


def sentry_start(*, dsn: str, environment: str, release: str | None, traces_sample_rate: float) -> None:
    # No personal data: no user details, IP addresses, cookies or bodies, and no local
    # variables of the stack frames (they hold customers' phones and emails, and keys).
    sentry_sdk.init(dsn=dsn, environment=environment, release=release,
                    traces_sample_rate=traces_sample_rate, send_default_pii=False,
                    max_request_body_size="never", include_local_variables=False,
                    before_send=event_scrubbed,
                    integrations=[DjangoIntegration(), CeleryIntegration()])
