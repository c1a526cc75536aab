"""Campaigns: a message (SMS or email) to an audience, who got it, who was held out, and
what each message became (sent, delivered, failed, clicked)."""

from datetime import time
from decimal import Decimal

from django.conf import settings
from django.db import models
from django.db.models import Q

from audiences.models import Audience
from loyalty.models import Persona
from stores.models import Company


class Channel(models.TextChoices):
    SMS = "sms", "SMS"
    EMAIL = "email", "Email"


class MessagingSettings(models.Model):
    """Settings › Messaging: the company's rules for marketing messages. One per company
    (made on first read by `campaigns.selectors.messaging_settings`)."""

    company = models.OneToOneField(Company, on_delete=models.CASCADE, related_name="messaging")
    # Frequency caps: at most `count` marketing messages of a channel in `days` days.
    sms_cap_count = models.PositiveSmallIntegerField("SMS per period", default=2)
    sms_cap_days = models.PositiveSmallIntegerField("SMS period (days)", default=7)
    email_cap_count = models.PositiveSmallIntegerField("emails per period", default=3)
    email_cap_days = models.PositiveSmallIntegerField("email period (days)", default=7)
    # Messages go out only between these hours, in the recipient's store's time zone.
    send_window_start = models.TimeField("send from", default=time(9, 0))
    send_window_end = models.TimeField("send until", default=time(20, 0))
    opt_out_line = models.CharField(max_length=60, default="Reply STOP to opt out",
                                    help_text="Appended to every marketing text message.")
    sms_segment_price = models.DecimalField("price per SMS segment", max_digits=6, decimal_places=4,
                                            default=Decimal("0.0079"))
    email_from_name = models.CharField(max_length=100, blank=True,
                                       help_text="Blank: the company's name.")
    postal_address = models.CharField(max_length=300, blank=True,
                                      help_text="Printed in every marketing email's footer.")
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "messaging settings"
        constraints = [
            models.CheckConstraint(condition=Q(sms_cap_count__gte=1) & Q(sms_cap_count__lte=50)
                                   & Q(email_cap_count__gte=1) & Q(email_cap_count__lte=50),
                                   name="messaging_cap_count_range"),
            models.CheckConstraint(condition=Q(sms_cap_days__gte=1) & Q(sms_cap_days__lte=90)
                                   & Q(email_cap_days__gte=1) & Q(email_cap_days__lte=90),
                                   name="messaging_cap_days_range"),
            models.CheckConstraint(condition=Q(send_window_start__lt=models.F("send_window_end")),
                                   name="messaging_window_ordered"),
            models.CheckConstraint(condition=~Q(opt_out_line=""), name="messaging_opt_out_line_set"),
            models.CheckConstraint(condition=Q(sms_segment_price__gte=0),
                                   name="messaging_price_not_negative"),
        ]

    def __str__(self):
        return f"Messaging settings of {self.company_id}"


class Campaign(models.Model):
    class Status(models.TextChoices):
        DRAFT = "draft", "Draft"
        SCHEDULED = "scheduled", "Scheduled"
        SENDING = "sending", "Sending"
        PAUSED = "paused", "Paused"
        SENT = "sent", "Sent"
        CANCELLED = "cancelled", "Cancelled"

    class EmailTemplate(models.TextChoices):
        ANNOUNCEMENT = "announcement", "Announcement"
        OFFER = "offer", "Offer with a button"
        PLAIN = "plain", "Plain letter"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="campaigns")
    name = models.CharField(max_length=120)
    channel = models.CharField(max_length=8, choices=Channel.choices, default=Channel.SMS)
    audience = models.ForeignKey(Audience, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="campaigns")
    sms_body = models.TextField("message", blank=True)
    email_subject = models.CharField("subject", max_length=200, blank=True)
    email_preheader = models.CharField("preheader", max_length=200, blank=True,
                                       help_text="The line an inbox shows after the subject.")
    email_template = models.CharField(max_length=20, choices=EmailTemplate.choices,
                                      default=EmailTemplate.ANNOUNCEMENT)
    email_body = models.TextField("email text", blank=True)
    email_button_text = models.CharField(max_length=60, blank=True)
    email_button_url = models.URLField(max_length=500, blank=True)
    holdout_percent = models.PositiveSmallIntegerField("holdout (%)", default=10)
    scheduled_at = models.DateTimeField(null=True, blank=True, help_text="Blank: send now.")
    report_days = models.PositiveSmallIntegerField("report window (days)", default=7)
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.DRAFT)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)
    # Filled when it is queued: who was in the audience, who will receive, who is held out,
    # and why the rest were left out ({"no_consent": 2000, "under_age": 300, ...}).
    queued_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    audience_size = models.PositiveIntegerField(default=0)
    recipient_count = models.PositiveIntegerField(default=0)
    holdout_count = models.PositiveIntegerField(default=0)
    exclusions = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="campaign_name_unique"),
            models.CheckConstraint(condition=Q(channel__in=["sms", "email"]), name="campaign_channel_valid"),
            models.CheckConstraint(
                condition=Q(status__in=["draft", "scheduled", "sending", "paused", "sent", "cancelled"]),
                name="campaign_status_valid"),
            models.CheckConstraint(condition=Q(holdout_percent__lte=50),
                                   name="campaign_holdout_at_most_half"),
            models.CheckConstraint(condition=Q(report_days__gte=1) & Q(report_days__lte=90),
                                   name="campaign_report_days_range"),
            models.CheckConstraint(condition=Q(status__in=["draft", "scheduled"])
                                   | Q(queued_at__isnull=False),
                                   name="campaign_sending_was_queued"),
        ]
        indexes = [models.Index(fields=["status", "scheduled_at"], name="campaign_due_idx")]

    def __str__(self):
        return self.name

    @property
    def is_editable(self) -> bool:
        return self.status in (self.Status.DRAFT, self.Status.SCHEDULED)


