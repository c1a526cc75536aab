from celery import shared_task

from stores.errors import DomainError

from .models import Connection, SyncRun
from .services.sync import SyncFailed, sync_run_create, sync_run_execute, sync_run_requeue

MAX_ATTEMPTS = 4


@shared_task(bind=True, max_retries=MAX_ATTEMPTS - 1, acks_late=True)
def connection_sync(self, run_id: int) -> None:
    """Run a queued sync; failures that may pass (unreachable source, a database hiccup)
    are retried with exponential backoff: 1, 2, 4 minutes."""
    try:
        sync_run_execute(run_id=run_id)
    except SyncFailed as failure:
        if not failure.retryable or self.request.retries >= self.max_retries:
            return
        countdown = 60 * 2 ** self.request.retries
        sync_run_requeue(run=SyncRun.objects.get(pk=run_id), error=failure.message, retry_in=countdown)
        raise self.retry(countdown=countdown) from None


@shared_task
def connection_sync_scheduled(connection_id: int) -> None:
    """The nightly beat entry of a connection."""
    connection = Connection.objects.filter(pk=connection_id, is_frozen=False).first()
    if connection is None:
        return
    try:
        run = sync_run_create(connection=connection, trigger=SyncRun.Trigger.SCHEDULE)
    except DomainError:
        return  # frozen meanwhile, or a run is already going
    connection_sync.delay(run.pk)
