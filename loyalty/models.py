import secrets
from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.fields import ArrayField
from django.contrib.postgres.indexes import OpClass
from django.db import IntegrityError, models
from django.db import transaction as db
from django.db.models import F, Q
from django.db.models.functions import Lower, Upper
from django.utils import timezone

from stores.crypto import decrypt, encrypt
from stores.models import Company, RetailStore

from .bounds import BUDTENDER_ADJUSTMENT_LIMIT_DEFAULT

MONEY = {"max_digits": 12, "decimal_places": 2}


class SourceKind(models.TextChoices):
    COVA = "cova", "Cova"
    S3 = "s3", "S3 reports"
    ONEDRIVE = "onedrive", "OneDrive reports"
    FOLDER = "folder", "Folder reports"
    # A POS connector with no kind of its own here (integrations.connectors).
    POS = "pos", "POS connector"
    POS_API = "pos_api", "POS API"
    WAITING_ROOM = "waiting_room", "Waiting room"
    STAFF = "staff", "Staff"
    DEMO = "demo", "Demo data"
    LOYALTY_PAGE = "loyalty_page", "Loyalty page"


class Source(models.Model):
    """Where customers and sales come from: an integration connection, the POS API, the
    waiting room, staff. Personas say which source created them ("Sourced from"), and
    external ids are unique per source."""

    Kind = SourceKind

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="sources")
    kind = models.CharField(max_length=20, choices=SourceKind.choices)
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="source_name_unique"),
            models.CheckConstraint(condition=Q(kind__in=SourceKind.values), name="source_kind_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class Persona(models.Model):
    """A customer of the company, across every store and channel."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="personas")
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    phone = models.CharField(max_length=20, blank=True, help_text="E.164, e.g. +13035550142")
    email = models.EmailField(blank=True)
    birth_date = models.DateField(null=True, blank=True)
    market = models.CharField(max_length=64, blank=True, help_text="State / province code")
    is_member = models.BooleanField("loyalty member", default=False)
    enrolled_at = models.DateTimeField(null=True, blank=True)
    sms_opt_in = models.BooleanField("SMS opt-in", default=False)
    email_opt_in = models.BooleanField(default=False)
    favourite_store = models.ForeignKey(RetailStore, null=True, blank=True,
                                        on_delete=models.SET_NULL, related_name="+")
    sourced_from = models.ForeignKey(Source, null=True, blank=True, on_delete=models.PROTECT,
                                     related_name="personas")
    custom_traits = models.JSONField(default=dict, blank=True)
    # Derived from the ledger, kept in step in the same transaction as each entry.
    points_balance = models.BigIntegerField(default=0)
    lifetime_points = models.BigIntegerField(default=0)
    tier = models.CharField(max_length=64, blank=True)
    last_purchase_at = models.DateTimeField(null=True, blank=True)
    # When they became a customer: now, or what the source system says.
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["last_name", "first_name", "id"]
        constraints = [
            models.CheckConstraint(condition=Q(points_balance__gte=0),
                                   name="persona_balance_not_negative"),
            models.CheckConstraint(condition=Q(lifetime_points__gte=F("points_balance")),
                                   name="persona_lifetime_covers_balance"),
            models.CheckConstraint(condition=Q(is_member=False) | Q(enrolled_at__isnull=False),
                                   name="persona_member_has_enrolled_at"),
        ]
        indexes = [
            models.Index(fields=["company", "last_name", "first_name", "id"],
                         name="persona_name_idx"),
            models.Index(fields=["company", "phone"], name="persona_phone_idx"),
            models.Index(Lower("email"), "company", name="persona_email_idx"),
            models.Index(fields=["company", "points_balance", "id"], name="persona_points_idx"),
            models.Index(F("company"), F("last_purchase_at").desc(nulls_last=True), F("id").desc(),
                         name="persona_last_purchase_idx"),
            models.Index(fields=["company", "created_at"], name="persona_created_idx"),
            # Prefix search (istartswith) on names and email, for the personas list.
            models.Index(OpClass(Upper("first_name"), name="text_pattern_ops"),
                         name="persona_first_name_prefix_idx"),
            models.Index(OpClass(Upper("last_name"), name="text_pattern_ops"),
                         name="persona_last_name_prefix_idx"),
            models.Index(OpClass(Upper("email"), name="text_pattern_ops"),
                         name="persona_email_prefix_idx"),
        ]

    def __str__(self) -> str:
        return self.display_name

    @property
    def display_name(self) -> str:
        name = f"{self.first_name} {self.last_name}".strip()
        return name or self.email or self.phone or f"Persona #{self.pk}"


class ConsentRecord(models.Model):
    """A consent the customer gave or withdrew themselves (the loyalty page's boxes): what
    they were shown, word for word, when, from which address and page. Append-only: the
    persona's sms_opt_in / email_opt_in say where it stands now, these rows how it got there."""

    class Channel(models.TextChoices):
        SMS = "sms", "SMS"
        EMAIL = "email", "Email"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="consents", db_index=False)
    channel = models.CharField(max_length=8, choices=Channel.choices)
    granted = models.BooleanField()
    wording = models.TextField(help_text="The exact text the customer was shown.")
    ip = models.GenericIPAddressField(null=True, blank=True)
    page_url = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(channel__in=["sms", "email"]), name="consent_channel_valid"),
            models.CheckConstraint(condition=~Q(wording=""), name="consent_has_wording"),
        ]
        indexes = [models.Index(fields=["persona", "-created_at"], name="consent_persona_idx")]

    def __str__(self) -> str:
        return f"{self.persona_id} {self.channel} {'granted' if self.granted else 'withdrawn'}"