class CampaignRecipient(models.Model):
    """One persona of a queued campaign: a recipient or held out. The row exists before its
    message is sent and is claimed (state "claimed") before the provider is called, so no
    persona ever gets a campaign's message twice."""

    class Group(models.TextChoices):
        SEND = "send", "Recipient"
        HOLDOUT = "holdout", "Holdout"

    class State(models.TextChoices):
        PENDING = "pending", "Waiting"
        CLAIMED = "claimed", "Sending"
        SENT = "sent", "Sent"
        DELIVERED = "delivered", "Delivered"
        UNDELIVERED = "undelivered", "Undelivered"
        FAILED = "failed", "Failed"
        SKIPPED = "skipped", "Skipped"
        CANCELLED = "cancelled", "Cancelled"
        HELD_OUT = "held_out", "Held out"

    id = models.BigAutoField(primary_key=True)
    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="recipients",
                                 db_index=False)
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="+")
    group = models.CharField(max_length=8, choices=Group.choices)
    to = models.CharField(max_length=254, blank=True, help_text="The phone or email at queue time.")
    # The recipient's store's time zone: messages go out only inside its allowed hours.
    time_zone = models.CharField(max_length=64)
    due_at = models.DateTimeField(help_text="Not before: the start of the recipient's next allowed hours.")
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    provider_id = models.CharField(max_length=64, blank=True)
    error_code = models.CharField(max_length=32, blank=True)
    error = models.CharField(max_length=300, blank=True)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    status_at = models.DateTimeField(null=True, blank=True, help_text="The provider's last status report.")

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["campaign", "persona"], name="campaign_recipient_once"),
            models.CheckConstraint(condition=Q(group__in=["send", "holdout"]),
                                   name="campaign_recipient_group_valid"),
            models.CheckConstraint(
                condition=Q(state__in=["pending", "claimed", "sent", "delivered", "undelivered", "failed",
                                       "skipped", "cancelled", "held_out"]),
                name="campaign_recipient_state_valid"),
            models.CheckConstraint(condition=Q(group="send") | Q(state="held_out"),
                                   name="campaign_holdout_never_sent"),
        ]
        indexes = [
            models.Index(fields=["campaign", "due_at", "id"], condition=Q(state="pending"),
                         name="campaign_rcpt_due_idx"),
            models.Index(fields=["campaign", "state"], name="campaign_rcpt_state_idx"),
            models.Index(fields=["provider_id"], condition=~Q(provider_id=""),
                         name="campaign_rcpt_provider_idx"),
            # The frequency cap: a persona's messages sent lately.
            models.Index(fields=["persona", "sent_at"], condition=Q(sent_at__isnull=False),
                         name="campaign_rcpt_sent_idx"),
        ]

    def __str__(self):
        return f"{self.persona_id} in campaign {self.campaign_id}"


class CampaignLink(models.Model):
    """A link in a campaign's message, replaced by a short tracked one on our domain:
    /l/<code>/<recipient> redirects to `url` and counts the click."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="links")
    code = models.CharField(max_length=12, unique=True)
    url = models.URLField(max_length=2000)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["campaign", "url"], name="campaign_link_url_once")]

    def __str__(self):
        return f"{self.code} -> {self.url}"


class LinkClick(models.Model):
    link = models.ForeignKey(CampaignLink, on_delete=models.CASCADE, related_name="clicks")
    recipient = models.ForeignKey(CampaignRecipient, null=True, blank=True, on_delete=models.CASCADE,
                                  related_name="clicks")
    clicked_at = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["link", "recipient"], name="link_click_recipient_idx")]

    def __str__(self):
        return f"click on {self.link_id}"


class InboundMessage(models.Model):
    """A text message a customer sent to the company's number (STOP, START, HELP, ...),
    once per provider message id: the provider's retries of the webhook change nothing."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    provider_id = models.CharField(max_length=64)
    sender = models.CharField(max_length=20)
    body = models.CharField(max_length=1600)
    keyword = models.CharField(max_length=12, blank=True, help_text="stop, start, help, or blank.")
    persona = models.ForeignKey(Persona, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    received_at = models.DateTimeField()

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["company", "provider_id"],
                                               name="inbound_message_once")]

    def __str__(self):
        return f"{self.sender}: {self.body[:40]}"
