"""What analytics does when something happens elsewhere in the platform."""

from django.db import transaction as db
from django.dispatch import receiver

from integrations.signals import sync_completed


@receiver(sync_completed, dispatch_uid="analytics-refresh-after-sync")
def refresh_after_sync(sender, connection, **kwargs):
    """A sync brought sales in (or removed some): recalculate the days they are on, once
    the sync's data is committed (a broker hiccup does not fail the sync)."""
    from .tasks import analytics_refresh

    company_id = connection.company_id
    db.on_commit(lambda: analytics_refresh.delay(company_id), robust=True)
