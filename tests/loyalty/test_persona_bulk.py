"""Bulk actions on personas: the services (enrol many, static audiences, export) and the
pages (confirmation with the count, roles, another company's ids)."""

import csv
import io

import pytest
from django.urls import reverse

from audiences.models import Audience, AudienceMember
from audiences.services import audience_refresh, audience_static_create
from loyalty.models import LoyaltyProgram, Persona, PersonaBulkJob, PointsEntry, WebhookDelivery
from loyalty.services.bulk import bulk_job_run, bulk_job_start, personas_export_rows
from loyalty.services.webhooks import webhook_endpoint_create
from stores.audit import AuditContext
from stores.models import AuditEvent
from tests.factories import PersonaFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def guests(company):
    return [PersonaFactory(company=company, is_member=False, enrolled_at=None, first_name=f"Guest{n}")
            for n in range(4)]


@pytest.fixture
def static_audience(company):
    return audience_static_create(company=company, name="VIP list")


def _ids(personas):
    return [p.pk for p in personas]


# --- services ------------------------------------------------------------------------------------

def test_bulk_job_start_enrol_many_gives_bonus_and_webhook_and_counts_members(
        company, guests, admin_user, django_capture_on_commit_callbacks):
    # given a signup bonus, a webhook subscriber, four guests and one member
    LoyaltyProgram.objects.update_or_create(company=company, defaults={"signup_bonus": 50})
    webhook_endpoint_create(company=company, url="https://pos.example/hook", events=["persona.updated"])
    member = PersonaFactory(company=company)
    # when all five are enrolled at once
    with django_capture_on_commit_callbacks(execute=False):
        job = bulk_job_start(company=company, action="enrol", persona_ids=[*_ids(guests), member.pk],
                             audit=AuditContext(user=admin_user))
    # then the guests are members with their bonus, announced, and the member was skipped
    assert (job.state, job.total, job.processed, job.changed, job.skipped) == ("done", 5, 5, 4, 1)
    assert not job.in_background and job.created_by == admin_user and job.finished_at
    assert Persona.objects.filter(pk__in=_ids(guests), is_member=True, points_balance=50).count() == 4
    assert PointsEntry.objects.filter(persona=member).count() == 0
    assert WebhookDelivery.objects.filter(event="persona.updated").count() == 4
    assert AuditEvent.objects.filter(kind="persona.enrolled", actor_id=admin_user.pk).count() == 4
    assert AuditEvent.objects.get(kind="personas.bulk_started").extra == {
        "action": "enrol", "count": 5, "audience": None}


def test_bulk_job_start_another_companys_ids_are_never_touched(company, other_company, guests):
    # given a guest of another company among the ids
    stranger = PersonaFactory(company=other_company, is_member=False, enrolled_at=None)
    # when the bulk enrol runs for this company
    job = bulk_job_start(company=company, action="enrol", persona_ids=[*_ids(guests), stranger.pk])
    # then only this company's personas are in the job, and the stranger is untouched
    assert job.total == 4 and stranger.pk not in job.persona_ids
    stranger.refresh_from_db()
    assert not stranger.is_member


def test_bulk_job_run_twice_does_nothing_more(company, guests):
    # given a job that ran to the end
    job = bulk_job_start(company=company, action="enrol", persona_ids=_ids(guests))
    # when it is delivered again
    again = bulk_job_run(job_id=job.pk)
    # then the counts are those of the first run
    assert (again.state, again.processed, again.changed, again.skipped) == ("done", 4, 4, 0)
    assert PointsEntry.objects.filter(persona__in=guests).count() == 0  # no bonus in this program


def test_bulk_job_run_resumes_from_the_committed_position(company, guests):
    # given a queued job whose worker stopped after the first two personas were committed
    job = PersonaBulkJob.objects.create(company=company, action="enrol", persona_ids=_ids(guests),
                                        total=4, in_background=True, state="running", processed=2,
                                        changed=2)
    # when the task is delivered again
    job = bulk_job_run(job_id=job.pk)
    # then it did the last two only
    assert (job.state, job.processed, job.changed) == ("done", 4, 4)
    assert set(Persona.objects.filter(is_member=True).values_list("pk", flat=True)) == set(_ids(guests[2:]))


