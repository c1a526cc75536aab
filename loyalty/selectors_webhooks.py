"""Reads for the webhook pages, always scoped by company: another company's endpoint or
delivery id is a 404, the same as a missing one."""

from django.db.models import OuterRef, QuerySet, Subquery
from django.http import Http404

from .models import WebhookDelivery, WebhookEndpoint

DELIVERY_LOG_SIZE = 100


def webhook_endpoints(*, company) -> QuerySet[WebhookEndpoint]:
    """The company's endpoints with their latest delivery (time and state)."""
    latest = WebhookDelivery.objects.filter(endpoint=OuterRef("pk")).order_by("-created_at", "-id")
    return (WebhookEndpoint.objects.filter(company=company)
            .annotate(last_delivery_at=Subquery(latest.values("created_at")[:1]),
                      last_delivery_state=Subquery(latest.values("state")[:1]))
            .order_by("url"))


def webhook_endpoint_get(*, company, endpoint_id) -> WebhookEndpoint:
    try:
        return WebhookEndpoint.objects.get(company=company, pk=endpoint_id)
    except (WebhookEndpoint.DoesNotExist, ValueError, TypeError):
        raise Http404("No such webhook endpoint.") from None


def webhook_deliveries(*, endpoint: WebhookEndpoint,
                       limit: int = DELIVERY_LOG_SIZE) -> QuerySet[WebhookDelivery]:
    """The endpoint's latest deliveries, newest first (the payload and response bodies are
    left out: the log does not show them)."""
    return (WebhookDelivery.objects.filter(endpoint=endpoint)
            .defer("payload", "response_body")
            .order_by("-created_at", "-id")[:limit])


def webhook_delivery_get(*, company, delivery_id) -> WebhookDelivery:
    try:
        return (WebhookDelivery.objects.select_related("endpoint")
                .get(endpoint__company=company, pk=delivery_id))
    except (WebhookDelivery.DoesNotExist, ValueError, TypeError):
        raise Http404("No such webhook delivery.") from None
