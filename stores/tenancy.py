"""Which company a request acts for, and what the signed-in role may do there.

Every tenant-owned read goes through `request.company`; views never take a company id
from the URL, so another company's row id simply is not found (404).
"""

import zoneinfo
from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.shortcuts import render
from django.utils import timezone

from .models import Membership, Role

SESSION_KEY = "company_id"

# What each role may do. Navigation and views ask the same table.
PERMISSIONS: dict[str, set[str]] = {
    "personas.view": {Role.ADMIN, Role.MARKETER, Role.BUDTENDER},
    "points.adjust": {Role.ADMIN, Role.BUDTENDER},
    "personas.enroll": {Role.ADMIN, Role.BUDTENDER},
    "personas.merge": {Role.ADMIN},
    "personas.erase": {Role.ADMIN},
    "personas.export": {Role.ADMIN},
    "settings.manage": {Role.ADMIN},
    "integrations.manage": {Role.ADMIN},
    "integrations.purge": {Role.ADMIN},
    "loyalty.manage": {Role.ADMIN},
    "webhooks.manage": {Role.ADMIN},
    "audiences.view": {Role.ADMIN, Role.MARKETER},
    "audiences.manage": {Role.ADMIN, Role.MARKETER},
    "analytics.view": {Role.ADMIN, Role.MARKETER},
    "campaigns.view": {Role.ADMIN, Role.MARKETER},
    "campaigns.manage": {Role.ADMIN, Role.MARKETER},
    "queue.view": {Role.ADMIN, Role.BUDTENDER},
}


def role_can(role: str | None, permission: str) -> bool:
    return role in PERMISSIONS[permission]


class CurrentCompanyMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.membership = None
        request.company = None
        if request.user.is_authenticated:
            memberships = list(
                Membership.objects.filter(user=request.user).select_related("company")
            )
            chosen = request.session.get(SESSION_KEY)
            current = next((m for m in memberships if m.company_id == chosen), None)
            if current is None and memberships:
                current = memberships[0]
                request.session[SESSION_KEY] = current.company_id
            request.memberships = memberships
            request.membership = current
            request.company = current.company if current else None
        # Times on every page read in the company's own clock, not the server's.
        if request.company is not None:
            with timezone.override(zoneinfo.ZoneInfo(request.company.timezone)):
                return self.get_response(request)
        return self.get_response(request)


def company_view(permission: str):
    """Signed in, a member of a company, and the role may do `permission`."""

    def decorator(view):
        @wraps(view)
        def wrapped(request, *args, **kwargs):
            if not request.user.is_authenticated:
                return redirect_to_login(request.get_full_path())
            if request.membership is None:
                return render(request, "stores/no_company.html", status=403)
            if not role_can(request.membership.role, permission):
                raise PermissionDenied(f"Your role cannot do this ({permission}).")
            return view(request, *args, **kwargs)

        return wrapped

    return decorator
