from celery import shared_task


@shared_task
def sign_in_records_purge() -> dict[str, int]:
    """Nightly: sign-in codes and customer sessions long past any use."""
    from .purge import sign_in_records_purge as purge

    return purge()
