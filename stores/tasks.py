from celery import shared_task


@shared_task
def api_key_usage_flush() -> int:
    """Every minute: the API keys' usage counted in Redis into the database."""
    from .api_usage import api_key_usage_flush as flush

    return flush()
