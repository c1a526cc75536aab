"""Enrolling every persona a search matches, 5,000 of them: the request only queues the
job, a real Celery worker (its own process) works through it in chunks, and the Personas
page polls its progress ("2,000 of 5,000") until it is done."""

import re
import time
import uuid

import pytest
from django.urls import reverse
from django.utils import timezone

from config.celery import app
from loyalty.models import LoyaltyProgram, Persona, PersonaBulkJob, PointsEntry
from tests.celery_worker import celery_worker_process
from tests.factories import PersonaFactory

COUNT = 5000


@pytest.fixture
def worker(tmp_path):
    """A Celery worker process on this test process's default queue (where the view's
    task goes) and on a queue of its own (where the test sends it too, see below);
    leftovers of an earlier run are purged first."""
    own = f"bulk-{uuid.uuid4().hex[:8]}"
    app.control.purge()
    log_path = tmp_path / "worker.log"
    with celery_worker_process(f"{app.conf.task_default_queue},{own}", log_path):
        yield log_path, own


def _seed(company, other_company):
    now = timezone.now()
    Persona.objects.bulk_create(
        [Persona(company=company, first_name=f"Guest{n}", last_name="Bulkley", email=f"g{n}@example.com",
                 created_at=now) for n in range(COUNT)], batch_size=1000)
    PersonaFactory(company=company, last_name="Elsewhere", is_member=False, enrolled_at=None)
    return PersonaFactory(company=other_company, last_name="Bulkley", is_member=False, enrolled_at=None)


@pytest.mark.django_db(transaction=True)
def test_persona_bulk_enrol_all_matching_5000_runs_in_the_background_with_progress(
        client, admin_user, company, other_company, worker):
    # given 5,000 guests a search for "bulkley" matches, one it does not, and another company's
    LoyaltyProgram.objects.update_or_create(company=company, defaults={"signup_bonus": 25})
    stranger = _seed(company, other_company)
    outside = Persona.objects.get(company=company, last_name="Elsewhere")
    client.force_login(admin_user)

    # when the admin asks to enrol all matching, the question states the count
    query = {"action": "enrol", "all": "1", "q": "bulkley"}
    page = client.get(reverse("persona_bulk"), query).content.decode()
    assert "Enrol 5,000 personas in the loyalty program?" in page
    assert "runs in the background" in page
    # and confirming returns at once, with the job queued rather than done
    started = time.monotonic()
    response = client.post(reverse("persona_bulk"), query)
    assert response.status_code == 302
    job = PersonaBulkJob.objects.get(company=company)
    assert job.in_background and job.total == COUNT and job.created_by == admin_user
    assert time.monotonic() - started < 10
    # The same job is also sent to the worker's own queue, as the requeue sweep would send
    # it: a message this process publishes to its default queue has been seen to miss the
    # worker under the full suite, and a second delivery of a job does nothing more.
    log_path, own_queue = worker
    app.send_task("loyalty.tasks.persona_bulk_job_run", args=[job.pk], queue=own_queue)

    # then the list shows the job's progress, polled from its partial, until it is done
    seen = []
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        part = client.get(reverse("persona_list"), headers={"HX-Request": "true", "HX-Target": "bulk-jobs"})
        text = part.content.decode()
        match = re.search(r'data-testid="bulk-progress"[^>]*>([\d,]+) of 5,000<', text)
        assert match, text
        seen.append(int(match.group(1).replace(",", "")))
        if "Enrolled 5,000 personas" in text:
            assert 'hx-trigger="every 2s"' not in text  # polling stops once it is over
            break
        assert 'hx-trigger="every 2s"' in text
        time.sleep(0.5)
    else:
        pytest.fail(f"not done in time; progress seen {seen[-5:]}\n" + log_path.read_text()[-3000:])
    assert any(0 < n < COUNT for n in seen), seen  # progress showed between start and end
    assert seen == sorted(seen)

    job.refresh_from_db()
    assert (job.state, job.processed, job.changed, job.skipped) == ("done", COUNT, COUNT, 0)
    assert job.started_at and job.finished_at
    assert Persona.objects.filter(company=company, last_name="Bulkley", is_member=True).count() == COUNT
    assert PointsEntry.objects.filter(persona__company=company, delta=25).count() == COUNT
    # and neither the persona outside the search nor another company's was touched
    outside.refresh_from_db()
    stranger.refresh_from_db()
    assert not outside.is_member and not stranger.is_member
    # and the full page shows the finished job too
    page = client.get(reverse("persona_list")).content.decode()
    assert "Enrolled 5,000 personas in the loyalty program." in page
