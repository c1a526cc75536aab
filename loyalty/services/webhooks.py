"""Webhooks to a level-2 POS: endpoints, events, signed deliveries.

An event becomes one `WebhookDelivery` per active endpoint of the company subscribed to it,
written in the caller's database transaction; the Celery task `webhook_deliver` is queued
on commit, so a rolled-back change sends nothing. Each attempt POSTs

    {"id": <delivery id>, "event": "points.changed", "created_at": "...", "data": {...}}

with `X-Loyalty-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "<t>.<body>">` keyed with
the endpoint's secret (stored encrypted, decrypted to sign); `webhook_signature_verify`
checks one. Deliveries are at least once: receivers skip an `X-Loyalty-Delivery` id they
have already processed.

Endpoints must be on the public internet: a URL pointing at a private or local address is
refused when saved and, should its name resolve there later, the delivery is recorded as
`blocked` (never sent, never retried). Sending goes through stores.outbound.
"""

import hashlib
import hmac
import json
import secrets
import time
from collections import defaultdict
from collections.abc import Iterable
from datetime import timedelta

import requests
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.core.validators import URLValidator
from django.db import IntegrityError
from django.db import transaction as db
from django.db.models import F
from django.utils import timezone

from stores.audit import AuditContext, audit_changes, audit_record, audit_snapshot
from stores.crypto import encrypt
from stores.errors import DomainError, OutboundRefused
from stores.outbound import outbound_session, outbound_url_check
from stores.redis_guard import task_enqueue

from ..errors import InvalidWebhookEndpoint, WebhookDeliveryFailed
from ..models import Persona, WebhookDelivery, WebhookEndpoint

CONNECT_TIMEOUT = 5
READ_TIMEOUT = 10
RESPONSE_BODY_KEPT = 2000
SIGNATURE_TOLERANCE = 300
USER_AGENT = "LoyaltyPlatform-Webhooks/1"

POINTS_CHANGED = "points.changed"
PERSONA_UPDATED = "persona.updated"

_url_validator = URLValidator(schemes=["http", "https"])
ENDPOINT_AUDIT_FIELDS = ("url", "events", "is_active")


# -- endpoints ---------------------------------------------------------------------------

def _clean_url(url: str) -> str:
    url = (url or "").strip()
    try:
        _url_validator(url)
    except ValidationError:
        raise InvalidWebhookEndpoint("Enter a full http:// or https:// URL.",
                                     extra={"field": "url"}) from None
    if len(url) > WebhookEndpoint._meta.get_field("url").max_length:
        raise InvalidWebhookEndpoint("The URL is too long (500 characters at most).",
                                     extra={"field": "url"})
    outbound_url_check(url, what="Webhook URL", field="url")
    return url


def _clean_events(events: Iterable[str]) -> list[str]:
    wanted = set(events or ())
    unknown = sorted(str(e) for e in wanted - set(WebhookEndpoint.EVENTS))
    if unknown:
        raise InvalidWebhookEndpoint(f"Unknown event: {', '.join(unknown)}.",
                                     extra={"field": "events", "allowed": list(WebhookEndpoint.EVENTS)})
    if not wanted:
        raise InvalidWebhookEndpoint("Pick at least one event.", extra={"field": "events"})
    return [e for e in WebhookEndpoint.EVENTS if e in wanted]


def _check_secret(secret: str) -> str:
    if not 16 <= len(secret) <= WebhookEndpoint.SECRET_MAX_LENGTH:
        raise InvalidWebhookEndpoint(f"A secret needs 16 to {WebhookEndpoint.SECRET_MAX_LENGTH} characters.",
                                     extra={"field": "secret"})
    return secret


def _save(endpoint: WebhookEndpoint, **kwargs) -> WebhookEndpoint:
    taken = WebhookEndpoint.objects.filter(company_id=endpoint.company_id, url=endpoint.url)
    if endpoint.pk:
        taken = taken.exclude(pk=endpoint.pk)
    if taken.exists():
        raise InvalidWebhookEndpoint("There is already an endpoint with this URL.",
                                     extra={"field": "url"})
    try:
        with db.atomic():
            endpoint.save(**kwargs)
    except IntegrityError:  # the same URL added by a concurrent request
        raise InvalidWebhookEndpoint("There is already an endpoint with this URL.",
                                     extra={"field": "url"}) from None
    return endpoint


def _endpoint_state(endpoint: WebhookEndpoint) -> dict:
    """What the trail compares: the fields, and the secret as its encrypted token (a new
    secret is a new token; the trail shows only "(changed)")."""
    return audit_snapshot(endpoint, ENDPOINT_AUDIT_FIELDS) | {"secret": endpoint.secret_encrypted}


