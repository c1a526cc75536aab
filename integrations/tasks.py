from celery import shared_task

from stores.errors import DomainError

from .models import Connection, CovaCredential, SignupPush, SyncRun
from .providers import ProviderError
from .services.sync import (
    SyncFailed,
    SyncRunHeld,
    sync_run_create,
    sync_run_execute,
    sync_run_requeue,
    sync_run_skipped_record,
    sync_runs_interrupt_lapsed,
)

MAX_ATTEMPTS = 4


@shared_task(bind=True, max_retries=MAX_ATTEMPTS - 1, acks_late=True)
def connection_sync(self, run_id: int) -> None:
    """Run a queued sync (report files, or a Cova credential's customers and sales);
    failures that may pass (unreachable source, a database hiccup)
    are retried with exponential backoff: 1, 2, 4 minutes. Delivered again after its
    worker was lost, it resumes the run (sync_run_claim)."""
    try:
        sync_run_execute(run_id=run_id)
    except SyncRunHeld as held:
        # Delivered again while a worker still renews the run's lease: that worker may be
        # alive (the broker's visibility timeout passed) or just killed (its lease not yet
        # lapsed). Look again once the lease would have lapsed; the retries left stay as they were.
        self.signature_from_request(countdown=held.lapses_in + 1, retries=self.request.retries).apply_async()
    except SyncFailed as failure:
        if not failure.retryable or self.request.retries >= self.max_retries:
            return
        countdown = 60 * 2 ** self.request.retries
        sync_run_requeue(run=SyncRun.objects.get(pk=run_id), error=failure.message, retry_in=countdown)
        raise self.retry(countdown=countdown) from None


def _sync_scheduled(connection: Connection, credential: CovaCredential | None = None) -> None:
    try:
        run = sync_run_create(connection=connection, credential=credential, trigger=SyncRun.Trigger.SCHEDULE)
    except DomainError as exc:  # frozen meanwhile, or a run is already going: the page says so
        sync_run_skipped_record(connection=connection, credential=credential,
                                reason=f"Nightly sync skipped: {exc.message}")
        return
    connection_sync.delay(run.pk)


@shared_task
def connection_sync_scheduled(connection_id: int) -> None:
    """The nightly beat entry of a connection; a frozen one is skipped."""
    connection = Connection.objects.filter(pk=connection_id, is_frozen=False).first()
    if connection is not None:
        _sync_scheduled(connection)


@shared_task
def cova_sync_scheduled(credential_id: int) -> None:
    """The nightly beat entry of a credential, for a connector that runs per credential
    (Cova); frozen ones are skipped. The same start as a connection's."""
    credential = CovaCredential.objects.filter(pk=credential_id, is_frozen=False,
                                               connection__is_frozen=False).select_related("connection").first()
    if credential is not None:
        _sync_scheduled(credential.connection, credential)


@shared_task
def sync_runs_interrupt_lapsed_all() -> None:
    """Every few minutes (beat): runs whose worker died are marked interrupted."""
    sync_runs_interrupt_lapsed()


@shared_task(bind=True, max_retries=5, acks_late=True)
def signup_push(self, push_id: int) -> None:
    """Create an enrolled persona in Cova; retried with backoff while Cova is unreachable.
    A refusal (bad data, permissions) stays failed, with its reason on the persona card."""
    from .services.cova import signup_push_send

    try:
        signup_push_send(push_id=push_id)
    except ProviderError as exc:
        if exc.retryable and self.request.retries < self.max_retries:
            raise self.retry(countdown=30 * 2 ** self.request.retries) from None
    except SignupPush.DoesNotExist:
        return


@shared_task(acks_late=True)
def cova_locations_refresh(connection_id: int) -> None:
    """"Refresh from Cova": read the connection's locations and store them for the pages."""
    from .services.cova import cova_locations_refresh as refresh

    try:
        refresh(connection_id=connection_id)
    except Connection.DoesNotExist:
        return  # deleted meanwhile


@shared_task(acks_late=True)
def cova_credential_test(credential_id: int) -> None:
    """"Test connection" of a Cova credential: sign in and check the permissions."""
    from .services.cova import cova_credential_test_run

    try:
        cova_credential_test_run(credential_id=credential_id)
    except CovaCredential.DoesNotExist:
        return  # removed meanwhile


@shared_task(acks_late=True)
def connection_test(connection_id: int) -> None:
    """"Test connection" of a report source reached over the network (S3, OneDrive)."""
    from .services.connections import connection_test_run

    try:
        connection_test_run(connection_id=connection_id)
    except Connection.DoesNotExist:
        return  # deleted meanwhile