class PersonaIdentity(models.Model):
    """An id the persona has in another system (a Cova customer id, a "Patient Number")."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="identities")
    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="identities")
    external_id = models.CharField(max_length=200)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "persona identities"
        constraints = [
            models.UniqueConstraint(fields=["source", "external_id"],
                                    name="identity_unique_per_source"),
        ]

    def __str__(self) -> str:
        return f"{self.source}: {self.external_id}"


class PersonaMerge(models.Model):
    """A persona merged into another: the record of who went where, since the merged
    persona itself is gone."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="merged_in",
                                help_text="The persona it lives on in.")
    merged_persona_id = models.BigIntegerField()
    merged_name = models.CharField(max_length=250, blank=True)
    points_moved = models.BigIntegerField(default=0)
    sales_moved = models.PositiveIntegerField(default=0)
    reason = models.CharField(max_length=200)
    staff_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    merged_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-merged_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["company", "merged_persona_id"], name="persona_merged_once"),
            models.CheckConstraint(condition=~Q(persona_id=F("merged_persona_id")),
                                   name="persona_merge_not_into_itself"),
        ]

    def __str__(self) -> str:
        return f"#{self.merged_persona_id} into {self.persona_id}"


class ErasureRequest(models.Model):
    """A customer's personal data erased at their request (from the loyalty page, or by an
    admin for a request received by phone or mail). The persona stays as an anonymous id
    so sales figures stay whole; this is the record of the request and its completion."""

    class Via(models.TextChoices):
        PAGE = "page", "Loyalty page"
        STAFF = "staff", "Staff, on the persona card"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    persona = models.OneToOneField(Persona, on_delete=models.CASCADE, related_name="erasure")
    requested_via = models.CharField(max_length=8, choices=Via.choices)
    requested_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                     on_delete=models.SET_NULL, related_name="+",
                                     help_text="The staff member, for a request taken by staff.")
    requested_at = models.DateTimeField(default=timezone.now)
    completed_at = models.DateTimeField(null=True, blank=True)
    points_forfeited = models.BigIntegerField(default=0)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(requested_via__in=["page", "staff"]),
                                   name="erasure_via_valid"),
            models.CheckConstraint(
                condition=Q(completed_at__isnull=True) | Q(completed_at__gte=F("requested_at")),
                name="erasure_completed_after_requested"),
            models.CheckConstraint(condition=Q(points_forfeited__gte=0), name="erasure_points_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Erasure of {self.persona_id}"


class ErasedIdentity(models.Model):
    """A tombstone: the HMAC (SECRET_KEY) of an identity of an erased customer (phone, email,
    or an id in one source), so an import or sync of the same identity doesn't bring them
    back. Signing up again on the loyalty page with the phone clears it."""

    class Kind(models.TextChoices):
        PHONE = "phone", "Phone"
        EMAIL = "email", "Email"
        EXTERNAL_ID = "external_id", "Id in a source"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    digest = models.CharField(max_length=64)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "erased identities"
        constraints = [
            models.UniqueConstraint(fields=["company", "kind", "digest"], name="erased_identity_unique"),
            models.CheckConstraint(condition=Q(kind__in=["phone", "email", "external_id"]),
                                   name="erased_identity_kind_valid"),
            models.CheckConstraint(condition=Q(digest__regex=r"^[0-9a-f]{64}$"),
                                   name="erased_identity_digest_hex"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.digest[:8]}"


class Channel(models.TextChoices):
    IN_STORE = "in_store", "In store"
    ONLINE = "online", "Online"
    PHONE = "phone", "Phone"


class Fulfillment(models.TextChoices):
    IN_STORE = "in_store", "In store"
    PICKUP = "pickup", "Pickup"
    DELIVERY = "delivery", "Delivery"


class TransactionStatus(models.TextChoices):
    COMPLETED = "completed", "Completed"
    VOIDED = "voided", "Voided"
    REFUNDED = "refunded", "Refunded"


class Transaction(models.Model):
    Channel = Channel
    Fulfillment = Fulfillment
    Status = TransactionStatus

    # company and persona lead the unique and (persona, occurred_at) indexes below; a
    # separate index on each would only slow every insert down.
    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="transactions",
                                db_index=False)
    store = models.ForeignKey(RetailStore, null=True, blank=True, on_delete=models.PROTECT,
                              related_name="transactions")
    persona = models.ForeignKey(Persona, null=True, blank=True, on_delete=models.SET_NULL,
                                related_name="transactions", db_index=False)
    source = models.ForeignKey(Source, on_delete=models.PROTECT, related_name="transactions")
    external_id = models.CharField(max_length=200)
    # The report file it was imported from, for sources that deliver files.
    source_file = models.CharField(max_length=1000, blank=True)
    # The source's location id while that location is mapped to none of our stores: the
    # sale waits here, store-less, and is attached when the location gets mapped.
    source_location = models.CharField(max_length=200, blank=True)
    occurred_at = models.DateTimeField()
    channel = models.CharField(max_length=16, choices=Channel.choices, default=Channel.IN_STORE)
    fulfillment = models.CharField("fulfillment type", max_length=16, choices=Fulfillment.choices,
                                   default=Fulfillment.IN_STORE)
    employee = models.CharField(max_length=200, blank=True)
    subtotal = models.DecimalField(**MONEY)
    discount_total = models.DecimalField(**MONEY, default=Decimal("0"))
    tax_total = models.DecimalField(**MONEY, default=Decimal("0"))
    total = models.DecimalField(**MONEY)
    status = models.CharField(max_length=16, choices=TransactionStatus.choices,
                              default=TransactionStatus.COMPLETED)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-occurred_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["company", "source", "external_id"],
                                    name="transaction_unique_per_source"),
            models.CheckConstraint(
                condition=Q(subtotal__gte=0, discount_total__gte=0, tax_total__gte=0, total__gte=0),
                name="transaction_amounts_not_negative",
            ),
            models.CheckConstraint(condition=Q(status__in=TransactionStatus.values),
                                   name="transaction_status_valid"),
            models.CheckConstraint(condition=Q(fulfillment__in=Fulfillment.values),
                                   name="transaction_fulfillment_valid"),
        ]
        indexes = [
            models.Index(fields=["persona", "occurred_at"], name="transaction_persona_idx"),
            models.Index(fields=["company", "occurred_at"], name="transaction_company_time_idx"),
            models.Index(fields=["source", "source_file"], name="transaction_source_file_idx",
                         condition=~Q(source_file="")),
            models.Index(fields=["source", "source_location"], name="transaction_unmapped_idx",
                         condition=~Q(source_location="")),
        ]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.total})"


