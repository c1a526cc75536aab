"""Bulk actions on personas chosen on the list: enrol them, add them to or remove them
from a static audience (the audiences app registers those two, since loyalty does not
import it), and export them as CSV.

A confirmed selection becomes a `PersonaBulkJob` holding its persona ids. Up to
`BULK_AT_ONCE` personas are worked through in the request; more are queued for a worker,
which processes `BULK_CHUNK` at a time and commits its position after each chunk, so a
redelivered task (or a worker that died half way) picks up where the last one stopped.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import timedelta

from django.db import connection
from django.db import transaction as db
from django.db.models import F, QuerySet
from django.utils import timezone

from stores.audit import AuditContext, audit_record
from stores.errors import DomainError

from ..models import Persona, PersonaBulkJob
from .personas import persona_enroll

log = logging.getLogger(__name__)

BULK_AT_ONCE = 1000
BULK_CHUNK = 250
# A background job neither over nor held by a worker this long after it was made is queued again.
BULK_REQUEUE_AFTER = timedelta(minutes=5)
# pg_try_advisory_lock(BULK_LOCK_CLASS, job id): one worker at a time works a job.
BULK_LOCK_CLASS = 7420


class BulkRefused(DomainError):
    """A bulk action that cannot start (nothing selected, no audience chosen...)."""


@dataclass(frozen=True)
class ChunkResult:
    changed: int
    skipped: int


# action -> handler(*, company, target_id, persona_ids, audit) -> ChunkResult. Every
# handler re-reads the ids within the company and is harmless to run twice on a chunk.
BulkHandler = Callable[..., ChunkResult]
BULK_HANDLERS: dict[str, BulkHandler] = {}


def bulk_handler_register(action: str, handler: BulkHandler) -> None:
    BULK_HANDLERS[action] = handler


@dataclass(frozen=True)
class BulkTargets:
    """Where the audience actions' audiences come from: `choices(company)` lists the static
    audiences as (id, name); `create(*, company, name, user, audit)` makes one, -> (id, name)."""

    choices: Callable
    create: Callable


BULK_TARGETS: dict[str, BulkTargets] = {}


def bulk_targets_register(kind: str, targets: BulkTargets) -> None:
    BULK_TARGETS[kind] = targets


def _enrol_chunk(*, company, target_id, persona_ids: list[int], audit: AuditContext | None) -> ChunkResult:
    """Each persona through `persona_enroll`, as the POS and the card do: the signup
    bonus, the `persona.enrolled` webhook and the audit row come with it."""
    candidates = list(Persona.objects.filter(company=company, pk__in=persona_ids, is_member=False)
                      .order_by("pk").values_list("pk", flat=True))
    for persona_id in candidates:
        persona_enroll(company=company, persona_id=persona_id, audit=audit)
    return ChunkResult(changed=len(candidates), skipped=len(persona_ids) - len(candidates))


bulk_handler_register(PersonaBulkJob.Action.ENROL, _enrol_chunk)


def bulk_job_create(*, company, action: str, persona_ids: Iterable[int] | QuerySet,
                    target_id: int | None = None,
                    target_label: str = "", audit: AuditContext | None = None) -> PersonaBulkJob:
    """Record the job for these personas of `company` (ids of another company are dropped
    here, whatever the caller checked) and queue it when it is too large for a request."""
    if action not in BULK_HANDLERS:
        raise BulkRefused("That is not a bulk action.", code="unknown_action")
    if action != PersonaBulkJob.Action.ENROL and target_id is None:
        raise BulkRefused("Choose the audience.", code="no_target", extra={"field": "audience"})
    if isinstance(persona_ids, QuerySet):  # "all matching": read as a subquery, not a list of ids
        chosen = persona_ids.filter(company=company)
    else:
        chosen = Persona.objects.filter(company=company, pk__in=set(persona_ids))
    ids = list(chosen.order_by("pk").values_list("pk", flat=True).distinct())
    if not ids:
        raise BulkRefused("Select at least one persona.", code="empty_selection")
    audit = audit or AuditContext()
    with db.atomic():
        job = PersonaBulkJob.objects.create(
            company=company, action=action, target_id=target_id, target_label=target_label[:120],
            persona_ids=ids, total=len(ids), in_background=len(ids) > BULK_AT_ONCE,
            created_by=audit.user, created_ip=audit.ip or None)
        audit_record(audit=audit, company=company, kind="personas.bulk_started", obj=job,
                     extra={"action": action, "count": len(ids), "audience": target_label or None})
        if job.in_background:
            from ..tasks import persona_bulk_job_run

            job_id = job.pk
            # A broker away now leaves the job queued, visible on the page, instead of failing the request.
            db.on_commit(lambda: persona_bulk_job_run.delay(job_id), robust=True)
    return job


def bulk_job_start(*, company, action: str, persona_ids: Iterable[int] | QuerySet,
                   target_id: int | None = None,
                   target_label: str = "", audit: AuditContext | None = None) -> PersonaBulkJob:
    """Create the job; a small one runs now and comes back done."""
    job = bulk_job_create(company=company, action=action, persona_ids=persona_ids, target_id=target_id,
                          target_label=target_label, audit=audit)
    if not job.in_background:
        job = bulk_job_run(job_id=job.pk)
    return job


def bulk_job_run(*, job_id: int) -> PersonaBulkJob:
    """Work the job from where it stands to the end. A second delivery while a worker
    holds it, or after it is over, does nothing."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [BULK_LOCK_CLASS, job_id])
        if not cursor.fetchone()[0]:
            log.info("bulk job %s is being worked elsewhere", job_id)
            return PersonaBulkJob.objects.get(pk=job_id)
    try:
        return _bulk_job_work(job_id)
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [BULK_LOCK_CLASS, job_id])


