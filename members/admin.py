from django.contrib import admin

from .models import SentMessage


@admin.register(SentMessage)
class SentMessageAdmin(admin.ModelAdmin):
    """The operator's "Sent messages": what went to customers' phones (with the local provider,
    the only place a demo customer's sign-in code can be read)."""

    list_display = ("created_at", "company", "to", "body", "purpose", "provider", "state")
    list_filter = ("company", "purpose", "state", "provider")
    search_fields = ("to", "body")
    readonly_fields = [field.name for field in SentMessage._meta.fields]

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