class LineItem(models.Model):
    # The (transaction, line_no) unique index serves lookups by transaction.
    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE,
                                    related_name="line_items", db_index=False)
    line_no = models.PositiveIntegerField()
    sku = models.CharField(max_length=100, blank=True)
    product = models.CharField(max_length=300)
    brand = models.CharField(max_length=200, blank=True)
    category = models.CharField(max_length=200, blank=True)
    quantity = models.DecimalField(max_digits=12, decimal_places=3)
    unit_price = models.DecimalField(**MONEY)
    discount = models.DecimalField(**MONEY, default=Decimal("0"))
    tax = models.DecimalField(**MONEY, default=Decimal("0"))
    tax_included = models.BooleanField(default=False)
    total = models.DecimalField(**MONEY)

    class Meta:
        ordering = ["line_no"]
        constraints = [
            models.UniqueConstraint(fields=["transaction", "line_no"], name="line_item_unique_no"),
            models.CheckConstraint(
                condition=Q(quantity__gte=0, unit_price__gte=0, discount__gte=0, tax__gte=0,
                            total__gte=0),
                name="line_item_amounts_not_negative",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.quantity} × {self.product}"


class Payment(models.Model):
    transaction = models.ForeignKey(Transaction, on_delete=models.CASCADE,
                                    related_name="payments")
    method = models.CharField(max_length=60)
    amount = models.DecimalField(**MONEY)

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount__gte=0), name="payment_amount_not_negative"),
        ]

    def __str__(self) -> str:
        return f"{self.method} {self.amount}"


