"""Customers' own sign-ins and the text messages sent to them."""

from django.db import models
from django.db.models import Q
from django.utils import timezone

from loyalty.models import Persona
from stores.models import Company


class LoyaltyPageSettings(models.Model):
    """Settings › Loyalty page: whether the company's customer page is open, the minimum age
    to join per market, and how its text messages are sent. One per company (made on first
    read by `members.selectors.page_settings`)."""

    class SmsProvider(models.TextChoices):
        PLATFORM = "platform", "The platform's (SMS_PROVIDER setting)"
        TWILIO = "twilio", "Our Twilio account"

    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="loyalty_page")
    enabled = models.BooleanField("loyalty page on", default=False)
    minimum_age = models.PositiveSmallIntegerField(default=21,
                                                   help_text="To join, unless the market says otherwise.")
    # {"CO": 21, "MI": 18}: the market's (state's) minimum age to join, over minimum_age.
    minimum_ages = models.JSONField(default=dict, blank=True)
    sms_provider = models.CharField(max_length=12, choices=SmsProvider.choices, default=SmsProvider.PLATFORM)
    twilio_account_sid = models.CharField(max_length=64, blank=True)
    # The sender: a phone number in E.164, or a Messaging Service SID (MG...).
    twilio_sender = models.CharField(max_length=64, blank=True)
    twilio_auth_token_encrypted = models.TextField(blank=True)
    twilio_auth_token_last4 = models.CharField(max_length=4, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "loyalty page settings"
        constraints = [
            models.CheckConstraint(condition=Q(minimum_age__gte=13) & Q(minimum_age__lte=99),
                                   name="loyalty_page_minimum_age_range"),
            models.CheckConstraint(condition=Q(sms_provider__in=["platform", "twilio"]),
                                   name="loyalty_page_sms_provider_valid"),
        ]

    def __str__(self):
        return f"Loyalty page of {self.company_id}"

    def minimum_age_for(self, market: str) -> int:
        return int(self.minimum_ages.get((market or "").upper(), self.minimum_age))


class CustomerSession(models.Model):
    """A customer signed in to their company's loyalty page: its own cookie, apart from staff
    sessions. Only the token's SHA-256 is stored; revoking sets revoked_at."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="customer_sessions")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="customer_sessions")
    token_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    revoked_at = models.DateTimeField(null=True, blank=True)
    user_agent = models.CharField(max_length=200, blank=True)
    ip = models.GenericIPAddressField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["persona", "-last_seen_at"], name="customer_session_recent_idx")]
        constraints = [models.CheckConstraint(condition=Q(expires_at__gt=models.F("created_at")),
                                              name="customer_session_expires_after_created")]

    def __str__(self):
        return f"{self.persona_id} since {self.created_at:%Y-%m-%d %H:%M}"


class LoginCode(models.Model):
    """A one-time sign-in code sent by SMS to a phone for one company's page. Only its
    HMAC is stored; it expires, counts wrong tries and is used once."""

    MAX_TRIES = 5

    class Purpose(models.TextChoices):
        SIGN_IN = "sign_in", "Sign in"
        ERASE = "erase", "Delete the account"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    phone = models.CharField(max_length=20, help_text="E.164")
    purpose = models.CharField(max_length=8, choices=Purpose.choices, default=Purpose.SIGN_IN)
    code_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField()
    attempts = models.PositiveSmallIntegerField(default=0)
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["company", "phone", "-created_at"], name="login_code_phone_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(expires_at__gt=models.F("created_at")),
                                   name="login_code_expires_after_created"),
            models.CheckConstraint(condition=Q(attempts__lte=5), name="login_code_attempts_max"),
            models.CheckConstraint(condition=Q(purpose__in=["sign_in", "erase"]),
                                   name="login_code_purpose_valid"),
            models.CheckConstraint(condition=~Q(phone="") & ~Q(code_hash=""), name="login_code_filled"),
        ]

    def __str__(self):
        return f"Code for {self.phone} at {self.created_at:%Y-%m-%d %H:%M}"


class SentMessage(models.Model):
    """Every text message the platform sent (or tried to) for a company: the operator's
    "Sent messages" page in Django admin, and what the local provider delivers to."""

    class State(models.TextChoices):
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="sent_messages")
    to = models.CharField(max_length=20)
    body = models.TextField()
    purpose = models.CharField(max_length=32, help_text="sign_in, join, test, ...")
    provider = models.CharField(max_length=20)
    provider_id = models.CharField(max_length=64, blank=True, help_text="The provider's message id.")
    state = models.CharField(max_length=8, choices=State.choices)
    error = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [models.CheckConstraint(condition=Q(state__in=["sent", "failed"]),
                                              name="sent_message_state_valid")]

    def __str__(self):
        return f"{self.to}: {self.body[:40]}"
