"""The one sync-run lifecycle, run against every connector in the registry (and the sample
of docs/integrations.md): the run is claimed under a lease, reports progress, maps a
failure to failed (and back to queued while it retries), and on success stamps the
connection, tells the connector and sends sync_completed once.

Each connector's own work is replaced by a stand-in here: what is tested is what the
platform does around it, the same for every connector."""

import pytest
from django.core.cache import cache
from django.utils import timezone

from integrations import connectors, tasks
from integrations.models import Connection, CovaCredential, SyncRun
from integrations.providers.base import ConnectionProblem, ProviderError
from integrations.services.sync import (
    SyncFailed,
    SyncRunHeld,
    progress_key,
    sync_run_claim,
    sync_run_create,
    sync_run_execute,
    sync_runs_interrupt_lapsed,
)
from integrations.signals import sync_completed
from integrations.tasks import MAX_ATTEMPTS, connection_sync
from loyalty.models import Source

pytestmark = pytest.mark.django_db

SAMPLE = "tests.integrations.sample_connector.AcmeConnector"
REGISTERED = (*connectors.CONNECTORS, SAMPLE)
AT_WORK = SyncRun(current_file="the work")  # a run as the stand-in leaves it when it fails


@pytest.fixture(params=REGISTERED, ids=lambda path: path.rsplit(".", 1)[-1])
def connector(request, monkeypatch):
    monkeypatch.setattr(connectors, "CONNECTORS", REGISTERED)
    return connectors.connector_classes()[next(
        key for key, cls in connectors.connector_classes().items()
        if f"{cls.__module__}.{cls.__qualname__}" == request.param)]


@pytest.fixture
def target(company, connector):
    """(connection, credential) of the connector: a connection with a name and no settings,
    and for a connector that runs per credential, one credential."""
    source = Source.objects.create(company=company, kind=connectors.source_kind_of(connector),
                                   name=f"{connector.key} source")
    connection = Connection.objects.create(company=company, name=f"{connector.label} connection",
                                           provider=connector.key, source=source)
    credential = None
    if connector.runs_per_credential:
        credential = CovaCredential(connection=connection, client_id="c", username="u", cova_company_id="1")
        credential.set_secrets(client_secret="s", password="p")
        credential.save()
    return connection, credential


@pytest.fixture
def completed():
    sent = []

    def receiver(sender, connection, run, **kwargs):
        sent.append((connection.pk, run.pk, run.state))

    sync_completed.connect(receiver, dispatch_uid="test-lifecycle-completed")
    yield sent
    sync_completed.disconnect(dispatch_uid="test-lifecycle-completed")


def work(monkeypatch, connector, *outcomes):
    """Stand in for the connector's sync: each attempt takes the next outcome (None: it
    works; an exception: raised). Returns what each attempt saw of its run."""
    seen, left = [], list(outcomes)

    def sync(self, run):
        saved = SyncRun.objects.get(pk=run.pk)
        leased = saved.lease_expires_at is not None and saved.lease_expires_at > timezone.now()
        seen.append({"state": saved.state, "attempts": saved.attempts, "leased": leased})
        run.current_file = "the work"
        SyncRun.objects.filter(pk=run.pk).update(current_file="the work")
        cache.set(progress_key(run.pk), 42, 60)
        seen[-1]["progress"] = cache.get(progress_key(run.pk))
        with pytest.raises(SyncRunHeld):  # a second delivery of the task leaves it alone
            sync_run_claim(SyncRun.objects.get(pk=run.pk), reset={})
        outcome = left.pop(0) if left else None
        if outcome is not None:
            raise outcome

    monkeypatch.setattr(connector, "sync", sync)
    return seen


def queued(connection, credential):
    return sync_run_create(connection=connection, credential=credential, trigger=SyncRun.Trigger.MANUAL)


def test_lifecycle_claims_leases_reports_progress_and_completes(connector, target, monkeypatch, completed):
    connection, credential = target
    seen = work(monkeypatch, connector, None)
    run = queued(connection, credential)

    run = sync_run_execute(run_id=run.pk)

    assert seen == [{"state": "running", "attempts": 1, "leased": True, "progress": 42}]
    assert (run.state, run.attempts, run.error, run.current_file) == ("succeeded", 1, "", "")
    assert run.finished_at is not None and run.lease_expires_at is None
    assert cache.get(progress_key(run.pk)) is None
    connection.refresh_from_db()
    assert connection.last_synced_at == run.finished_at
    assert completed == [(connection.pk, run.pk, "succeeded")]
    if credential is not None:  # the connector is told: Cova marks its credential verified
        credential.refresh_from_db()
        assert credential.status == "connected"
    # delivered again after it finished: nothing happens
    assert sync_run_execute(run_id=run.pk).attempts == 1 and len(seen) == 1


