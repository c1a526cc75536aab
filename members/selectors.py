"""Shared reads of the customer pages."""

from .models import LoyaltyPageSettings


def page_settings(company) -> LoyaltyPageSettings:
    """The company's loyalty page settings (defaults until saved once)."""
    settings, _ = LoyaltyPageSettings.objects.get_or_create(company=company)
    return settings
