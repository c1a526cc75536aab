import dataclasses
import hashlib
import math
import secrets
import time

from cryptography.fernet import InvalidToken
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction as db
from django.utils import timezone
from django.utils.text import slugify
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from .audit import AuditContext, audit_changes, audit_record, audit_snapshot
from .branding import logo_content_type, logo_version
from .crypto import token_is_current, token_rotate
from .errors import CodeRefused, DomainError
from .models import (
    API_BURST_DEFAULT,
    API_BURST_MAX,
    API_RATE_DEFAULT,
    API_RATE_MAX,
    ApiKey,
    Company,
    CompanyLogo,
    Membership,
    RetailStore,
    new_checkin_token,
)
from .selectors import two_factor_required_by
from .tenancy import role_can
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
API_KEY_AUDIT_FIELDS = ("name", "prefix", "level", "rate_per_second", "burst")


def _key_hash(raw_key: str) -> str:
    # Keys are 32 random bytes, so a plain SHA-256 is enough: there is nothing to guess.
    return hashlib.sha256(raw_key.encode()).hexdigest()


def api_key_create(*, company: Company, name: str, level: int, created_by=None,
                   rate_per_second: int = API_RATE_DEFAULT, burst: int = API_BURST_DEFAULT,
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
                                    key_hash=_key_hash(raw), level=level, created_by=created_by,
                                    rate_per_second=rate_per_second, burst=burst)
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


def api_key_limits_update(*, api_key, rate_per_second: int, burst: int,
                          audit: AuditContext | None = None) -> ApiKey:
    """Set a key's request rate. Every process reads the new rate on the key's next call
    (the company's key version is bumped)."""
    if not 1 <= rate_per_second <= API_RATE_MAX:
        raise DomainError(f"Enter a rate between 1 and {API_RATE_MAX:,} requests per second.",
                          extra={"field": "rate_per_second"})
    if not rate_per_second <= burst <= API_BURST_MAX:
        raise DomainError(f"Enter a burst between the rate ({rate_per_second:,}) and {API_BURST_MAX:,} "
                          "requests.", extra={"field": "burst"})
    with db.atomic():
        key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
        before = audit_snapshot(key, ("rate_per_second", "burst"))
        key.rate_per_second, key.burst = rate_per_second, burst
        key.full_clean()
        key.save(update_fields=["rate_per_second", "burst"])
        changes = audit_changes(before, audit_snapshot(key, ("rate_per_second", "burst")))
        if changes:
            audit_record(audit=audit, company=key.company_id, kind="api_key.limits_updated", obj=key,
                         changes=changes)
    _keys_changed(key.company_id)
    return key


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
    """The active key matching both, or None."""
    if not account_uid or not raw_key:
        return None
    key_hash = _key_hash(raw_key)
    now = time.monotonic()
    held = _checked_keys.get(key_hash)
    key = None
    if held is not None:
        cached, version, checked_at = held
        if now - checked_at < KEY_RECHECK_SECONDS and version_get(
                _keys_version_key(cached.company_id)) == version:
            key = cached
    if key is None:
        found = ApiKey.objects.select_related("company").filter(key_hash=key_hash).first()
        if found is None:
            return None
        version = version_get(_keys_version_key(found.company_id))
        held = [found, version, now]
        _checked_keys[key_hash] = held
        key = found
    if key.revoked_at is not None or str(key.company.account_uid) != str(account_uid).strip():
        return None
    return key  # last used is counted with the request (stores/api_usage.py)


# -- secrets at rest --------------------------------------------------------------------------

@dataclasses.dataclass
class RotationCount:
    table: str  # "integrations.CovaCredential"
    reencrypted: int = 0
    current: int = 0
    unreadable: list[int] = dataclasses.field(default_factory=list)  # ids no key opens