def test_lifecycle_maps_a_refusal_to_failed_not_retried(connector, target, monkeypatch, completed):
    connection, credential = target
    work(monkeypatch, connector, ProviderError(ConnectionProblem.BAD_CREDENTIALS, "The key was refused."))
    run = queued(connection, credential)

    connection_sync.apply(args=[run.pk])

    run.refresh_from_db()
    assert (run.state, run.attempts, run.error) == ("failed", 1, "The key was refused.")
    assert run.finished_at is not None and run.lease_expires_at is None
    assert completed == []
    if credential is not None:
        credential.refresh_from_db()
        assert (credential.status, credential.last_error) == ("failing", "The key was refused.")


def test_lifecycle_retries_what_may_pass_and_then_completes(connector, target, monkeypatch, completed):
    connection, credential = target
    seen = work(monkeypatch, connector, ProviderError(ConnectionProblem.UNREACHABLE, "No answer."),
                RuntimeError("a hiccup"))
    requeued = []
    real_requeue = tasks.sync_run_requeue

    def requeue(*, run, error, retry_in):
        real_requeue(run=run, error=error, retry_in=retry_in)
        requeued.append(SyncRun.objects.values_list("state", "error").get(pk=run.pk))

    monkeypatch.setattr(tasks, "sync_run_requeue", requeue)
    run = queued(connection, credential)

    connection_sync.apply(args=[run.pk])  # retries run inline here, as a worker would run them

    run.refresh_from_db()
    assert [s["attempts"] for s in seen] == [1, 2, 3]
    # between attempts the run is queued again, saying why and when it retries
    assert requeued[0] == ("queued", "No answer. Retrying in 60 s (attempt 2).")
    state, error = requeued[1]
    assert state == "queued" and "a hiccup" in error and error.startswith(
        connector.failure_message(AT_WORK, RuntimeError("a hiccup")))
    assert (run.state, run.attempts, run.error) == ("succeeded", 3, "")
    assert completed == [(connection.pk, run.pk, "succeeded")]


def test_lifecycle_gives_up_after_the_last_attempt(connector, target, monkeypatch, completed):
    connection, credential = target
    work(monkeypatch, connector, *[RuntimeError("still broken")] * MAX_ATTEMPTS)
    run = queued(connection, credential)

    connection_sync.apply(args=[run.pk])

    run.refresh_from_db()
    assert (run.state, run.attempts) == ("failed", MAX_ATTEMPTS)
    assert run.error == connector.failure_message(AT_WORK, RuntimeError("still broken"))
    assert completed == []


def test_lifecycle_a_lost_worker_is_interrupted_then_resumed(connector, target, monkeypatch, completed):
    connection, credential = target
    seen = work(monkeypatch, connector, None)
    run = queued(connection, credential)
    # given: a worker took the run and died (its lease lapsed)
    SyncRun.objects.filter(pk=run.pk).update(state="running", attempts=1, started_at=timezone.now(),
                                             lease_expires_at=timezone.now() - timezone.timedelta(seconds=1))
    # when: the sweep runs, then the task is delivered again
    assert [r.pk for r in sync_runs_interrupt_lapsed()] == [run.pk]
    assert SyncRun.objects.get(pk=run.pk).state == "interrupted"
    run = sync_run_execute(run_id=run.pk)

    # then: it is resumed and completes, saying it was resumed
    assert seen[0]["attempts"] == 2
    assert run.state == "succeeded" and run.error.startswith("Resumed after the worker was lost")
    assert completed == [(connection.pk, run.pk, "succeeded")]


def test_lifecycle_failure_reraises_for_the_caller(connector, target, monkeypatch):
    connection, credential = target
    work(monkeypatch, connector, ProviderError(ConnectionProblem.UNREACHABLE, "No answer."))
    run = queued(connection, credential)

    with pytest.raises(SyncFailed) as caught:
        sync_run_execute(run_id=run.pk)

    assert caught.value.retryable is True and caught.value.message == "No answer."