def bulk_jobs_requeue(*, older_than: timedelta = BULK_REQUEUE_AFTER) -> list[int]:
    """Queue again the background jobs not over that no worker holds and that have waited
    longer than `older_than`: their queueing failed (the broker was away) or their worker was
    killed. A job still waiting in a long queue may be queued twice; the second delivery finds
    it held or over and does nothing. Returns the ids queued, oldest first; stops at the first
    the broker refuses."""
    from ..tasks import persona_bulk_job_run

    waiting = PersonaBulkJob.objects.filter(
        in_background=True, state__in=[PersonaBulkJob.State.QUEUED, PersonaBulkJob.State.RUNNING],
        created_at__lt=timezone.now() - older_than).order_by("created_at", "pk").values_list("pk", flat=True)
    queued = []
    for job_id in waiting[:100]:
        with connection.cursor() as cursor:  # held: a worker is on it now
            cursor.execute("SELECT pg_try_advisory_lock(%s, %s)", [BULK_LOCK_CLASS, job_id])
            if not cursor.fetchone()[0]:
                continue
            cursor.execute("SELECT pg_advisory_unlock(%s, %s)", [BULK_LOCK_CLASS, job_id])
        try:
            persona_bulk_job_run.delay(job_id)
        except Exception:  # the broker is still away: the next sweep tries again
            log.warning("bulk job %s could not be queued again", job_id, exc_info=True)
            break
        queued.append(job_id)
    return queued


def _bulk_job_work(job_id: int) -> PersonaBulkJob:
    job = PersonaBulkJob.objects.select_related("company", "created_by").get(pk=job_id)
    if job.is_over:
        return job
    PersonaBulkJob.objects.filter(pk=job.pk, state=PersonaBulkJob.State.QUEUED).update(
        state=PersonaBulkJob.State.RUNNING, started_at=timezone.now())
    handler = BULK_HANDLERS[job.action]
    audit = AuditContext(user=job.created_by, ip=job.created_ip or "")
    position = job.processed
    try:
        while position < job.total:
            chunk = job.persona_ids[position:position + BULK_CHUNK]
            result = handler(company=job.company, target_id=job.target_id, persona_ids=chunk, audit=audit)
            PersonaBulkJob.objects.filter(pk=job.pk, processed=position).update(
                processed=position + len(chunk), changed=F("changed") + result.changed,
                skipped=F("skipped") + result.skipped)
            position += len(chunk)
    except Exception as exc:
        log.exception("bulk job %s failed at %s of %s", job.pk, position, job.total)
        message = exc.message if isinstance(exc, DomainError) else "Stopped by an unexpected error."
        PersonaBulkJob.objects.filter(pk=job.pk).update(state=PersonaBulkJob.State.FAILED, error=message,
                                                        finished_at=timezone.now())
        job.refresh_from_db()
        return job
    PersonaBulkJob.objects.filter(pk=job.pk).update(state=PersonaBulkJob.State.DONE,
                                                    finished_at=timezone.now())
    job.refresh_from_db()
    return job


# --- export -------------------------------------------------------------------------------------

EXPORT_COLUMNS = ("id", "first_name", "last_name", "phone", "email", "birth_date", "market", "is_member",
                  "enrolled_at", "points_balance", "lifetime_points", "tier", "favourite_store",
                  "sourced_from", "sms_opt_in", "email_opt_in", "created_at", "last_purchase_at")


def personas_export_record(*, company, count: int, audit: AuditContext | None) -> None:
    """The trail's line for an export of customer data, written before the first row goes out."""
    audit_record(audit=audit, company=company, kind="personas.exported", extra={"count": count})


def personas_export_rows(*, personas):
    """The header, then one row per persona of `personas` (a queryset already scoped to
    the company), in id order."""
    yield list(EXPORT_COLUMNS)
    fields = [c for c in EXPORT_COLUMNS if c not in ("favourite_store", "sourced_from")]
    qs = personas.order_by("pk").values_list(*fields, "favourite_store__name", "sourced_from__name")
    for row in qs.iterator(chunk_size=2000):
        values = dict(zip([*fields, "favourite_store", "sourced_from"], row, strict=True))
        yield [values[c] for c in EXPORT_COLUMNS]