def _endpoint_audit(audit, endpoint: WebhookEndpoint, kind: str, before: dict | None,
                    after: dict | None) -> None:
    audit_record(audit=audit, company=endpoint.company_id, kind=kind, obj=endpoint,
                 changes=audit_changes(before, after, secret_fields={"secret"}), if_changed=True)


def webhook_endpoint_create(*, company, url: str, events: Iterable[str], is_active: bool = True,
                            secret: str | None = None, audit: AuditContext | None = None) -> WebhookEndpoint:
    """A new endpoint; without `secret`, a random one (shown once, on the endpoint page).
    The secret is stored encrypted: `endpoint.secret_plain()` reads it."""
    if secret is not None:
        _check_secret(secret)
    endpoint = WebhookEndpoint(company=company, url=_clean_url(url), events=_clean_events(events),
                               is_active=is_active)
    endpoint.set_secret(secret or secrets.token_urlsafe(32))
    with db.atomic():
        endpoint = _save(endpoint, force_insert=True)
        _endpoint_audit(audit, endpoint, "webhook.created", None,
                        _endpoint_state(endpoint))
    return endpoint


def webhook_endpoint_update(*, endpoint: WebhookEndpoint, url: str | None = None,
                            events: Iterable[str] | None = None, is_active: bool | None = None,
                            secret: str | None = None, audit: AuditContext | None = None,
                            audit_kind: str = "webhook.updated") -> WebhookEndpoint:
    """Change what is given; the rest stays. Refused, `endpoint` is left as it was."""
    changes = {
        "url": None if url is None else _clean_url(url),
        "events": None if events is None else _clean_events(events),
        "is_active": is_active,
        "secret_encrypted": None if secret is None else encrypt(_check_secret(secret)),
    }
    before = {name: getattr(endpoint, name) for name in changes}
    audit_before = _endpoint_state(endpoint)
    for name, value in changes.items():
        if value is not None:
            setattr(endpoint, name, value)
    try:
        with db.atomic():
            _save(endpoint, update_fields=list(changes))
            _endpoint_audit(audit, endpoint, audit_kind, audit_before, _endpoint_state(endpoint))
        return endpoint
    except InvalidWebhookEndpoint:
        for name, value in before.items():
            setattr(endpoint, name, value)
        raise


def webhook_endpoint_secret_rotate(*, endpoint: WebhookEndpoint,
                                   audit: AuditContext | None = None) -> WebhookEndpoint:
    """A new random secret; deliveries signed from now on use it."""
    return webhook_endpoint_update(endpoint=endpoint, secret=secrets.token_urlsafe(32), audit=audit,
                                   audit_kind="webhook.secret_rotated")


def webhook_endpoint_delete(*, endpoint: WebhookEndpoint, audit: AuditContext | None = None) -> None:
    """The endpoint and its delivery log; queued deliveries find nothing and stop."""
    with db.atomic():
        _endpoint_audit(audit, endpoint, "webhook.deleted",
                        _endpoint_state(endpoint), None)
        endpoint.delete()


# -- events ------------------------------------------------------------------------------

def webhook_subscribers(*, company_id: int, event: str) -> list[int]:
    """Ids of the company's active endpoints subscribed to `event`: one indexed query, so
    writers can ask before they build a payload."""
    return list(WebhookEndpoint.objects.filter(company_id=company_id, is_active=True,
                                               events__contains=[event]).values_list("pk", flat=True))


def _enqueue(delivery_id: int) -> bool:
    from ..tasks import webhook_deliver

    return task_enqueue(webhook_deliver, (delivery_id,), what="webhook delivery")


def _enqueue_on_commit(deliveries: list[WebhookDelivery]) -> None:
    for delivery in deliveries:
        # A broker outage does not fail the change that already committed: the delivery
        # stays pending and webhook_deliveries_requeue queues it again later.
        db.on_commit(lambda pk=delivery.pk: _enqueue(pk), robust=True)


def webhook_deliveries_requeue(*, older_than: timedelta | None = None, limit: int = 1000) -> int:
    """Queue again the deliveries never attempted that have waited longer than
    WEBHOOK_REQUEUE_AFTER_SECONDS (their queueing failed: the broker was away, or the
    process stopped before it queued them). Oldest first; stops at the first delivery the
    broker refuses. Returns how many were queued. A delivery still waiting in a long
    queue may be queued twice: the second run skips it once it is delivered (and receivers
    skip a delivery id they have seen)."""
    if older_than is None:
        older_than = timedelta(seconds=settings.WEBHOOK_REQUEUE_AFTER_SECONDS)
    ids = list(WebhookDelivery.objects.filter(
        state=WebhookDelivery.State.PENDING, attempts=0, created_at__lt=timezone.now() - older_than,
    ).order_by("created_at", "pk").values_list("pk", flat=True)[:limit])
    queued = 0
    for delivery_id in ids:
        if not _enqueue(delivery_id):
            break
        queued += 1
    return queued


