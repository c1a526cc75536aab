"""Sync freshness for /metrics (stores/metrics.py): how long ago each connection last
finished a sync, read from the database at every scrape. An alert on it catches a nightly
sync that silently stopped."""

from collections.abc import Iterable

from django.utils import timezone
from prometheus_client.core import GaugeMetricFamily, Metric

from .models import Connection


def sync_ages() -> Iterable[Metric]:
    family = GaugeMetricFamily(
        "loyalty_connection_last_sync_age_seconds",
        "Seconds since the connection's last finished sync (none yet: no sample).",
        labels=["connection_id", "company"])
    now = timezone.now()
    rows = (Connection.objects.filter(last_synced_at__isnull=False)
            .values_list("pk", "company__slug", "last_synced_at").order_by("pk"))
    for pk, company_slug, last_synced_at in rows:
        family.add_metric([str(pk), company_slug], max(0.0, (now - last_synced_at).total_seconds()))
    yield family