def test_bulk_jobs_requeue_runs_lost_jobs_and_leaves_fresh_and_held_ones(company, guests, monkeypatch):
    import datetime as dt
    import threading

    from django.db import connections
    from django.utils import timezone

    from config.celery import app as celery_app
    from loyalty.services.bulk import BULK_LOCK_CLASS, bulk_jobs_requeue

    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)  # the worker is this process

    def job(personas, minutes_ago):
        made = PersonaBulkJob.objects.create(company=company, action="enrol", persona_ids=_ids(personas),
                                             total=len(personas), in_background=True)
        made.created_at = timezone.now() - dt.timedelta(minutes=minutes_ago)
        made.save(update_fields=["created_at"])
        return made

    # given a job whose queueing failed 10 minutes ago, one made a minute ago, and one a
    # worker holds right now (another connection has its lock)
    lost, fresh, held = job(guests[:2], 10), job(guests[2:3], 1), job(guests[3:], 10)
    holding, release = threading.Event(), threading.Event()

    def worker():
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT pg_advisory_lock(%s, %s)", [BULK_LOCK_CLASS, held.pk])
            holding.set()
            release.wait(10)
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [BULK_LOCK_CLASS, held.pk])
        connections.close_all()

    thread = threading.Thread(target=worker)
    thread.start()
    try:
        assert holding.wait(10)
        # when the sweep runs
        queued = bulk_jobs_requeue()
    finally:
        release.set()
        thread.join()
    # then only the lost job was queued again, and it ran to the end
    assert queued == [lost.pk]
    states = dict(PersonaBulkJob.objects.values_list("pk", "state"))
    assert (states[lost.pk], states[fresh.pk], states[held.pk]) == ("done", "queued", "queued")
    assert Persona.objects.filter(pk__in=_ids(guests[:2]), is_member=True).count() == 2


def test_bulk_audience_add_then_remove_static_audience(company, guests, static_audience):
    # given one guest already in the static audience
    bulk_job_start(company=company, action="audience_add", persona_ids=_ids(guests[:1]),
                   target_id=static_audience.pk, target_label=static_audience.name)
    # when all four are added
    job = bulk_job_start(company=company, action="audience_add", persona_ids=_ids(guests),
                         target_id=static_audience.pk, target_label=static_audience.name)
    # then three were added, one was already in, and the audience counts four
    assert (job.changed, job.skipped) == (3, 1)
    static_audience.refresh_from_db()
    assert static_audience.size == 4 and static_audience.kind == Audience.Kind.STATIC
    # and calculating it keeps its hand-picked members
    assert audience_refresh(audience=static_audience).size == 4
    # when two of them and a non-member are removed
    outsider = PersonaFactory(company=company)
    job = bulk_job_start(company=company, action="audience_remove",
                         persona_ids=[*_ids(guests[:2]), outsider.pk],
                         target_id=static_audience.pk, target_label=static_audience.name)
    assert (job.changed, job.skipped) == (2, 1)
    assert set(AudienceMember.objects.values_list("persona_id", flat=True)) == set(_ids(guests[2:]))
    static_audience.refresh_from_db()
    assert static_audience.size == 2


def test_bulk_audience_add_another_companys_audience_fails_and_adds_nothing(company, other_company, guests):
    # given another company's static audience
    theirs = audience_static_create(company=other_company, name="Theirs")
    # when this company's personas are added to it
    job = bulk_job_start(company=company, action="audience_add", persona_ids=_ids(guests),
                         target_id=theirs.pk, target_label="Theirs")
    # then the job stopped and nobody joined it
    assert job.state == "failed" and job.changed == 0
    assert not AudienceMember.objects.exists()


