import secrets
import uuid
import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q


def validate_timezone(value: str) -> None:
    if value not in zoneinfo.available_timezones():
        raise ValidationError(f"'{value}' is not a known time zone (e.g. America/Denver).")


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
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "companies"
        ordering = ["name"]
        constraints = [
            models.CheckConstraint(condition=Q(currency__regex=r"^[A-Z]{3}$"),
                                   name="company_currency_iso"),
            models.CheckConstraint(condition=Q(country__regex=r"^[A-Z]{2}$"),
                                   name="company_country_iso"),
        ]

    def __str__(self) -> str:
        return self.name


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
    last_used_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=models.Q(level__in=[0, 1, 2]), name="api_key_level_valid"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None
