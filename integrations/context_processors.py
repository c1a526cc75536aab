"""What the base layout needs from the integrations: the "unmapped stores" notification."""

from django.utils.functional import cached_property

from stores.tenancy import role_can

from .selectors import unmapped_location_count


class UnmappedStores:
    """Locations whose sales wait for a store mapping. Counted only when a page's layout
    asks (an htmx partial never does), once per request."""

    def __init__(self, company):
        self.company = company

    @cached_property
    def count(self) -> int:
        return unmapped_location_count(company=self.company)


def account_notices(request):
    company = getattr(request, "company", None)
    membership = getattr(request, "membership", None)
    if company is None or membership is None or not role_can(membership.role, "settings.manage"):
        return {"unmapped_stores": None}
    return {"unmapped_stores": UnmappedStores(company)}