def test_personas_export_rows_has_the_main_fields_of_the_selected_only(company, other_company, guests):
    PersonaFactory(company=other_company)
    chosen = Persona.objects.filter(company=company, pk__in=_ids(guests[:2]))
    rows = list(personas_export_rows(personas=chosen))
    header, *body = rows
    assert header[:5] == ["id", "first_name", "last_name", "phone", "email"]
    assert "is_member" in header and "points_balance" in header and "favourite_store" in header
    assert [r[0] for r in body] == sorted(_ids(guests[:2]))
    assert body[0][1] == guests[0].first_name and body[0][4] == guests[0].email


# --- pages ---------------------------------------------------------------------------------------

def test_persona_bulk_confirmation_states_the_count(admin_client, company, guests):
    response = admin_client.get(reverse("persona_bulk"), {"action": "enrol", "persona": _ids(guests)})
    assert response.status_code == 200
    assert "Enrol 4 personas in the loyalty program?" in response.content.decode()
    assert not Persona.objects.filter(is_member=True).exists()  # nothing happens before the POST


def test_persona_bulk_all_matching_uses_the_list_filters(admin_client, company, guests):
    PersonaFactory(company=company, first_name="Zed", is_member=False, enrolled_at=None)
    response = admin_client.get(reverse("persona_bulk"), {"action": "enrol", "all": "1", "q": "guest"})
    assert "Enrol 4 personas" in response.content.decode()
    response = admin_client.post(reverse("persona_bulk"), {"action": "enrol", "all": "1", "q": "guest"})
    assert response.status_code == 302 and response["Location"].endswith("?q=guest")
    assert set(Persona.objects.filter(is_member=True).values_list("pk", flat=True)) == set(_ids(guests))


def test_persona_bulk_another_companys_id_is_404_and_untouched(admin_client, company, other_company, guests):
    stranger = PersonaFactory(company=other_company, is_member=False, enrolled_at=None)
    for method in (admin_client.get, admin_client.post):
        response = method(reverse("persona_bulk"),
                          {"action": "enrol", "persona": [guests[0].pk, stranger.pk]})
        assert response.status_code == 404
    assert not Persona.objects.filter(is_member=True).exists()


def test_persona_bulk_roles(client, login, company, guests, marketer_user, budtender_user):
    # a marketer reads personas only: no bulk bar, and a posted action is refused
    login(client, marketer_user)
    assert b"data-bulk-bar" not in client.get(reverse("persona_list")).content
    enrol = {"action": "enrol", "persona": _ids(guests)}
    assert client.post(reverse("persona_bulk"), enrol).status_code == 403
    # a budtender may enrol, but not export customers nor change audiences
    login(client, budtender_user)
    page = client.get(reverse("persona_list")).content.decode()
    assert "data-bulk-bar" in page and "Enrol in loyalty" in page and "Export CSV" not in page
    export = {"action": "export", "persona": _ids(guests)}
    assert client.post(reverse("persona_bulk"), export).status_code == 403
    assert client.post(reverse("persona_bulk"), {"action": "audience_add", "persona": _ids(guests),
                                                 "audience": "new", "new_audience": "X"}).status_code == 403
    assert not Persona.objects.filter(is_member=True).exists()


def test_persona_bulk_export_streams_csv_and_is_audited(admin_client, company, admin_user, guests):
    response = admin_client.post(reverse("persona_bulk"), {"action": "export", "persona": _ids(guests[:3])})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert len(rows) == 4 and rows[0][0] == "id"
    event = AuditEvent.objects.get(kind="personas.exported")
    assert event.actor_id == admin_user.pk and event.extra == {"count": 3}


def test_persona_bulk_add_to_a_new_static_audience(admin_client, company, guests):
    response = admin_client.post(reverse("persona_bulk"), {"action": "audience_add", "persona": _ids(guests),
                                                           "audience": "new", "new_audience": "Spring VIPs"})
    assert response.status_code == 302
    audience = Audience.objects.get(company=company, name="Spring VIPs")
    assert audience.kind == "static" and audience.size == 4
    # the builder does not open a static audience as rules
    assert admin_client.get(reverse("audience_builder", args=[audience.pk])).status_code == 302
