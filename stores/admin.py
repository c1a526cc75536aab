from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import UserAdmin
from django.db import transaction

from .audit import audit_changes, audit_context, audit_record, audit_snapshot
from .models import AuditEvent, Company, Membership, RetailStore


class RetailStoreInline(admin.TabularInline):
    model = RetailStore
    extra = 0
    fields = ["name", "state", "timezone", "opt_in_queue_enabled"]


@admin.register(Company)
class CompanyAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "timezone", "currency", "country", "created_at"]
    search_fields = ["name", "slug"]
    # Two-factor is required or not on Settings › Security, and branding set on Settings ›
    # Branding, through their services only (they are audited there).
    readonly_fields = ["account_uid", "require_two_factor", "accent_color"]
    inlines = [RetailStoreInline]


@admin.register(RetailStore)
class RetailStoreAdmin(admin.ModelAdmin):
    list_display = ["name", "company", "state", "timezone", "opt_in_queue_enabled"]
    list_filter = ["company", "state"]
    search_fields = ["name"]


# Memberships are granted here, by support: each change goes on the company's trail (the
# admin saves in one transaction, so the row and its record land together).
MEMBERSHIP_AUDIT_FIELDS = ("user", "company", "role", "stores")


def _membership_recorded(request, membership, kind, before, after) -> None:
    companies = {membership.company_id}
    if before and after and before["company"] != after["company"]:
        companies.add(before["company"].pk)  # the company it was taken from hears of it too
    for company_id in companies:
        audit_record(audit=audit_context(request), company=company_id, kind=kind, obj=membership,
                     changes=audit_changes(before, after))


@admin.register(Membership)
class MembershipAdmin(admin.ModelAdmin):
    list_display = ["user", "company", "role"]
    list_filter = ["company", "role"]
    filter_horizontal = ["stores"]

    def save_model(self, request, obj, form, change):
        # Read before the save: the stores (many-to-many) are only written in save_related.
        obj._audit_before = (audit_snapshot(Membership.objects.get(pk=obj.pk), MEMBERSHIP_AUDIT_FIELDS)
                             if change else None)
        super().save_model(request, obj, form, change)

    def save_related(self, request, form, formsets, change):
        super().save_related(request, form, formsets, change)
        membership = form.instance
        before = getattr(membership, "_audit_before", None)
        after = audit_snapshot(membership, MEMBERSHIP_AUDIT_FIELDS)
        if before is None or audit_changes(before, after):
            kind = "membership.updated" if before else "membership.created"
            _membership_recorded(request, membership, kind, before, after)

    def delete_model(self, request, obj):
        _membership_recorded(request, obj, "membership.deleted",
                             audit_snapshot(obj, MEMBERSHIP_AUDIT_FIELDS), None)
        super().delete_model(request, obj)

    def delete_queryset(self, request, queryset):
        with transaction.atomic():  # the change list's action runs outside the admin's transaction
            for membership in queryset:
                _membership_recorded(request, membership, "membership.deleted",
                                     audit_snapshot(membership, MEMBERSHIP_AUDIT_FIELDS), None)
            super().delete_queryset(request, queryset)


# Staff and superuser flags open Django admin, and with it every company: each company the
# user is a member of gets the change on its trail.
USER_ACCESS_FIELDS = ("is_active", "is_staff", "is_superuser")
User = get_user_model()
admin.site.unregister(User)


@admin.register(User)
class AuditedUserAdmin(UserAdmin):
    def save_model(self, request, obj, form, change):
        before = User.objects.filter(pk=obj.pk).values(*USER_ACCESS_FIELDS).first() if change else None
        super().save_model(request, obj, form, change)
        if not change:
            return  # a new user has no membership yet
        changes = audit_changes(before, {name: getattr(obj, name) for name in USER_ACCESS_FIELDS})
        if changes:
            for company_id in obj.memberships.values_list("company_id", flat=True):
                audit_record(audit=audit_context(request), company=company_id, kind="user.access_changed",
                             obj=obj, changes=changes)


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read only: the trail is append-only (the database refuses changes anyway)."""

    list_display = ["created_at", "company_id", "actor_name", "ip_address", "kind", "object_type",
                    "object_id", "object_label"]
    list_filter = ["kind"]
    search_fields = ["actor_name", "object_label", "kind"]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False
