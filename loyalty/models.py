from decimal import Decimal

from django.conf import settings
from django.contrib.postgres.indexes import OpClass
from django.db import models
from django.db.models import F, Q
from django.db.models.functions import Lower, Upper
from django.utils import timezone

from stores.models import Company, RetailStore

MONEY = {"max_digits": 12, "decimal_places": 2}


class SourceKind(models.TextChoices):
    COVA = "cova", "Cova"
    S3 = "s3", "S3 reports"
    ONEDRIVE = "onedrive", "OneDrive reports"
    FOLDER = "folder", "Folder reports"
    POS_API = "pos_api", "POS API"
    WAITING_ROOM = "waiting_room", "Waiting room"
    STAFF = "staff", "Staff"
    DEMO = "demo", "Demo data"


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
    points_balance = models.IntegerField(default=0)
    lifetime_points = models.IntegerField(default=0)
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


class PointsEntry(models.Model):
    """The append-only points ledger. A persona's balance is the sum of its entries."""

    Kind = PointsKind

    # Kinds that count towards lifetime points (what was earned, net of corrections).
    LIFETIME_KINDS = (PointsKind.EARN, PointsKind.REVERSE, PointsKind.ADJUST)

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+")
    persona = models.ForeignKey(Persona, on_delete=models.CASCADE, related_name="points_entries",
                                db_index=False)  # (persona, -created_at) below serves it
    delta = models.IntegerField()
    kind = models.CharField(max_length=16, choices=PointsKind.choices)
    balance_after = models.IntegerField()
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

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(points_per_unit__gte=0),
                                   name="program_points_per_unit_not_negative"),
        ]

    def __str__(self) -> str:
        return f"Loyalty program of {self.company}"
