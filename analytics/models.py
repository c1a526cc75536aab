"""The daily sales rollup behind the Analytics page.

Every table here is derived from the sales (loyalty Transaction, LineItem, PointsEntry,
Redemption, Persona) and can be rebuilt from them at any time; `analytics.facts` holds the
one definition of each row. Database triggers (migration 0002) write a `ChangedHour` for
every hour whose sales change, by any path (POS, imports, purges, store mappings, staff
edits), and `analytics.services.rollup_refresh` recalculates exactly those local days.

Rows are written by SQL only (set-wise); the models are here for the schema, the admin
and the reader's benefit.
"""

from django.db import models

from stores.models import Company

MONEY = {"max_digits": 14, "decimal_places": 2}


class DateMultiRangeField(models.Field):
    """PostgreSQL `datemultirange`: a set of days, stored as merged ranges."""

    def db_type(self, connection):
        return "datemultirange"


class RollupState(models.Model):
    """That a company's rollup exists, and which time zone its days are in (a change of
    the company's time zone rebuilds it)."""

    company = models.OneToOneField(Company, on_delete=models.CASCADE, primary_key=True,
                                   related_name="+")
    timezone = models.CharField(max_length=64)
    # Product month rows exist for every month that starts before this day (the months
    # that are over); the month under way is read from its day rows.
    month_rows_before = models.DateField()
    built_at = models.DateTimeField()
    refreshed_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"Sales rollup of {self.company_id} ({self.timezone})"


class ChangedHour(models.Model):
    """An hour (UTC, truncated) in which some of a company's sales changed since the rollup
    last read them. Written by the triggers, which need no time zone for it (a bad one can
    never fail a sale); the refresh turns hours into the company's local days. Append-only,
    so writers never wait on each other; deleted by the refresh that reads it."""

    company_id = models.BigIntegerField()
    hour = models.DateTimeField()

    class Meta:
        indexes = [models.Index(fields=["company_id"], name="analytics_changed_company_idx")]

    def __str__(self) -> str:
        return f"{self.company_id} {self.hour}"


class SalesDay(models.Model):
    """Sales per local day, store, fulfillment type and loyalty status."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    store_id = models.BigIntegerField(null=True)  # null: a sale waiting for its location's mapping
    fulfillment = models.CharField(max_length=16)
    member = models.BooleanField()  # the customer was a loyalty member when they bought
    orders = models.IntegerField()
    gross_sales = models.DecimalField(**MONEY)
    discounts = models.DecimalField(**MONEY)
    tax = models.DecimalField(**MONEY)
    items = models.DecimalField(max_digits=16, decimal_places=3)
    returns = models.IntegerField()
    returns_value = models.DecimalField(**MONEY)
    points_earned = models.BigIntegerField()
    points_redeemed = models.BigIntegerField()

    class Meta:
        indexes = [models.Index(fields=["company", "day"], name="analytics_salesday_idx")]

    def __str__(self) -> str:
        return f"{self.day} store {self.store_id} {self.fulfillment}: {self.orders} orders"


class SalesHour(models.Model):
    """Orders and net sales per local day and hour (the hour-of-day × weekday heatmap, and
    the Today view). `is_total` rows add up every store, fulfillment type and loyalty
    status (those three are null there): the page reads them when nothing is filtered."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+", db_index=False)
    day = models.DateField()
    hour = models.SmallIntegerField()
    is_total = models.BooleanField()
    store_id = models.BigIntegerField(null=True)
    fulfillment = models.CharField(max_length=16, null=True)
    member = models.BooleanField(null=True)
    orders = models.IntegerField()
    net_sales = models.DecimalField(**MONEY)

    class Meta:
        indexes = [models.Index(fields=["company", "day"], name="analytics_saleshour_idx")]

    def __str__(self) -> str:
        return f"{self.day} {self.hour}:00: {self.orders} orders"


class ProductSales(models.Model):
    """Net units and net sales per product, per local day and per calendar month (a month
    row is the sum of its day rows; a long range reads whole months from month rows and
    only its partial months from day rows). `is_total` rows as in SalesHour."""

    class Grain(models.TextChoices):
        DAY = "day", "Day"
        MONTH = "month", "Month"

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+", db_index=False)
    grain = models.CharField(max_length=5, choices=Grain.choices)
    period_start = models.DateField()
    is_total = models.BooleanField()
    store_id = models.BigIntegerField(null=True)
    fulfillment = models.CharField(max_length=16, null=True)
    member = models.BooleanField(null=True)
    category = models.CharField(max_length=200)
    brand = models.CharField(max_length=200)
    product = models.CharField(max_length=300)
    quantity = models.DecimalField(max_digits=16, decimal_places=3)
    net_sales = models.DecimalField(**MONEY)

    class Meta:
        verbose_name_plural = "product sales"
        indexes = [models.Index(fields=["company", "grain", "period_start"],
                                name="analytics_productsales_idx")]

    def __str__(self) -> str:
        return f"{self.grain} {self.period_start} {self.product}: {self.net_sales}"


class Customer(models.Model):
    """One row per customer who has bought: the local day of their first order and every
    day they ordered on. Unique customers in a range are the rows whose days overlap it;
    new ones also have their first order in it."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+", db_index=False)
    persona_id = models.BigIntegerField(unique=True)
    first_day = models.DateField()
    order_days = DateMultiRangeField()

    class Meta:
        indexes = [models.Index(fields=["company"], name="analytics_customer_idx")]

    def __str__(self) -> str:
        return f"Customer {self.persona_id} since {self.first_day}"


class CustomerActivity(models.Model):
    """The days a customer ordered on, per store, fulfillment type and loyalty status: the
    same counts when the page is filtered."""

    company = models.ForeignKey(Company, on_delete=models.CASCADE, related_name="+", db_index=False)
    persona_id = models.BigIntegerField()
    store_id = models.BigIntegerField(null=True)
    fulfillment = models.CharField(max_length=16)
    member = models.BooleanField()
    first_day = models.DateField()  # of the customer's first order anywhere
    order_days = DateMultiRangeField()

    class Meta:
        verbose_name_plural = "customer activity"
        indexes = [models.Index(fields=["company", "persona_id"], name="analytics_activity_idx")]

    def __str__(self) -> str:
        return f"Customer {self.persona_id} at store {self.store_id}"
