from celery import shared_task

from .errors import WebhookDeliveryFailed

WEBHOOK_MAX_ATTEMPTS = 6
WEBHOOK_RETRY_BASE_SECONDS = 30


@shared_task(bind=True, max_retries=WEBHOOK_MAX_ATTEMPTS - 1, acks_late=True)
def webhook_deliver(self, delivery_id: int) -> None:
    """POST one webhook delivery. Without a 2xx answer it is retried with exponential
    backoff (30 s, 1, 2, 4, 8 minutes: six attempts in all), then marked failed with the
    last error."""
    from .services.webhooks import webhook_delivery_attempt, webhook_delivery_fail

    try:
        webhook_delivery_attempt(delivery_id)
    except WebhookDeliveryFailed as failure:
        if self.request.retries >= self.max_retries:
            webhook_delivery_fail(delivery_id=delivery_id, error=failure.message)
            return
        raise self.retry(countdown=WEBHOOK_RETRY_BASE_SECONDS * 2 ** self.request.retries) from None


@shared_task
def webhook_deliveries_requeue() -> int:
    """Every few minutes: queue again the deliveries whose queueing failed (broker away)."""
    from .services.webhooks import webhook_deliveries_requeue as requeue

    return requeue()


@shared_task
def persona_bulk_jobs_requeue() -> list[int]:
    """Every few minutes: queue again the bulk jobs whose queueing failed or whose worker died."""
    from .services.bulk import bulk_jobs_requeue

    return bulk_jobs_requeue()


@shared_task
def locks_release_expired() -> int:
    """Every minute: POS locks past their time give their points back."""
    from .services.redemptions import locks_expire

    return locks_expire()


@shared_task
def tiers_refresh() -> None:
    """Nightly: spend tiers look back 12 months, so a tier can drop without a new sale."""
    from stores.models import Company

    from .services.program import tiers_recompute

    for company in Company.objects.filter(tiers__isnull=False).distinct():
        tiers_recompute(company=company)


@shared_task
def prompt_firings_flush() -> int:
    """Every minute: add the POS prompt firings counted in the cache to the prompts."""
    from .services.prompts import prompt_fired_counts_flush

    return prompt_fired_counts_flush()


@shared_task
def points_expire_all() -> int:
    """Daily: points of long-inactive customers expire, per each company's program."""
    from stores.models import Company

    from .services.points import points_expire

    return sum(points_expire(company=company)
               for company in Company.objects.filter(loyalty_program__expiry_months__isnull=False))


@shared_task
def idempotency_keys_expire() -> int:
    """Hourly: POS Idempotency-Keys are kept 24 hours."""
    from .services.idempotency import idempotency_records_expire

    return idempotency_records_expire()


@shared_task(acks_late=True)
def persona_bulk_job_run(job_id: int) -> None:
    """A bulk action on more personas than a request should wait for (see services/bulk.py)."""
    from .services.bulk import bulk_job_run

    bulk_job_run(job_id=job_id)
