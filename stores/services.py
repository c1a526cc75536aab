import hashlib
import secrets
import time

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction as db
from django.utils import timezone
from django.utils.text import slugify

from .audit import AuditContext, audit_changes, audit_record, audit_snapshot
from .errors import DomainError
from .models import ApiKey, Company, Membership, RetailStore, new_checkin_token
from .versions import version_bump, version_get


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


def store_create(*, company: Company, audit: AuditContext | None = None, **fields) -> RetailStore:
    store = RetailStore(company=company, **{k: v for k, v in fields.items() if k in STORE_FIELDS})
    store.state = store.state.strip().upper()
    _clean(store, exclude=["company"])
    with db.atomic():
        store.save()
        audit_record(audit=audit, company=company, kind="store.created", obj=store,
                     changes=audit_changes(None, audit_snapshot(store, STORE_FIELDS)))
    return store


def store_update(*, store: RetailStore, audit: AuditContext | None = None, **fields) -> RetailStore:
    before = audit_snapshot(store, STORE_FIELDS)
    for name, value in fields.items():
        if name in STORE_FIELDS:
            setattr(store, name, value)
    store.state = store.state.strip().upper()
    _clean(store, exclude=["company"])
    with db.atomic():
        store.save()
        audit_record(audit=audit, company=store.company_id, kind="store.updated", obj=store,
                     changes=audit_changes(before, audit_snapshot(store, STORE_FIELDS)),
                     if_changed=True)
    return store


def store_checkin_token_regenerate(*, store: RetailStore, audit: AuditContext | None = None) -> RetailStore:
    """A new kiosk link; the old one stops working at once."""
    old = store.checkin_token
    with db.atomic():
        store.checkin_token = new_checkin_token()
        store.save(update_fields=["checkin_token"])
        # The token is the kiosk's URL: anyone holding it can check people in.
        audit_record(audit=audit, company=store.company_id, kind="store.kiosk_link_renewed", obj=store,
                     changes=audit_changes({"checkin_token": old}, {"checkin_token": store.checkin_token},
                                           secret_fields={"checkin_token"}))
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


# --- API keys ------------------------------------------------------------------------------

API_KEY_PREFIX_LEN = 8
API_KEY_AUDIT_FIELDS = ("name", "prefix", "level")


def _key_hash(raw_key: str) -> str:
    # Keys are 32 random bytes, so a plain SHA-256 is enough: there is nothing to guess.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, company: Company, name: str, level: int, created_by=None,
                   audit: AuditContext | None = None):
    """A new key for a POS. Returns (ApiKey, the key itself); the key is never shown again."""
    name = (name or "").strip()
    if not name:
        raise DomainError("Name the key after the POS or register that uses it.", extra={"field": "name"})
    if level not in ApiKey.Level.values:
        raise DomainError("Pick an integration level: 0, 1 or 2.", extra={"field": "level"})
    raw = "lk_" + secrets.token_urlsafe(32)
    with db.atomic():
        key = ApiKey.objects.create(company=company, name=name[:120], prefix=raw[:API_KEY_PREFIX_LEN + 3],
                                    key_hash=_key_hash(raw), level=level, created_by=created_by)
        audit_record(audit=audit, company=company, kind="api_key.created", obj=key,
                     changes=audit_changes(None, audit_snapshot(key, API_KEY_AUDIT_FIELDS)))
    return key, raw


def api_key_revoke(*, api_key, audit: AuditContext | None = None) -> None:
    if api_key.revoked_at is None:
        with db.atomic():
            api_key.revoked_at = timezone.now()
            api_key.save(update_fields=["revoked_at"])
            audit_record(audit=audit, company=api_key.company_id, kind="api_key.revoked", obj=api_key,
                         changes={"revoked_at": [None, api_key.revoked_at]})
    _keys_changed(api_key.company_id)


# Keys a process has already checked, so the POS's every call is not a database query.
# A revoke bumps the company's key version in the shared cache; every process then looks
# the key up again on its next call.
_checked_keys: dict[str, list] = {}
KEY_RECHECK_SECONDS = 300


def _keys_version_key(company_id: int) -> str:
    return f"api-keys:{company_id}"


def _keys_changed(company_id: int) -> None:
    version_bump(_keys_version_key(company_id))


def api_key_authenticate(*, account_uid: str, raw_key: str):
    """The active key matching both, or None. Marks it used (at most once a minute)."""
    if not account_uid or not raw_key:
        return None
    key_hash = _key_hash(raw_key)
    now = time.monotonic()
    held = _checked_keys.get(key_hash)
    key = None
    if held is not None:
        cached, version, checked_at, _ = held
        if now - checked_at < KEY_RECHECK_SECONDS and version_get(
                _keys_version_key(cached.company_id)) == version:
            key = cached
    if key is None:
        found = ApiKey.objects.select_related("company").filter(key_hash=key_hash).first()
        if found is None:
            return None
        version = version_get(_keys_version_key(found.company_id))
        held = [found, version, now, 0.0]
        _checked_keys[key_hash] = held
        key = found
    if key.revoked_at is not None or str(key.company.account_uid) != str(account_uid).strip():
        return None
    if now - held[3] > 60:  # last used, at most once a minute
        held[3] = now
        ApiKey.objects.filter(pk=key.pk).update(last_used_at=timezone.now())
    return key
