import datetime as dt
import zoneinfo
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.http import Http404
from django.utils import timezone
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import ApiKey, ApiKeyError, ApiKeyUsageDay, AuditEvent, Company, Membership, RetailStore


def store_get(*, company, store_id) -> RetailStore:
    """One of the company's stores; another company's id, or no id at all, is a 404."""
    try:
        return company.stores.get(pk=store_id)
    except (RetailStore.DoesNotExist, ValueError, TypeError):
        raise Http404("No such store.") from None


# --- Two-factor authentication ---------------------------------------------------------------

def _has_two_factor(user_ref):
    """True where the user has a confirmed device: an authenticator app, or recovery codes
    (a sign-in then asks for a code)."""
    return (Exists(TOTPDevice.objects.filter(user=user_ref, confirmed=True))
            | Exists(StaticDevice.objects.filter(user=user_ref, confirmed=True)))


def user_has_two_factor(*, user) -> bool:
    """One query; asked on every page of a signed-in user who has not given a code."""
    return get_user_model().objects.filter(pk=user.pk).filter(_has_two_factor(OuterRef("pk"))).exists()


def authenticator_get(*, user) -> TOTPDevice | None:
    """The user's confirmed authenticator app, if two-factor is on."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def recovery_codes_left(*, user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def two_factor_required_by(*, user) -> Company | None:
    """A company of the user's that requires two-factor, if any: then it cannot be turned off."""
    return (Company.objects.filter(memberships__user=user, require_two_factor=True)
            .order_by("name").first())


def members_two_factor(*, company) -> list[Membership]:
    """The company's members, each with `two_factor_on`."""
    return list(company.memberships.select_related("user")
                .annotate(two_factor_on=_has_two_factor(OuterRef("user")))
                .order_by("user__username"))


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



def api_key_get(*, company, key_id) -> ApiKey:
    """One of `company`'s keys; another company's is not found, like a missing one."""
    try:
        return company.api_keys.select_related("company").get(pk=key_id)
    except (ApiKey.DoesNotExist, ValueError):
        raise Http404("No such API key.") from None


@dataclass
class ApiKeyUsage:
    days: list[ApiKeyUsageDay]  # the company's last days, oldest first, zeros filled in
    errors: list[ApiKeyError]  # newest first

    @property
    def requests_total(self) -> int:
        return sum(d.requests for d in self.days)

    @property
    def errors_total(self) -> int:
        return sum(d.errors for d in self.days)


def api_key_usage(*, api_key: ApiKey, days: int = 30, errors: int = 50) -> ApiKeyUsage:
    """What the database holds of a key's usage (flush Redis first for the latest)."""
    today = timezone.localtime(timezone.now(), zoneinfo.ZoneInfo(api_key.company.timezone)).date()
    first = today - dt.timedelta(days=days - 1)
    stored = {row.day: row for row in ApiKeyUsageDay.objects.filter(api_key=api_key, day__gte=first)}
    series = [stored.get(first + dt.timedelta(days=i))
              or ApiKeyUsageDay(api_key=api_key, day=first + dt.timedelta(days=i)) for i in range(days)]
    return ApiKeyUsage(days=series, errors=list(ApiKeyError.objects.filter(api_key=api_key)[:errors]))
