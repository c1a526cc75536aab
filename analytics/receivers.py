"""What analytics does when something happens elsewhere in the platform."""

from django.dispatch import receiver

from integrations.signals import sync_completed
from loyalty.signals import sales_changed

from .services import analytics_refresh_soon


@receiver(sync_completed, dispatch_uid="analytics-refresh-after-sync")
def refresh_after_sync(sender, connection, **kwargs):
    """A sync brought sales in (or removed some): recalculate the days they are on, through
    the same queue as POS sales, so a sync during a burst of sales adds no second refresh."""
    analytics_refresh_soon(company_id=connection.company_id)


@receiver(sales_changed, dispatch_uid="analytics-refresh-after-sale")
def refresh_after_sale(sender, company_id, **kwargs):
    """A POS sale was recorded: refresh the days it is on a few seconds after it commits."""
    analytics_refresh_soon(company_id=company_id)
