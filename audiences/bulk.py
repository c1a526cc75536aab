"""Static audiences as bulk actions on the personas list (Personas › select › Add to /
Remove from audience): loyalty keeps the registry, this app fills in its two actions."""

from loyalty.models import PersonaBulkJob
from loyalty.services.bulk import BulkTargets, ChunkResult, bulk_handler_register, bulk_targets_register

from .models import Audience
from .services import audience_members_add, audience_members_remove, audience_static_create


def _add_chunk(*, company, target_id, persona_ids, audit) -> ChunkResult:
    added, already = audience_members_add(company=company, audience_id=target_id, persona_ids=persona_ids)
    return ChunkResult(changed=added, skipped=already)


def _remove_chunk(*, company, target_id, persona_ids, audit) -> ChunkResult:
    removed, absent = audience_members_remove(company=company, audience_id=target_id, persona_ids=persona_ids)
    return ChunkResult(changed=removed, skipped=absent)


bulk_handler_register(PersonaBulkJob.Action.AUDIENCE_ADD, _add_chunk)
bulk_handler_register(PersonaBulkJob.Action.AUDIENCE_REMOVE, _remove_chunk)


def _static_choices(company) -> list[tuple[int, str]]:
    return list(Audience.objects.filter(company=company, kind=Audience.Kind.STATIC).order_by("name")
                .values_list("pk", "name"))


def _static_create(*, company, name, user, audit) -> tuple[int, str]:
    audience = audience_static_create(company=company, name=name, user=user, audit=audit)
    return audience.pk, audience.name


bulk_targets_register("audience", BulkTargets(choices=_static_choices, create=_static_create))
