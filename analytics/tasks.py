from celery import shared_task


@shared_task
def analytics_refresh(company_id: int) -> int | None:
    """Recalculate the days whose sales changed (after a sync, shortly after POS sales)."""
    from stores.models import Company

    from .services import refresh_queue_clear, rollup_refresh

    refresh_queue_clear(company_id=company_id)
    company = Company.objects.filter(pk=company_id).first()
    if company is None:  # deleted since the task was queued
        return None
    return rollup_refresh(company=company).days
