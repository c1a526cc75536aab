from celery import shared_task


@shared_task(acks_late=True)
def campaign_queue_task(campaign_id: int) -> None:
    """A scheduled campaign's time has come: recalculate its audience and write its recipients."""
    from .services import campaign_queue

    campaign_queue(campaign_id=campaign_id)


@shared_task(acks_late=True)
def campaign_send_batch_task(campaign_id: int) -> str:
    """Send for a while, then queue itself again while messages are due (or later, when the
    next ones wait for their allowed hours)."""
    from .services import campaign_send_batch

    state, wait = campaign_send_batch(campaign_id=campaign_id)
    if state == "more":
        campaign_send_batch_task.apply_async((campaign_id,))
    elif state == "wait" and wait is not None and wait <= 3600:
        campaign_send_batch_task.apply_async((campaign_id,), countdown=wait)
    return state


@shared_task
def campaigns_tick() -> dict:
    """Every minute: scheduled campaigns due now are queued; sending ones get a worker."""
    from .services import campaigns_tick as tick

    return tick()