def _deliveries_create(*, endpoint_ids: list[int], event: str,
                       payloads: list[dict]) -> list[WebhookDelivery]:
    # Through JSON and back: what is stored is exactly what will be sent.
    payloads = [json.loads(json.dumps(p, cls=DjangoJSONEncoder)) for p in payloads]
    deliveries = WebhookDelivery.objects.bulk_create([
        WebhookDelivery(endpoint_id=endpoint_id, event=event, payload=payload)
        for payload in payloads for endpoint_id in endpoint_ids
    ])
    _enqueue_on_commit(deliveries)
    return deliveries


def webhook_event_emit(*, company, event: str, payload: dict) -> list[WebhookDelivery]:
    """One delivery per active endpoint subscribed to `event`, sent once the caller's
    transaction commits."""
    if event not in WebhookEndpoint.EVENTS:
        raise ValueError(f"Unknown webhook event {event!r}.")
    endpoint_ids = webhook_subscribers(company_id=company.pk, event=event)
    if not endpoint_ids:
        return []
    return _deliveries_create(endpoint_ids=endpoint_ids, event=event, payloads=[payload])


def points_changed_payload(persona: Persona) -> dict:
    return {"persona_id": persona.pk, "points_balance": persona.points_balance,
            "lifetime_points": persona.lifetime_points}


def points_changed_emit(personas: Iterable[Persona]) -> None:
    """`points.changed` for each persona whose balance moved, one query per company when
    nobody listens."""
    by_company: dict[int, list[Persona]] = defaultdict(list)
    for persona in personas:
        by_company[persona.company_id].append(persona)
    for company_id, group in by_company.items():
        endpoint_ids = webhook_subscribers(company_id=company_id, event=POINTS_CHANGED)
        if endpoint_ids:
            _deliveries_create(endpoint_ids=endpoint_ids, event=POINTS_CHANGED,
                               payloads=[points_changed_payload(p) for p in group])


def persona_updated_payload(persona: Persona, *, change: str, **extra) -> dict:
    return {"persona_id": persona.pk, "change": change, "is_member": persona.is_member,
            "enrolled_at": persona.enrolled_at, "tier": persona.tier,
            "points_balance": persona.points_balance, "lifetime_points": persona.lifetime_points, **extra}


def persona_updated_emit(persona: Persona, *, change: str, **extra) -> None:
    """`persona.updated`; `extra` adds to the payload (a merge names the persona that went)."""
    endpoint_ids = webhook_subscribers(company_id=persona.company_id, event=PERSONA_UPDATED)
    if endpoint_ids:
        _deliveries_create(endpoint_ids=endpoint_ids, event=PERSONA_UPDATED,
                           payloads=[persona_updated_payload(persona, change=change, **extra)])


# -- delivery ----------------------------------------------------------------------------