def encrypted_field_rotate(*, model, field_name: str, batch_size: int = 500) -> RotationCount:
    """Re-encrypt one encrypted column with the newest key, in batches of primary keys, each
    committed on its own: a rerun after a crash skips what is done (rows the newest key
    already opens). A batch's rows are locked while they are rewritten, so a secret saved
    meanwhile is not overwritten with its older value. Rows no key opens are left as they
    are and listed."""
    count = RotationCount(table=model._meta.label)
    rows = model._default_manager.exclude(**{field_name: ""}).exclude(**{f"{field_name}__isnull": True})
    last_pk = None
    while True:
        with db.atomic():
            batch = rows.order_by("pk").select_for_update()
            if last_pk is not None:
                batch = batch.filter(pk__gt=last_pk)
            batch = list(batch.values_list("pk", field_name)[:batch_size])
            for pk, token in batch:
                if token_is_current(token):
                    count.current += 1
                    continue
                try:
                    rotated = token_rotate(token)
                except InvalidToken:
                    count.unreadable.append(pk)
                    continue
                model._default_manager.filter(pk=pk).update(**{field_name: rotated})
                count.reencrypted += 1
        if len(batch) < batch_size:
            return count
        last_pk = batch[-1][0]


# --- Two-factor authentication ---------------------------------------------------------------
# An authenticator app (a TOTP device) and one-time recovery codes (a static device with
# its tokens), from django-otp. Every change to either happens here.

RECOVERY_CODE_COUNT = 10


def _code_clean(code: str) -> str:
    # People type "123 456" and copy "abcd-efgh"; neither space nor dash is in a code.
    return "".join((code or "").split()).replace("-", "").lower()


def _code_check(device, code: str) -> CodeRefused | None:
    """Try `code` on `device` (locked by the caller). None when it was accepted, else why
    not. A wrong code is counted on the device, so the caller must let the transaction
    commit: django-otp makes the next try wait 1, 2, 4, 8... seconds."""
    allowed, info = device.verify_is_allowed()
    if not allowed:
        retry_at = info["locked_until"]
        seconds = max(1, math.ceil((retry_at - timezone.now()).total_seconds()))
        return CodeRefused(f"Too many wrong codes. Wait {seconds} second{'s' if seconds != 1 else ''} "
                           "and try again.", extra={"field": "code", "retry_at": retry_at})
    if device.verify_token(code):
        return None
    return CodeRefused("That code is not right, or it was already used. Check the time on your "
                       "phone and type the code your app shows now.", extra={"field": "code"})


def two_factor_enrol_start(*, user) -> TOTPDevice:
    """The user's authenticator app being set up: made once and shown again on every visit
    until a code confirms it, so an app that already scanned it keeps working."""
    with db.atomic(durable=True):
        get_user_model().objects.select_for_update().get(pk=user.pk)  # one set-up at a time
        device = TOTPDevice.objects.filter(user=user, confirmed=False).order_by("pk").first()
        if device is None:
            device = TOTPDevice.objects.create(user=user, name="Authenticator app", confirmed=False)
    return device


def _recovery_codes_replace(user) -> list[str]:
    device, _ = StaticDevice.objects.get_or_create(user=user, defaults={"name": "Recovery codes"})
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODE_COUNT)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def _audit_for_each_company(audit: AuditContext | None, *, user, kind: str) -> None:
    """A member's own sign-in settings belong to no one company: each company they are in
    sees the change on its trail."""
    for company_id in Membership.objects.filter(user=user).values_list("company_id", flat=True):
        audit_record(audit=audit, company=company_id, kind=kind, obj=user)


def two_factor_enrol_confirm(*, user, code: str,
                             audit: AuditContext | None = None) -> tuple[TOTPDevice, list[str]]:
    """Turn two-factor on once the app shows it has the secret: a code from it. Returns the
    device and the new recovery codes (shown once)."""
    with db.atomic(durable=True):
        devices = list(TOTPDevice.objects.select_for_update().filter(user=user).order_by("pk"))
        if any(d.confirmed for d in devices):
            # Another app takes over only after turning two-factor off, with a code.
            raise DomainError("Two-factor authentication is already on.", code="two_factor_on")
        if not devices:
            raise CodeRefused("Set-up has not started: open Two-factor authentication again.",
                              extra={"field": "code"})
        device = devices[0]
        refused = _code_check(device, _code_clean(code))
        if refused is None:
            device.confirmed = True
            device.save(update_fields=["confirmed"])
            codes = _recovery_codes_replace(user)
            _audit_for_each_company(audit, user=user, kind="two_factor.enabled")
    if refused is not None:  # raised after the commit that counted the wrong code
        raise refused
    return device, codes


def recovery_codes_regenerate(*, user, audit: AuditContext | None = None) -> list[str]:
    """Ten new recovery codes; the old ones stop working."""
    with db.atomic(durable=True):
        if not TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True).exists():
            raise DomainError("Turn two-factor authentication on first.", code="two_factor_off")
        codes = _recovery_codes_replace(user)
        _audit_for_each_company(audit, user=user, kind="two_factor.recovery_codes_regenerated")
        return codes