class PointsKind(models.TextChoices):
    EARN = "earn", "Earned"
    REVERSE = "reverse", "Earning reversed"
    REDEEM = "redeem", "Redeemed"
    REINSTATE = "reinstate", "Reinstated"
    ADJUST = "adjust", "Adjusted by staff"
    EXPIRE = "expire", "Expired"
    FORFEIT = "forfeit", "Forfeited"


class PointsEntry(models.Model):
    """The append-only points ledger. A persona's balance is the sum of its entries."""

    Kind = PointsKind

    # Kinds that count towards lifetime points (what was earned, net of corrections).
    LIFETIME_KINDS = (PointsKind.EARN, PointsKind.REVERSE, PointsKind.ADJUST)

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="points_entries",
                                db_index=False)  # (persona, -created_at) below serves it
    delta = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=PointsKind.choices)
    balance_after = models.BigIntegerField()
    transaction = models.ForeignKey(Transaction, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="points_entries")
    staff_user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    reason = models.CharField(max_length=300, blank=True)
    idempotency_key = models.CharField(max_length=200, unique=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        verbose_name_plural = "points entries"
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=~Q(delta=0), name="points_entry_not_zero"),
            models.CheckConstraint(condition=Q(balance_after__gte=0),
                                   name="points_entry_balance_not_negative"),
            models.CheckConstraint(condition=Q(kind__in=PointsKind.values),
                                   name="points_entry_kind_valid"),
            models.CheckConstraint(
                condition=~Q(kind="adjust") | (Q(staff_user__isnull=False) & ~Q(reason="")),
                name="points_adjustment_has_staff_and_reason",
            ),
        ]
        indexes = [
            models.Index(fields=["persona", "-created_at"], name="points_entry_persona_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.delta:+d} {self.kind}"


class EarnOn(models.TextChoices):
    PRE_TAX = "pre_tax", "Pre-tax amount"
    POST_TAX = "post_tax", "Post-tax amount"


class LoyaltyProgram(models.Model):
    """How a company's customers earn points. One per company."""

    EarnOn = EarnOn

    company = models.OneToOneField(Company, on_delete=models.CASCADE,
                                   related_name="loyalty_program")
    points_per_unit = models.DecimalField(
        max_digits=8, decimal_places=2, default=Decimal("1"),
        help_text="Points earned per unit of the company's currency.",
    )
    earn_on = models.CharField(max_length=16, choices=EarnOn.choices, default=EarnOn.PRE_TAX)
    members_only = models.BooleanField(
        default=True, help_text="Only enrolled loyalty members earn points.",
    )
    rounding = models.CharField(max_length=8, default="down",
                                choices=[("down", "Round down"), ("nearest", "Round to nearest")])
    discount_applies = models.CharField(
        max_length=12, choices=[("before_tax", "Before tax"), ("after_tax", "After tax")],
        default="before_tax", help_text="Where an offer's discount applies unless the offer says otherwise.")
    lock_ttl_minutes = models.PositiveIntegerField(default=15, help_text="How long a POS lock holds points.")
    refund_policy = models.CharField(
        max_length=12, choices=[("keep", "Refunds keep their points (remove by hand)"),
                                ("reverse", "Refunds reverse their points automatically")],
        default="keep")
    signup_bonus = models.PositiveBigIntegerField(default=0, help_text="Points given on enrolment.")
    expiry_months = models.PositiveIntegerField(
        null=True, blank=True,
        help_text="Points expire after this many months without activity; blank: never.")
    budtenders_see_queue = models.BooleanField("budtenders can see the waiting-room queue", default=True)
    budtender_adjustment_limit = models.BigIntegerField(
        "largest adjustment a budtender may make", default=BUDTENDER_ADJUSTMENT_LIMIT_DEFAULT,
        help_text="Points a budtender may add or take back at a time on the persona card; "
                  "admins are not limited.")

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(points_per_unit__gte=0),
                                   name="program_points_per_unit_not_negative"),
            models.CheckConstraint(condition=Q(budtender_adjustment_limit__gte=0),
                                   name="program_budtender_adjustment_limit_not_negative"),
            models.CheckConstraint(condition=Q(lock_ttl_minutes__gte=1, lock_ttl_minutes__lte=1440),
                                   name="program_lock_ttl_range"),
        ]

    def __str__(self) -> str:
        return f"Loyalty program of {self.company}"


