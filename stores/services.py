from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction as db
from django.utils.text import slugify

from .errors import DomainError
from .models import Company, Membership, RetailStore, new_checkin_token


def _clean(instance, *, exclude=None):
    try:
        instance.full_clean(exclude=exclude)
    except ValidationError as exc:
        field, messages = next(iter(exc.message_dict.items()))
        raise DomainError(f"{field}: {' '.join(messages)}", code="invalid",
                          extra={"field": field, "errors": exc.message_dict}) from exc


def company_create(*, name: str, slug: str = "", timezone: str = "America/Los_Angeles",
                   currency: str = "USD", country: str = "US") -> Company:
    company = Company(name=name.strip(), slug=slug or slugify(name), timezone=timezone,
                      currency=currency.upper(), country=country.upper())
    _clean(company)
    company.save()
    return company


STORE_FIELDS = ("name", "address", "city", "state", "postal_code", "timezone",
                "opt_in_queue_enabled", "external_ids")


def store_create(*, company: Company, **fields) -> RetailStore:
    store = RetailStore(company=company, **{k: v for k, v in fields.items() if k in STORE_FIELDS})
    store.state = store.state.strip().upper()
    _clean(store, exclude=["company"])
    store.save()
    return store


def store_update(*, store: RetailStore, **fields) -> RetailStore:
    for name, value in fields.items():
        if name in STORE_FIELDS:
            setattr(store, name, value)
    store.state = store.state.strip().upper()
    _clean(store, exclude=["company"])
    store.save()
    return store


def store_checkin_token_regenerate(*, store: RetailStore) -> RetailStore:
    store.checkin_token = new_checkin_token()
    store.save(update_fields=["checkin_token"])
    return store


def membership_create(*, company: Company, username: str, password: str | None, role: str,
                      email: str = "", stores=()) -> Membership:
    """Give a user (created when new) a role in `company`."""
    user_model = get_user_model()
    with db.atomic():
        user, created = user_model.objects.get_or_create(username=username,
                                                         defaults={"email": email})
        if created or password:
            user.set_password(password) if password else user.set_unusable_password()
            user.save()
        membership, _ = Membership.objects.update_or_create(user=user, company=company,
                                                            defaults={"role": role})
        _clean(membership, exclude=["user", "company"])
        membership.stores.set(stores)
    return membership
