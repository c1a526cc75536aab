"""Connections to report sources, how their files map onto our fields, and every sync."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

from django.db import models
from django.db.models import Q

from loyalty.models import Source
from stores.crypto import decrypt, encrypt, last4
from stores.models import Company, RetailStore


class Provider(models.TextChoices):
    """The built-in connectors' keys. Connection.provider takes any key registered in
    `integrations.connectors.CONNECTORS`; these name the built-in ones in code."""

    COVA = "cova", "Cova POS"
    S3 = "s3", "Amazon S3 bucket (or S3-compatible)"
    ONEDRIVE = "onedrive", "OneDrive folder"
    FOLDER = "folder", "Folder on the server"


class Connection(models.Model):
    """A company's link to one source of POS reports."""

    Provider = Provider

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="connections")
    name = models.CharField(max_length=120)
    # The key of its connector in the registry (integrations.connectors), checked when it is created.
    provider = models.CharField(max_length=20)
    # The loyalty source its customers and sales are recorded under ("Sourced from").
    source = models.OneToOneField(Source, on_delete=models.PROTECT, related_name="connection")
    settings = models.JSONField(default=dict, blank=True)
    credentials_encrypted = models.TextField(blank=True)
    credentials_hint = models.JSONField(default=dict, blank=True,
                                        help_text="The last characters of each secret, for display.")
    # Header in the file -> canonical field name; headers not listed are matched by name.
    header_map = models.JSONField(default=dict, blank=True)
    default_store = models.ForeignKey(
        RetailStore, null=True, blank=True, on_delete=models.SET_NULL, related_name="+",
        help_text="For rows without a store column or value.",
    )
    enroll_new_customers = models.BooleanField(
        default=True, help_text="Customers first seen in a report join the loyalty program.",
    )
    is_frozen = models.BooleanField("frozen", default=False)
    notice = models.TextField(blank=True, help_text="What the platform changed on its own and why "
                                                    "(e.g. froze it); shown until its settings are saved.")
    sync_time = models.TimeField(default=dt.time(2, 0),
                                 help_text="Nightly sync, in the company's time zone.")
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # Cova: the pages show the locations stored here and never wait on Cova for them.
    locations_fetched_at = models.DateTimeField(null=True, blank=True)
    locations_refresh_started_at = models.DateTimeField(
        null=True, blank=True, help_text="Set while a refresh of the locations from Cova is going.")
    locations_error = models.TextField(blank=True, help_text="Why the last refresh of the locations failed.")
    # "Test connection" runs in the background (it reaches outside); the page follows it.
    test_started_at = models.DateTimeField(null=True, blank=True,
                                           help_text="Set while a Test connection is going.")
    test_ok = models.BooleanField(null=True, blank=True, help_text="How the last Test connection went.")
    test_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="connection_name_unique"),
            models.CheckConstraint(condition=~Q(provider=""), name="connection_provider_set"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def provider_label(self) -> str:
        """"Folder on the server": its connector's label."""
        from .connectors import label_of

        return label_of(self.provider)

    def credentials_plain(self) -> dict:
        return json.loads(decrypt(self.credentials_encrypted)) if self.credentials_encrypted else {}

    def set_credentials(self, values: dict) -> None:
        """Store secrets encrypted; remember only their last characters for the pages."""
        self.credentials_encrypted = encrypt(json.dumps(values))
        self.credentials_hint = {name: last4(value) for name, value in values.items() if value}


class CovaCredential(models.Model):
    """One set of API keys Cova released, with its own options, watermarks and schedule.
    A connection may hold several (one per Cova company, or per market)."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="cova_credentials")
    client_id = models.CharField(max_length=200)
    username = models.CharField(max_length=200)
    cova_company_id = models.CharField("Cova company id", max_length=40)
    # client_secret and password, Fernet-encrypted together; shown only as their last characters.
    secrets_encrypted = models.TextField()
    secrets_hint = models.JSONField(default=dict, blank=True)
    accounts_url = models.URLField(blank=True, help_text="Leave empty for Cova's sign-in server.")
    api_url = models.URLField(blank=True, help_text="Leave empty for Cova's API server.")
    # Optional settings
    markets = models.JSONField(default=list, blank=True,
                               help_text="State/province codes to sync customers from; empty for all.")
    is_frozen = models.BooleanField("frozen", default=False)
    location_ids = models.JSONField(default=list, blank=True,
                                    help_text="Cova location ids to import sales from; empty for all.")
    pricing_group_id = models.CharField(max_length=100, blank=True,
                                        help_text="Forced on every customer the platform creates in Cova.")
    skip_payment_methods = models.BooleanField(default=False)
    # Where the next sync starts: customers modified since, sales completed since (per location).
    customers_since = models.DateTimeField(null=True, blank=True)
    sales_since = models.JSONField(default=dict, blank=True)
    sync_time = models.TimeField(default=dt.time(2, 30),
                                 help_text="Nightly sync, in the company's time zone.")
    periodic_task = models.OneToOneField("django_celery_beat.PeriodicTask", null=True, blank=True,
                                         on_delete=models.SET_NULL, related_name="+")
    last_synced_at = models.DateTimeField(null=True, blank=True)
    # What we know works: set by a successful test or sync; a failed one sets failing_since
    # (kept from the first failure) and last_error, until the next success clears them.
    verified_at = models.DateTimeField(null=True, blank=True)
    failing_since = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    # "Test connection" runs in the background (it reaches Cova); the page follows it.
    test_started_at = models.DateTimeField(null=True, blank=True,
                                           help_text="Set while a Test connection is going.")
    test_ok = models.BooleanField(null=True, blank=True, help_text="How the last Test connection went.")
    test_message = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "cova_company_id", "username"],
                                    name="cova_credential_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.username} (Cova company {self.cova_company_id})"

    @property
    def status(self) -> str:
        """frozen, failing, connected (a test or sync worked), or not_verified (neither yet)."""
        if self.is_frozen:
            return "frozen"
        if self.failing_since is not None:
            return "failing"
        return "connected" if self.verified_at is not None else "not_verified"

    def secrets_plain(self) -> dict:
        return json.loads(decrypt(self.secrets_encrypted)) if self.secrets_encrypted else {}

    def set_secrets(self, *, client_secret: str, password: str) -> None:
        self.secrets_encrypted = encrypt(json.dumps({"client_secret": client_secret, "password": password}))
        self.secrets_hint = {"client_secret": last4(client_secret), "password": last4(password)}


class CovaLocation(models.Model):
    """A location a Cova credential sees, as Cova listed it when last asked (a credential
    test, a sync or "Refresh from Cova"). The pages read these rows, never Cova itself."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="cova_locations")
    credential = models.ForeignKey(CovaCredential, on_delete=models.CASCADE, related_name="locations")
    location_id = models.CharField(max_length=40)
    name = models.CharField(max_length=200, blank=True)
    state = models.CharField(max_length=40, blank=True)
    timezone = models.CharField(max_length=64, blank=True)
    fetched_at = models.DateTimeField()

    class Meta:
        ordering = ["name", "location_id"]
        constraints = [
            models.UniqueConstraint(fields=["credential", "location_id"], name="cova_location_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.name} (#{self.location_id})"


class StoreMapping(models.Model):
    """Which of our stores a location of the source (a value in the reports, a Cova
    location id) stands for."""

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="store_mappings")
    store = models.ForeignKey(RetailStore, on_delete=models.CASCADE, related_name="+")
    external_location_id = models.CharField("location in the reports", max_length=200)
    location_name = models.CharField(max_length=200, blank=True, help_text="The source's name for it.")

    class Meta:
        ordering = ["external_location_id"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "external_location_id"],
                                    name="store_mapping_unique_location"),
        ]

    def __str__(self) -> str:
        return f"{self.external_location_id} → {self.store}"