class Tier(models.Model):
    class Threshold(models.TextChoices):
        LIFETIME_POINTS = "lifetime_points", "Lifetime points"
        SPEND_12M = "spend_12m", "Spend in the last 12 months"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="tiers")
    name = models.CharField(max_length=64)
    threshold_kind = models.CharField(max_length=20, choices=Threshold.choices,
                                      default=Threshold.LIFETIME_POINTS)
    threshold = models.DecimalField(max_digits=12, decimal_places=2)
    earn_multiplier = models.DecimalField(max_digits=5, decimal_places=2, default=Decimal("1"))

    class Meta:
        ordering = ["threshold"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="tier_name_unique"),
            models.UniqueConstraint(fields=["company", "threshold_kind", "threshold"],
                                    name="tier_threshold_unique"),
            models.CheckConstraint(condition=Q(threshold__gte=0, earn_multiplier__gte=0),
                                   name="tier_values_not_negative"),
        ]

    def __str__(self) -> str:
        return self.name


class DiscountKind(models.TextChoices):
    FLAT = "flat", "Flat amount off the cart"
    PERCENT = "percent", "Percent off the cart"


class Offer(models.Model):
    """A reward: a cart discount a persona gets for points, or that staff grant."""

    Kind = DiscountKind

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="offers")
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    kind = models.CharField(max_length=8, choices=DiscountKind.choices)
    amount = models.DecimalField(**MONEY, help_text="Currency amount, or percent for percent offers.")
    points_cost = models.PositiveBigIntegerField(default=0)
    applies = models.CharField(max_length=12, blank=True,
                               choices=[("before_tax", "Before tax"), ("after_tax", "After tax")],
                               help_text="Blank: the loyalty program's default.")
    starts_at = models.DateTimeField(null=True, blank=True)
    ends_at = models.DateTimeField(null=True, blank=True)
    min_subtotal = models.DecimalField(**MONEY, default=Decimal("0"))
    categories = models.JSONField(default=list, blank=True, help_text="Basket must hold one of these.")
    brands = models.JSONField(default=list, blank=True, help_text="Basket must hold one of these.")
    stores = models.ManyToManyField(RetailStore, blank=True, related_name="+")
    tiers = models.ManyToManyField(Tier, blank=True, related_name="offers")
    limit_per_persona = models.PositiveIntegerField(null=True, blank=True)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="offer_name_unique"),
            models.CheckConstraint(condition=Q(kind__in=DiscountKind.values), name="offer_kind_valid"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="offer_amount_positive"),
            models.CheckConstraint(condition=~Q(kind="percent") | Q(amount__lte=100),
                                   name="offer_percent_at_most_100"),
            models.CheckConstraint(condition=Q(ends_at__isnull=True) | Q(starts_at__isnull=True)
                                   | Q(ends_at__gt=F("starts_at")), name="offer_window_ordered"),
        ]

    def __str__(self) -> str:
        return self.name