def webhook_body(delivery: WebhookDelivery) -> bytes:
    return json.dumps({
        "id": delivery.pk, "event": delivery.event,
        "created_at": delivery.created_at.isoformat(), "data": delivery.payload,
    }, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def webhook_signature(secret: str, timestamp: int, body: bytes | str) -> str:
    if isinstance(body, str):
        body = body.encode()
    signed = f"{timestamp}.".encode() + body
    return hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()


def webhook_signature_header(secret: str, body: bytes, timestamp: int | None = None) -> str:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return f"t={timestamp},v1={webhook_signature(secret, timestamp, body)}"


def webhook_signature_verify(secret: str, header: str, body: bytes | str,
                             tolerance: int = SIGNATURE_TOLERANCE, now: float | None = None) -> bool:
    """True when `header` (X-Loyalty-Signature) signs `body` (the raw request body) with
    `secret` and its timestamp is within `tolerance` seconds of now (replays are refused)."""
    timestamp, signatures = None, []
    for part in (header or "").split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    try:
        timestamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if not signatures or abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    expected = webhook_signature(secret, timestamp, body)
    return any(hmac.compare_digest(expected, s) for s in signatures)


def _response_text(response) -> str:
    """The start of the answer, without reading a huge body to the end."""
    data = b""
    for chunk in response.iter_content(chunk_size=4096):
        data += chunk
        if len(data) >= RESPONSE_BODY_KEPT * 4:
            break
    return data.decode(response.encoding or "utf-8", errors="replace")[:RESPONSE_BODY_KEPT]


def _record(delivery_id: int, **fields) -> None:
    WebhookDelivery.objects.filter(pk=delivery_id).update(attempts=F("attempts") + 1, **fields)


def webhook_delivery_attempt(delivery_id: int) -> WebhookDelivery | None:
    """POST a pending delivery once and record the attempt. A 2xx marks it delivered; a URL
    that points at a private or local address marks it blocked; anything else raises
    `WebhookDeliveryFailed` for the task to retry. A delivery that is
    gone (endpoint deleted) or no longer pending is left alone. No lock is held while the
    request is in flight."""
    delivery = (WebhookDelivery.objects.select_related("endpoint")
                .filter(pk=delivery_id).first())
    if delivery is None or delivery.state != WebhookDelivery.State.PENDING:
        return delivery
    endpoint = delivery.endpoint
    if not endpoint.is_active:
        WebhookDelivery.objects.filter(pk=delivery_id, state=WebhookDelivery.State.PENDING).update(
            state=WebhookDelivery.State.FAILED, error="Not sent: the endpoint is turned off.")
        return delivery
    try:
        secret = endpoint.secret_plain()
    except DomainError:  # saved under a key no longer in FIELD_ENCRYPTION_KEYS
        WebhookDelivery.objects.filter(pk=delivery_id, state=WebhookDelivery.State.PENDING).update(
            state=WebhookDelivery.State.FAILED,
            error="Not sent: the endpoint's signing secret cannot be decrypted. Rotate the secret.")
        return delivery
    body = webhook_body(delivery)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-Loyalty-Event": delivery.event,
        "X-Loyalty-Delivery": str(delivery.pk),
        "X-Loyalty-Signature": webhook_signature_header(secret, body),
    }
    try:
        with outbound_session() as session, session.post(
                endpoint.url, data=body, headers=headers, stream=True,
                timeout=(CONNECT_TIMEOUT, READ_TIMEOUT), allow_redirects=False) as response:
            status, text = response.status_code, _response_text(response)
    except OutboundRefused as exc:
        # Sending again cannot help: blocked, not retried, and nothing of an answer kept.
        _record(delivery_id, response_status=None, response_body="", error=f"Blocked: {exc.message}",
                state=WebhookDelivery.State.BLOCKED)
        delivery.refresh_from_db()
        return delivery
    except requests.Timeout:
        error = f"No answer within {CONNECT_TIMEOUT} s (connect) / {READ_TIMEOUT} s (read)."
        _record(delivery_id, response_status=None, response_body="", error=error)
        raise WebhookDeliveryFailed(error) from None
    except requests.RequestException as exc:
        error = f"Could not reach the endpoint: {exc.__class__.__name__}: {exc}"[:1000]
        _record(delivery_id, response_status=None, response_body="", error=error)
        raise WebhookDeliveryFailed(error) from None
    if 200 <= status < 300:
        _record(delivery_id, response_status=status, response_body=text, error="",
                state=WebhookDelivery.State.DELIVERED, delivered_at=timezone.now())
        delivery.refresh_from_db()
        return delivery
    error = f"The endpoint answered HTTP {status}."
    _record(delivery_id, response_status=status, response_body=text, error=error)
    raise WebhookDeliveryFailed(error, extra={"status": status})


def webhook_delivery_fail(*, delivery_id: int, error: str) -> None:
    """The retries ran out: the delivery is failed, with the last error."""
    WebhookDelivery.objects.filter(pk=delivery_id, state=WebhookDelivery.State.PENDING).update(
        state=WebhookDelivery.State.FAILED, error=error)


def webhook_delivery_resend(delivery: WebhookDelivery, *,
                            audit: AuditContext | None = None) -> WebhookDelivery:
    """Send the same delivery (same id and payload, a fresh signature) again, with a new
    round of retries."""
    with db.atomic():
        WebhookDelivery.objects.filter(pk=delivery.pk).update(
            state=WebhookDelivery.State.PENDING, error="", delivered_at=None)
        _enqueue_on_commit([delivery])
        audit_record(audit=audit, company=delivery.endpoint.company_id, kind="webhook.delivery_resent",
                     obj=delivery.endpoint, extra={"delivery_id": delivery.pk, "event": delivery.event})
    delivery.refresh_from_db()
    return delivery


def points_changed_emit_ids(*, company_id: int, persona_ids) -> int:
    """`points.changed` for personas whose balances moved in SQL (imports): nothing is
    read when nobody listens. Returns how many deliveries were made."""
    endpoint_ids = webhook_subscribers(company_id=company_id, event=POINTS_CHANGED)
    if not endpoint_ids:
        return 0
    rows = Persona.objects.filter(company_id=company_id, pk__in=list(persona_ids)).values(
        "pk", "points_balance", "lifetime_points")
    payloads = [{"persona_id": r["pk"], "points_balance": r["points_balance"],
                 "lifetime_points": r["lifetime_points"]} for r in rows]
    return len(_deliveries_create(endpoint_ids=endpoint_ids, event=POINTS_CHANGED, payloads=payloads))
