from celery import shared_task


@shared_task
def audiences_refresh(company_id: int) -> dict | None:
    """A company's purchase facts, then every one of its audiences (after a sync, nightly)."""
    from stores.models import Company

    from .services import audiences_refresh_all

    company = Company.objects.filter(pk=company_id).first()
    if company is None:  # deleted since the task was queued
        return None
    return audiences_refresh_all(company=company)


@shared_task
def audiences_refresh_all_companies() -> int:
    """Nightly: one refresh task per company, so workers share them out. Every company,
    not only those with audiences: the builder's counts read the same purchase facts."""
    from stores.models import Company

    company_ids = list(Company.objects.order_by("pk").values_list("pk", flat=True))
    for company_id in company_ids:
        audiences_refresh.delay(company_id)
    return len(company_ids)