# Wallet codes: what the customer shows at the counter (typed or scanned). No 0/O or 1/I,
# so a code read aloud or off a cracked screen is not mistaken; 32**8 codes per company.
WALLET_CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
WALLET_CODE_LENGTH = 8


def wallet_code_new() -> str:
    return "".join(secrets.choice(WALLET_CODE_ALPHABET) for _ in range(WALLET_CODE_LENGTH))


def wallet_code_clean(value: str) -> str:
    """A code as typed or scanned ("7kq4-mz2p", "7KQ4 MZ2P"): its letters and digits, upper case."""
    return "".join(ch for ch in (value or "").upper() if ch.isalnum())


class WalletItem(models.Model):
    """An offer a persona holds: bought with points (at the POS or on the loyalty page) or
    granted by staff. Its `code` (unique per company) finds it at the counter."""

    class State(models.TextChoices):
        AVAILABLE = "available", "Available"
        USED = "used", "Used"
        EXPIRED = "expired", "Expired"

    class Source(models.TextChoices):
        POS = "pos", "Bought at the POS"
        STAFF = "staff", "Granted by staff"
        LOYALTY_PAGE = "loyalty_page", "Bought on the loyalty page"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="wallet")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="wallet_items")
    state = models.CharField(max_length=12, choices=State.choices, default=State.AVAILABLE)
    points_paid = models.PositiveBigIntegerField(default=0)
    granted_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    used_at = models.DateTimeField(null=True, blank=True)
    code = models.CharField(max_length=WALLET_CODE_LENGTH, default=wallet_code_new, editable=False)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.POS)
    # The loyalty page's buy form carries a token per render: a second submission of the same
    # form finds the item the first one bought instead of buying again.
    purchase_token = models.CharField(max_length=64, null=True, blank=True, editable=False)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=["available", "used", "expired"]),
                                   name="wallet_item_state_valid"),
            models.CheckConstraint(condition=Q(source__in=["pos", "staff", "loyalty_page"]),
                                   name="wallet_item_source_valid"),
            models.UniqueConstraint(fields=["company", "code"], name="wallet_item_code_unique"),
            models.UniqueConstraint(fields=["persona", "purchase_token"],
                                    name="wallet_item_purchase_token_unique",
                                    condition=Q(purchase_token__isnull=False)),
        ]

    def __str__(self) -> str:
        return f"{self.offer} for {self.persona}"

    def save(self, *args, **kwargs):
        """A new item whose random code another of the company's items already has (about one
        in 10**12) draws another, in a savepoint so the caller's transaction goes on."""
        if not self._state.adding:
            return super().save(*args, **kwargs)
        for attempt in range(5):
            try:
                with db.atomic():
                    return super().save(*args, **kwargs)
            except IntegrityError as exc:
                if "wallet_item_code_unique" not in str(exc) or attempt == 4:
                    raise
                self.code = wallet_code_new()