class SyncRun(models.Model):
    class Trigger(models.TextChoices):
        SCHEDULE = "schedule", "Nightly schedule"
        MANUAL = "manual", "Sync now"
        COMMAND = "command", "Command line"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        SUCCEEDED = "succeeded", "Succeeded"
        # It finished, but some rows or whole files were rejected: someone should look.
        COMPLETED_WITH_ERRORS = "completed_with_errors", "Completed with errors"
        FAILED = "failed", "Failed"
        # Its worker stopped renewing the lease (killed, lost): nothing of the file it was on was kept.
        INTERRUPTED = "interrupted", "Interrupted"
        # A nightly run that did not start; `error` says why.
        SKIPPED = "skipped", "Skipped"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="runs")
    credential = models.ForeignKey(CovaCredential, null=True, blank=True, on_delete=models.CASCADE,
                                   related_name="runs")
    trigger = models.CharField(max_length=16, choices=Trigger.choices)
    state = models.CharField(max_length=24, choices=State.choices, default=State.QUEUED)
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    # While running, the worker renews this; once it has passed, the worker is taken as dead.
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(default=0)
    current_file = models.CharField(max_length=500, blank=True)
    files_seen = models.PositiveIntegerField(default=0)
    files_imported = models.PositiveIntegerField(default=0)
    files_skipped = models.PositiveIntegerField(default=0)
    files_rejected = models.PositiveIntegerField(default=0)
    files_removed = models.PositiveIntegerField(default=0)
    rows_accepted = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    rows_too_old = models.PositiveIntegerField(default=0)
    # API syncs (Cova): what came in.
    customers_synced = models.PositiveIntegerField(default=0)
    sales_synced = models.PositiveIntegerField(default=0)
    sales_unmapped = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=["queued", "running", "succeeded",
                                                           "completed_with_errors", "failed",
                                                           "interrupted", "skipped"]),
                                   name="sync_run_state_valid"),
            models.CheckConstraint(condition=Q(finished_at__isnull=True) | Q(started_at__isnull=False),
                                   name="sync_run_finished_after_started"),
        ]
        indexes = [models.Index(fields=["connection", "-created_at"], name="sync_run_connection_idx")]

    def __str__(self) -> str:
        return f"{self.connection} {self.get_trigger_display()} {self.created_at:%Y-%m-%d %H:%M}"

    @property
    def is_active(self) -> bool:
        return self.state in (self.State.QUEUED, self.State.RUNNING)

    @property
    def rows_summary(self) -> str:
        """"0 of 46 rows accepted, 46 rejected", and the files rejected whole."""
        parts = []
        if self.rows_accepted or self.rows_rejected:
            total = self.rows_accepted + self.rows_rejected
            parts.append(f"{self.rows_accepted} of {total} row{'s' if total != 1 else ''} accepted, "
                         f"{self.rows_rejected} rejected")
        if self.files_rejected:
            parts.append(f"{self.files_rejected} file{'s' if self.files_rejected != 1 else ''} rejected")
        return "; ".join(parts)

    @property
    def duration(self):
        if self.started_at and self.finished_at:
            return self.finished_at - self.started_at
        return None


