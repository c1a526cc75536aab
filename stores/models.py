import datetime
import json
import re
import secrets
import uuid
import zoneinfo

import pgtrigger
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q
from django.utils import timezone


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not a known time zone (e.g. America/Denver).")


ACCENT_PATTERN = r"^#[0-9a-f]{6}$"
LOGO_MAX_BYTES = 512 * 1024
LOGO_TYPES = ("image/png", "image/jpeg", "image/webp")


def validate_accent_color(value: str) -> None:
    if value and not re.fullmatch(ACCENT_PATTERN, value):
        raise ValidationError(f"“{value}” is not a colour: use a hex colour like #1f6f4a.")


def new_account_uid() -> str:
    return uuid.uuid4().hex


def new_checkin_token() -> str:
    return secrets.token_urlsafe(18)


class Company(models.Model):
    """The tenant. Everything a merchant owns hangs off one of these."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=80, unique=True)
    # What a POS sends, with an API key, to say which account it talks to.
    account_uid = models.CharField(max_length=32, unique=True, default=new_account_uid,
                                   editable=False)
    timezone = models.CharField(max_length=64, default="America/Los_Angeles",
                                validators=[validate_timezone])
    currency = models.CharField(max_length=3, default="USD")
    country = models.CharField(max_length=2, default="US",
                               help_text="ISO country code; phone numbers default to it.")
    # Every member signs in with a code from an authenticator app as well as a password.
    require_two_factor = models.BooleanField("require two-factor authentication", default=False)
    # Branding, on the staff pages and the waiting-room kiosk: an accent colour (blank: the
    # platform's own) and a logo (CompanyLogo); logo_version changes with each new logo so
    # its URL does too (blank: no logo).
    accent_color = models.CharField("accent colour", max_length=7, blank=True,
                                    validators=[validate_accent_color],
                                    help_text="A hex colour like #1f6f4a; blank for the default.")
    logo_version = models.CharField(max_length=16, blank=True, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(accent_color="") | Q(accent_color__regex=ACCENT_PATTERN),
                                   name="company_accent_color_hex"),
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"),
                                   name="company_currency_iso"),
            models.CheckConstraint(condition=Q(country__regex=r"^[A-Z]{2}$"),
                                   name="company_country_iso"),
        ]

    def __str__(self) -> str:
        return self.name


class CompanyLogo(models.Model):
    """The company's logo: a PNG, JPEG or WebP image of at most 512 KB, kept in the database
    (every web server and every backup has it) and served only through the company's
    own pages (stores/branding.py)."""

    company = models.OneToOneField(Company, on_delete=models.CASCADE, primary_key=True, related_name="logo")
    content_type = models.CharField(max_length=16)
    data = models.BinaryField()
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(content_type__in=LOGO_TYPES), name="company_logo_type"),
            models.CheckConstraint(condition=models.lookups.LessThanOrEqual(models.functions.Length("data"),
                                                                            LOGO_MAX_BYTES),
                                   name="company_logo_size"),
        ]

    def __str__(self) -> str:
        return f"{self.company} logo ({self.content_type})"


class RetailStore(models.Model):
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="stores")
    name = models.CharField(max_length=200)
    address = models.CharField(max_length=300, blank=True)
    city = models.CharField(max_length=100, blank=True)
    state = models.CharField(
        "state / province", max_length=64,
        help_text="Two-letter state or province code; it is the store's market (e.g. CO, ON).",
    )
    postal_code = models.CharField(max_length=20, blank=True)
    timezone = models.CharField(max_length=64, blank=True, validators=[validate_timezone],
                                help_text="Leave blank to use the company's time zone.")
    # Ids this store has in other systems (license number, a POS's own id...), free form.
    external_ids = models.JSONField(default=dict, blank=True)
    opt_in_queue_enabled = models.BooleanField("opt-in queue", default=False)
    checkin_token = models.CharField(max_length=32, unique=True, default=new_checkin_token,
                                     editable=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="store_name_unique_per_company"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def effective_timezone(self) -> str:
        return self.timezone or self.company.timezone


class Role(models.TextChoices):
    ADMIN = "admin", "Admin"
    MARKETER = "marketer", "Marketer"
    BUDTENDER = "budtender", "Budtender"


class Membership(models.Model):
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE,
                             related_name="memberships")
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices)
    # Empty means every store of the company.
    stores = models.ManyToManyField(RetailStore, blank=True, related_name="memberships")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["company__name"]
        constraints = [
            models.UniqueConstraint(fields=["user", "company"], name="membership_unique"),
            models.CheckConstraint(condition=Q(role__in=Role.values), name="membership_role_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.user} @ {self.company} ({self.role})"


class IntegrationLevel(models.IntegerChoices):
    PUSH = 0, "Level 0 — push only (send_transaction)"
    PUSH_PULL = 1, "Level 1 — push and pull (lookup, balance, redeem)"
    TWO_WAY = 2, "Level 2 — two-way (also webhooks to the POS)"


# A key's request rate: defaults for a register, and the most a key may be given (the
# forms, the service and a CheckConstraint hold to these).
API_RATE_DEFAULT = 20
API_BURST_DEFAULT = 40
API_RATE_MAX = 10_000
API_BURST_MAX = 20_000


class ApiKey(models.Model):
    """How a POS authenticates: the company's account UID plus one of these keys. Only a
    hash of the key is kept; the key itself is shown once, when it is created."""

    Level = IntegrationLevel

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=120)
    prefix = models.CharField(max_length=16, unique=True,
                              help_text="The key's first characters, shown in lists.")
    key_hash = models.CharField(max_length=64, unique=True)
    level = models.PositiveSmallIntegerField(choices=IntegrationLevel.choices,
                                             default=IntegrationLevel.PUSH_PULL)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    # Written from the usage counted in Redis, about once a minute (stores/api_usage.py).
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    # The key's request rate: a token bucket refilled at `rate_per_second` that holds
    # `burst` requests; past it the POS gets 429 rate_limited with Retry-After.
    rate_per_second = models.PositiveIntegerField(default=API_RATE_DEFAULT, db_default=API_RATE_DEFAULT)
    burst = models.PositiveIntegerField(default=API_BURST_DEFAULT, db_default=API_BURST_DEFAULT)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(level__in=[0, 1, 2]), name="api_key_level_valid"),
            models.CheckConstraint(
                condition=models.Q(rate_per_second__gte=1, rate_per_second__lte=API_RATE_MAX),
                name="api_key_rate_valid"),
            models.CheckConstraint(condition=models.Q(burst__gte=models.F("rate_per_second"),
                                                      burst__lte=API_BURST_MAX),
                                   name="api_key_burst_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None


class ApiKeyUsageDay(models.Model):
    """A key's requests and error answers (status >= 400) on one day of its company's
    time zone, added up from the counts in Redis by the flush every minute."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="usage_days")
    day = models.DateField()
    requests = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["day"]
        constraints = [
            models.UniqueConstraint(fields=["api_key", "day"], name="api_key_usage_day_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.api_key_id} {self.day}: {self.requests} requests, {self.errors} errors"


class ApiKeyError(models.Model):
    """One error answer a key got; the flush keeps the newest API_ERRORS_KEPT per key."""

    api_key = models.ForeignKey(ApiKey, on_delete=models.CASCADE, related_name="recent_errors")
    at = models.DateTimeField()
    status = models.PositiveSmallIntegerField()
    code = models.CharField(max_length=64, blank=True)
    method = models.CharField(max_length=10, blank=True)
    path = models.CharField(max_length=200, blank=True)
    request_id = models.CharField(max_length=128, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["api_key", "-at"], name="api_key_error_recent")]

    def __str__(self) -> str:
        return f"{self.status} {self.code} {self.path}"


class AuditEvent(models.Model):
    """One staff write or export: who, from where, what, and each field's before and
    after. Rows are only ever added (a trigger refuses UPDATE and DELETE) and hold plain
    ids and text, never foreign keys, so they outlive the user, the object and even the
    company they speak of."""

    # No constraint: deleting a company must not touch (or be blocked by) its trail. The
    # composite indexes below serve every lookup by company.
    company = models.ForeignKey(Company, on_delete=models.DO_NOTHING, db_constraint=False,
                                db_index=False, related_name="+")
    created_at = models.DateTimeField(default=timezone.now)
    # No foreign key: the user may be deleted later; the trail keeps their name.
    actor_id = models.BigIntegerField(null=True, blank=True)
    actor_name = models.CharField(max_length=150, blank=True)
    actor_email = models.CharField(max_length=254, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    kind = models.CharField(max_length=64, help_text="What happened, e.g. offer.updated.")
    object_type = models.CharField(max_length=64, blank=True, help_text="e.g. offer, persona.")
    object_id = models.BigIntegerField(null=True, blank=True)
    object_label = models.CharField(max_length=300, blank=True, help_text="Its name at the time.")
    # {field: [before, after]}; secrets appear only as "(changed)".
    changes = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    extra = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["company", "-created_at"], name="audit_company_time"),
            models.Index(fields=["company", "object_type", "object_id"], name="audit_company_object"),
        ]
        triggers = [
            pgtrigger.Protect(name="audit_append_only", operation=pgtrigger.Update | pgtrigger.Delete),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.object_type} #{self.object_id} by {self.actor_name or 'the system'}"

    @property
    def kind_label(self) -> str:
        """"points.adjusted" as a person reads it: "Points adjusted"."""
        return self.kind.replace(".", " ").replace("_", " ").capitalize()

    @property
    def change_rows(self) -> list[tuple[str, str, str]]:
        """(field, before, after) as text, by field name."""
        rows = []
        for field, pair in sorted((self.changes or {}).items()):
            before, after = pair if isinstance(pair, list) and len(pair) == 2 else (None, pair)
            rows.append((field, audit_text(before), audit_text(after)))
        return rows

    @property
    def extra_rows(self) -> list[tuple[str, str]]:
        return [(key, audit_text(value)) for key, value in sorted((self.extra or {}).items())]


_ISO_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d+)?)?([+-]\d{2}:\d{2}|Z)$")


def audit_text(value) -> str:
    """A value of the trail as a person reads it; a moment in the current time zone."""
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ", ".join(audit_text(v) for v in value) or "(none)"
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    if isinstance(value, str) and _ISO_DATETIME.match(value):
        moment = timezone.localtime(datetime.datetime.fromisoformat(value))
        return f"{moment:%b %-d, %Y %H:%M:%S}"
    return str(value)