class Redemption(models.Model):
    """A reward applied to a POS cart. `locked -> redeemed | unlocked | expired` and
    `redeemed -> reinstated`; points leave the balance when it is locked or redeemed and
    come back when it is unlocked, expires or is reinstated."""

    class State(models.TextChoices):
        LOCKED = "locked", "Locked"
        REDEEMED = "redeemed", "Redeemed"
        UNLOCKED = "unlocked", "Unlocked"
        EXPIRED = "expired", "Expired"
        REINSTATED = "reinstated", "Reinstated"

    HOLDING = ("locked", "redeemed")
    RELEASED = ("unlocked", "expired", "reinstated")  # the points came back

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="redemptions")
    offer = models.ForeignKey(Offer, on_delete=models.PROTECT, related_name="redemptions")
    wallet_item = models.ForeignKey(WalletItem, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="redemptions")
    store = models.ForeignKey(RetailStore, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    cart_id = models.CharField(max_length=200, help_text="The POS's open cart or transaction id.")
    transaction = models.ForeignKey(Transaction, null=True, blank=True, on_delete=models.SET_NULL,
                                    related_name="redemptions")
    state = models.CharField(max_length=12, choices=State.choices)
    points = models.PositiveBigIntegerField()
    discount_amount = models.DecimalField(**MONEY)
    locked_until = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(state__in=["locked", "redeemed", "unlocked", "expired",
                                                          "reinstated"]),
                                   name="redemption_state_valid"),
            models.CheckConstraint(condition=Q(discount_amount__gte=0),
                                   name="redemption_discount_not_negative"),
            models.CheckConstraint(condition=~Q(state="locked") | Q(locked_until__isnull=False),
                                   name="redemption_lock_has_expiry"),
            # At most one loyalty discount per order.
            models.UniqueConstraint(fields=["company", "cart_id"],
                                    condition=Q(state__in=["locked", "redeemed"]),
                                    name="redemption_one_per_cart"),
        ]
        indexes = [
            models.Index(fields=["state", "locked_until"], name="redemption_lock_expiry_idx",
                         condition=Q(state="locked")),
            models.Index(fields=["persona", "-created_at"], name="redemption_persona_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.offer} on cart {self.cart_id} ({self.state})"


class PromptCondition(models.TextChoices):
    CATEGORY = "category", "Basket has a category"
    BRAND = "brand", "Basket has a brand / manufacturer"
    SKU = "sku", "Basket has a SKU"
    ITEM_PRICE_OVER = "item_price_over", "An item costs at least"
    BASKET_TOTAL_OVER = "basket_total_over", "Basket subtotal is at least"
    NOT_ENROLLED = "not_enrolled", "Customer is not a loyalty member"
    MISSING_EMAIL = "missing_email", "Customer has no email"
    MISSING_PHONE = "missing_phone", "Customer has no phone"
    MISSING_BIRTHDAY = "missing_birthday", "Customer has no birth date"
    BIRTHDAY_THIS_MONTH = "birthday_this_month", "Customer's birthday is this month"
    TIER = "tier", "Customer is in a tier"


class Prompt(models.Model):
    """A POS trigger: when the basket or the persona matches, the cashier sees `message`."""

    Condition = PromptCondition

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="prompts")
    name = models.CharField(max_length=120)
    condition = models.CharField(max_length=24, choices=PromptCondition.choices)
    value = models.CharField(max_length=200, blank=True,
                             help_text="Category, brand, SKU, amount or tier name.")
    message = models.CharField(max_length=300)
    suggested_sku = models.CharField(max_length=100, blank=True)
    is_active = models.BooleanField(default=True)
    times_fired = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["company", "name"], name="prompt_name_unique"),
            models.CheckConstraint(condition=Q(condition__in=PromptCondition.values),
                                   name="prompt_condition_valid"),
        ]

    def __str__(self) -> str:
        return self.name


class WebhookEndpoint(models.Model):
    """Where a level-2 POS wants to hear about changes, signed with its secret."""

    EVENTS = ("persona.updated", "points.changed", "offer.issued", "redemption.changed")
    SECRET_MAX_LENGTH = 128

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="webhook_endpoints")
    url = models.URLField(max_length=500)
    # The signing secret, Fernet-encrypted (stores.crypto); shown in full only when made.
    secret_encrypted = models.TextField()
    events = models.JSONField(default=list)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["url"]
        constraints = [
            models.UniqueConstraint(fields=["company", "url"], name="webhook_endpoint_unique_url"),
        ]

    def __str__(self) -> str:
        return self.url

    def secret_plain(self) -> str:
        return decrypt(self.secret_encrypted)

    def set_secret(self, secret: str) -> None:
        self.secret_encrypted = encrypt(secret)


class WebhookDelivery(models.Model):
    class State(models.TextChoices):
        PENDING = "pending", "Pending"
        DELIVERED = "delivered", "Delivered"
        FAILED = "failed", "Failed"
        # The URL points at a private or local address: never sent, not retried.
        BLOCKED = "blocked", "Blocked"

    endpoint = models.ForeignKey(WebhookEndpoint, on_delete=models.CASCADE, related_name="deliveries")
    event = models.CharField(max_length=40)
    payload = models.JSONField()
    state = models.CharField(max_length=12, choices=State.choices, default=State.PENDING)
    attempts = models.PositiveSmallIntegerField(default=0)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.TextField(blank=True)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    delivered_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "webhook deliveries"

    def __str__(self) -> str:
        return f"{self.event} → {self.endpoint} ({self.state})"


