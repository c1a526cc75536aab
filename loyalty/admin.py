from django.contrib import admin

from .models import (
    LineItem,
    LoyaltyProgram,
    Payment,
    Persona,
    PersonaIdentity,
    PointsEntry,
    Source,
    Transaction,
)


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "kind", "company"]
    list_filter = ["company", "kind"]


class PersonaIdentityInline(admin.TabularInline):
    model = PersonaIdentity
    extra = 0
    fields = ["source", "external_id"]


@admin.register(Persona)
class PersonaAdmin(admin.ModelAdmin):
    list_display = ["__str__", "company", "phone", "email", "is_member", "points_balance"]
    list_filter = ["company", "is_member"]
    search_fields = ["first_name", "last_name", "email", "phone"]
    list_select_related = ["company"]
    raw_id_fields = ["favourite_store", "sourced_from"]
    # The balance is the ledger's: change it with an adjustment, never by hand here.
    readonly_fields = ["points_balance", "lifetime_points", "last_purchase_at"]
    inlines = [PersonaIdentityInline]


class LineItemInline(admin.TabularInline):
    model = LineItem
    extra = 0


class PaymentInline(admin.TabularInline):
    model = Payment
    extra = 0


@admin.register(Transaction)
class TransactionAdmin(admin.ModelAdmin):
    list_display = ["external_id", "company", "store", "occurred_at", "total", "status"]
    list_filter = ["company", "status", "fulfillment"]
    search_fields = ["external_id"]
    raw_id_fields = ["persona"]
    list_select_related = ["company", "store"]
    inlines = [LineItemInline, PaymentInline]


@admin.register(PointsEntry)
class PointsEntryAdmin(admin.ModelAdmin):
    list_display = ["persona", "delta", "kind", "balance_after", "created_at"]
    list_filter = ["kind"]
    raw_id_fields = ["persona", "transaction"]

    # The ledger is append-only.
    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False

    def has_add_permission(self, request):
        return False


admin.site.register(LoyaltyProgram)
