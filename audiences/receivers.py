"""What audiences do when something happens elsewhere in the platform."""

from django.db import transaction as db
from django.dispatch import receiver

from integrations.signals import sync_completed


@receiver(sync_completed, dispatch_uid="audiences-refresh-after-sync")
def refresh_after_sync(sender, connection, **kwargs):
    """New sales and customers came in: recalculate the company's audiences once the
    sync's data is committed (robust: a broker hiccup does not fail the sync)."""
    from .tasks import audiences_refresh

    company_id = connection.company_id
    db.on_commit(lambda: audiences_refresh.delay(company_id), robust=True)