class ImportedFile(models.Model):
    """One report file of a connection, as last seen and imported."""

    class State(models.TextChoices):
        IMPORTED = "imported", "Imported"
        REJECTED = "rejected", "Rejected"
        REMOVED = "removed", "Removed from the source"
        PURGED = "purged", "Data removed"

    connection = models.ForeignKey(Connection, on_delete=models.CASCADE, related_name="files")
    key = models.CharField(max_length=1000)
    etag = models.CharField(max_length=200, blank=True)
    content_hash = models.CharField(max_length=64, blank=True)
    size = models.BigIntegerField(default=0)
    state = models.CharField(max_length=16, choices=State.choices)
    headers = models.JSONField(default=list, blank=True)
    encoding = models.CharField(max_length=20, blank=True)
    delimiter = models.CharField(max_length=4, blank=True)
    rows_total = models.PositiveIntegerField(default=0)
    rows_accepted = models.PositiveIntegerField(default=0)
    rows_rejected = models.PositiveIntegerField(default=0)
    rows_too_old = models.PositiveIntegerField(default=0)
    transactions = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True, help_text="Why the whole file was rejected.")
    last_run = models.ForeignKey(SyncRun, null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="files")
    imported_at = models.DateTimeField(null=True, blank=True)
    removed_at = models.DateTimeField(null=True, blank=True)
    purged_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-imported_at", "key"]
        constraints = [
            models.UniqueConstraint(fields=["connection", "key"], name="imported_file_unique_key"),
            models.CheckConstraint(condition=Q(state__in=["imported", "rejected", "removed", "purged"]),
                                   name="imported_file_state_valid"),
        ]

    def __str__(self) -> str:
        return self.key

    @property
    def name(self) -> str:
        return self.key.rsplit("/", 1)[-1]

    @property
    def rejection_reason(self) -> str:
        """The first sentence of why it was rejected, without the file's name:
        "missing the required column 'customerId'"."""
        reason = self.error.split(". ", 1)[0].rstrip(".")
        for prefix in (f"{self.key} ", f"{self.name} "):
            if reason.startswith(prefix):
                reason = reason[len(prefix):]
                break
        return reason.removeprefix("is ")

    def rejected_unchanged_message(self) -> str:
        """What to say when the file we rejected turns up again, unchanged."""
        when = ""
        if self.imported_at is not None:
            local = self.imported_at.astimezone(ZoneInfo(self.connection.company.timezone))
            when = f" on {local:%b} {local.day}"
        return (f"{self.name} was rejected{when} ({self.rejection_reason}) and has not changed since; "
                "fix the file or the header mapping, then run again.")


class RowError(models.Model):
    """A row of a file that was skipped, where and why."""

    imported_file = models.ForeignKey(ImportedFile, on_delete=models.CASCADE, related_name="row_errors")
    row_number = models.PositiveIntegerField(help_text="Line in the file; the header is row 1.")
    column = models.CharField(max_length=200, blank=True)
    value = models.TextField(blank=True)
    reason = models.CharField(max_length=500)
    row = models.JSONField(default=list, help_text="The row's values as read, for the download.")

    class Meta:
        ordering = ["row_number", "id"]
        indexes = [models.Index(fields=["imported_file", "row_number"], name="row_error_file_idx")]

    def __str__(self) -> str:
        return f"row {self.row_number}: {self.reason}"


class SignupPush(models.Model):
    """A persona enrolled here, created in the POS (Cova) so the register knows them."""

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    persona = models.ForeignKey("loyalty.Persona", on_delete=models.CASCADE, related_name="signup_pushes")
    credential = models.ForeignKey(CovaCredential, on_delete=models.CASCADE, related_name="pushes")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    external_id = models.CharField(max_length=200, blank=True, help_text="The id the POS gave them.")
    attempts = models.PositiveSmallIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["persona", "credential"], name="signup_push_unique"),
            models.CheckConstraint(condition=Q(state__in=["queued", "sent", "failed"]),
                                   name="signup_push_state_valid"),
            models.CheckConstraint(condition=~Q(state="sent") | ~Q(external_id=""),
                                   name="signup_push_sent_has_id"),
        ]

    def __str__(self) -> str:
        return f"{self.persona} → {self.credential} ({self.state})"