def _device_for_code(user, code: str):
    # A code of digits only is the app's; anything else is a recovery code. Each kind is
    # tried on its own device, so a typo does not slow down the other.
    if code.isdigit() and len(code) <= 8:
        return (TOTPDevice.objects.select_for_update().filter(user=user, confirmed=True)
                .order_by("pk").first())
    return (StaticDevice.objects.select_for_update().filter(user=user, confirmed=True)
            .order_by("pk").first())


def two_factor_verify(*, user, code: str):
    """The second step of signing in: a code from the app, or a recovery code (which then
    stops working). Returns the device that accepted it."""
    code = _code_clean(code)
    with db.atomic(durable=True):
        device = _device_for_code(user, code)
        if device is None:
            refused = CodeRefused("That is not a code from your authenticator app or one of your "
                                  "recovery codes.", extra={"field": "code"})
        else:
            refused = _code_check(device, code)
    if refused is not None:
        raise refused
    return device


def two_factor_disable(*, user, code: str, audit: AuditContext | None = None) -> None:
    """Turn two-factor off, with a current code; not while a company of the user's requires it."""
    required_by = two_factor_required_by(user=user)
    if required_by is not None:
        raise DomainError(f"{required_by.name} requires two-factor authentication, so it stays on.",
                          code="two_factor_required")
    code = _code_clean(code)
    with db.atomic(durable=True):
        device = _device_for_code(user, code)
        refused = (CodeRefused("Type a code from your authenticator app or a recovery code.",
                               extra={"field": "code"}) if device is None else _code_check(device, code))
        if refused is None:
            TOTPDevice.objects.filter(user=user).delete()
            StaticDevice.objects.filter(user=user).delete()
            _audit_for_each_company(audit, user=user, kind="two_factor.disabled")
    if refused is not None:
        raise refused


def company_two_factor_require(*, company: Company, required: bool, by,
                               audit: AuditContext | None = None) -> Company:
    """Require two-factor of every member of `company` (or stop requiring it). Members
    without it are sent to set it up on their next page; `by` is the admin who decided."""
    with db.atomic(durable=True):
        membership = Membership.objects.filter(user=by, company=company).first()
        if membership is None or not role_can(membership.role, "settings.manage"):
            raise DomainError("Only an admin of the company can change this.", code="forbidden")
        company = Company.objects.select_for_update().get(pk=company.pk)
        if company.require_two_factor != required:
            before = audit_snapshot(company, ["require_two_factor"])
            company.require_two_factor = required
            company.save(update_fields=["require_two_factor"])
            audit_record(audit=audit, company=company, kind="company.two_factor_required", obj=company,
                         changes=audit_changes(before, audit_snapshot(company, ["require_two_factor"])))
    return company


# -- Branding ----------------------------------------------------------------------------------

BRANDING_FIELDS = ["accent_color", "logo_version"]


def company_branding_update(*, company: Company, accent_color: str, logo: bytes | None = None,
                            remove_logo: bool = False, audit: AuditContext | None = None) -> Company:
    """Set the company's accent colour (blank: the default) and, given `logo`'s bytes, its
    logo (a PNG, JPEG or WebP image, checked here); `remove_logo` takes the logo away."""
    accent_color = accent_color.strip().lower()
    content_type = logo_content_type(logo) if logo is not None else None
    with db.atomic(durable=True):
        company = Company.objects.select_for_update().get(pk=company.pk)
        before = audit_snapshot(company, BRANDING_FIELDS)
        company.accent_color = accent_color
        if logo is not None:
            CompanyLogo.objects.update_or_create(company=company,
                                                 defaults={"content_type": content_type, "data": logo})
            company.logo_version = logo_version(logo)
        elif remove_logo:
            CompanyLogo.objects.filter(company=company).delete()
            company.logo_version = ""
        company.full_clean(validate_unique=False, validate_constraints=False)
        company.save(update_fields=BRANDING_FIELDS)
        audit_record(audit=audit, company=company, kind="company.branding_changed", obj=company,
                     changes=audit_changes(before, audit_snapshot(company, BRANDING_FIELDS)),
                     if_changed=True)
    return company
