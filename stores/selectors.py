import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django.db.models import Q, QuerySet
from django.http import Http404

from .models import AuditEvent, RetailStore


def store_get(*, company, store_id) -> RetailStore:
    """One of the company's stores; another company's id, or no id at all, is a 404."""
    try:
        return company.stores.get(pk=store_id)
    except (RetailStore.DoesNotExist, ValueError, TypeError):
        raise Http404("No such store.") from None


# --- the audit trail ---------------------------------------------------------------------------

@dataclass(frozen=True)
class AuditFilters:
    actor_id: int | None = None
    kind: str = ""
    object_type: str = ""
    object_text: str = ""  # the object's id, or part of its name
    start: dt.date | None = None  # days in the company's time zone, both included
    end: dt.date | None = None


def _local_midnight(company, day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time.min, tzinfo=zoneinfo.ZoneInfo(company.timezone))


def audit_events(*, company, filters: AuditFilters | None = None) -> QuerySet[AuditEvent]:
    """The company's trail, newest first, narrowed by `filters`. Only ever this company's:
    another company's user or object id simply matches nothing."""
    filters = filters or AuditFilters()
    events = AuditEvent.objects.filter(company_id=company.pk)
    if filters.actor_id is not None:
        events = events.filter(actor_id=filters.actor_id)
    if filters.kind:
        events = events.filter(kind=filters.kind)
    if filters.object_type:
        events = events.filter(object_type=filters.object_type)
    text = filters.object_text.strip().lstrip("#")
    if text:
        match = Q(object_label__icontains=text)
        if text.isdigit() and len(text) < 19:
            match |= Q(object_id=int(text))
        events = events.filter(match)
    if filters.start:
        events = events.filter(created_at__gte=_local_midnight(company, filters.start))
    if filters.end:
        events = events.filter(created_at__lt=_local_midnight(company, filters.end + dt.timedelta(days=1)))
    return events.order_by("-created_at", "-id")


def audit_filter_choices(*, company) -> dict[str, list]:
    """Who, which kinds and which object types the company's trail has, for the filters."""
    events = AuditEvent.objects.filter(company_id=company.pk)
    people = (events.exclude(actor_id=None).order_by("actor_id", "-created_at").distinct("actor_id")
              .values_list("actor_id", "actor_name"))
    return {
        "people": sorted(people, key=lambda p: p[1].lower()),
        "kinds": list(events.order_by("kind").values_list("kind", flat=True).distinct()),
        "object_types": list(events.exclude(object_type="").order_by("object_type")
                             .values_list("object_type", flat=True).distinct()),
    }

