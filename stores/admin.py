from django.contrib import admin

from .models import Company, Membership, RetailStore


class RetailStoreInline(admin.TabularInline):
    model = RetailStore
    extra = 0
    fields = ["name", "state", "timezone", "opt_in_queue_enabled"]


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "currency", "country", "created_at"]
    search_fields = ["name", "slug"]
    # Two-factor is required or not on Settings › Security, through its service only.
    readonly_fields = ["account_uid", "require_two_factor"]
    inlines = [RetailStoreInline]


@admin.register(RetailStore)
class RetailStoreAdmin(admin.ModelAdmin):
    list_display = ["name", "company", "state", "timezone", "opt_in_queue_enabled"]
    list_filter = ["company", "state"]
    search_fields = ["name"]


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "company", "role"]
    list_filter = ["company", "role"]
    filter_horizontal = ["stores"]