class IdempotencyRecord(models.Model):
    """One Idempotency-Key of one API key. It is reserved (in progress) in its own short
    transaction before the work starts, so a concurrent duplicate finds it and waits; then it
    holds the answer (status and body, refusals included), replayed to every retry for 24
    hours. A failure (5xx) deletes it so a retry runs again."""

    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"
    STATES = [(IN_PROGRESS, "In progress"), (COMPLETED, "Completed")]

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    api_key = models.ForeignKey("stores.ApiKey", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=200)
    # The request's fingerprint: "POST /api/pos/v1/redeem" and the body's SHA-256.
    method_path = models.CharField(max_length=300)
    request_hash = models.CharField(max_length=64)
    state = models.CharField(max_length=20, choices=STATES, default=IN_PROGRESS)
    # When the request now doing the work took the key: a reservation left long in progress
    # belongs to a worker that died, and the next retry may take it over.
    reserved_at = models.DateTimeField(default=timezone.now)
    response_status = models.PositiveSmallIntegerField(null=True, blank=True)
    response_body = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["company", "api_key", "key"], name="idempotency_key_unique"),
            models.CheckConstraint(
                condition=models.Q(state="in_progress") | models.Q(response_status__isnull=False),
                name="idempotency_completed_has_answer"),
        ]

    def __str__(self) -> str:
        return f"{self.method_path} {self.key}"


class PersonaBulkJob(models.Model):
    """One bulk action on personas chosen on the list (enrol them, add them to or remove
    them from a static audience). The personas are fixed when it is confirmed; large
    selections are worked through in the background, a chunk at a time, and `processed`
    is the position reached, committed after each chunk."""

    class Action(models.TextChoices):
        ENROL = "enrol", "Enrol in the loyalty program"
        AUDIENCE_ADD = "audience_add", "Add to a static audience"
        AUDIENCE_REMOVE = "audience_remove", "Remove from a static audience"

    class State(models.TextChoices):
        QUEUED = "queued", "Queued"
        RUNNING = "running", "Running"
        DONE = "done", "Done"
        FAILED = "failed", "Failed"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    action = models.CharField(max_length=20, choices=Action.choices)
    # The static audience of an audience action (kept by id: loyalty does not import audiences).
    target_id = models.BigIntegerField(null=True, blank=True)
    target_label = models.CharField(max_length=120, blank=True)
    persona_ids = ArrayField(models.BigIntegerField(), default=list)
    total = models.PositiveIntegerField(default=0)
    processed = models.PositiveIntegerField(default=0)
    changed = models.PositiveIntegerField(default=0, help_text="Enrolled, added or removed.")
    skipped = models.PositiveIntegerField(default=0, help_text="Already members / already in / not in.")
    state = models.CharField(max_length=10, choices=State.choices, default=State.QUEUED)
    in_background = models.BooleanField(default=False)
    error = models.TextField(blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="+")
    created_ip = models.GenericIPAddressField(null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["company", "-created_at"], name="persona_bulk_job_recent_idx")]
        constraints = [
            models.CheckConstraint(condition=Q(action__in=["enrol", "audience_add", "audience_remove"]),
                                   name="persona_bulk_job_action_known"),
            models.CheckConstraint(condition=Q(state__in=["queued", "running", "done", "failed"]),
                                   name="persona_bulk_job_state_known"),
            models.CheckConstraint(condition=Q(processed__lte=F("total")),
                                   name="persona_bulk_job_processed_le_total"),
            models.CheckConstraint(condition=Q(processed__gte=F("changed") + F("skipped")),
                                   name="persona_bulk_job_counts_le_processed"),
            models.CheckConstraint(condition=Q(action="enrol") | Q(target_id__isnull=False),
                                   name="persona_bulk_job_audience_has_target"),
            models.CheckConstraint(condition=Q(state__in=["done", "failed"], finished_at__isnull=False)
                                   | Q(state__in=["queued", "running"], finished_at__isnull=True),
                                   name="persona_bulk_job_finished_when_over"),
        ]

    def __str__(self) -> str:
        return f"{self.get_action_display()}: {self.total} personas"

    @property
    def is_over(self) -> bool:
        return self.state in (self.State.DONE, self.State.FAILED)

    @property
    def percent(self) -> int:
        return 100 if not self.total else int(self.processed * 100 / self.total)
