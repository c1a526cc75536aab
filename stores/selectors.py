from django.contrib.auth import get_user_model
from django.db.models import Exists, OuterRef
from django.http import Http404
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .models import Company, Membership, RetailStore


def store_get(*, company, store_id) -> RetailStore:
    """One of the company's stores; another company's id, or no id at all, is a 404."""
    try:
        return company.stores.get(pk=store_id)
    except (RetailStore.DoesNotExist, ValueError, TypeError):
        raise Http404("No such store.") from None


# --- Two-factor authentication ---------------------------------------------------------------

def _has_two_factor(user_ref):
    """True where the user has a confirmed device: an authenticator app, or recovery codes
    (a sign-in then asks for a code)."""
    return (Exists(TOTPDevice.objects.filter(user=user_ref, confirmed=True))
            | Exists(StaticDevice.objects.filter(user=user_ref, confirmed=True)))


def user_has_two_factor(*, user) -> bool:
    """One query; asked on every page of a signed-in user who has not given a code."""
    return get_user_model().objects.filter(pk=user.pk).filter(_has_two_factor(OuterRef("pk"))).exists()


def authenticator_get(*, user) -> TOTPDevice | None:
    """The user's confirmed authenticator app, if two-factor is on."""
    return TOTPDevice.objects.filter(user=user, confirmed=True).order_by("pk").first()


def recovery_codes_left(*, user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def two_factor_required_by(*, user) -> Company | None:
    """A company of the user's that requires two-factor, if any: then it cannot be turned off."""
    return (Company.objects.filter(memberships__user=user, require_two_factor=True)
            .order_by("name").first())


def members_two_factor(*, company) -> list[Membership]:
    """The company's members, each with `two_factor_on`."""
    return list(company.memberships.select_related("user")
                .annotate(two_factor_on=_has_two_factor(OuterRef("user")))
                .order_by("user__username"))
