"""Secrets at rest (integration credentials, webhook signing secrets) are Fernet tokens.

FIELD_ENCRYPTION_KEYS lists the keys, newest first: a secret is encrypted with the newest
and decrypted with whichever key opens it. To replace a key, put a new one in front, run
`manage.py rotate_encryption_keys`, then drop the old one.

Each app names its encrypted columns with `encrypted_field_register` in its AppConfig.ready,
so the rotation command finds every one of them without `stores` importing upward.
"""

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings

from .errors import DomainError

# ("app_label.Model", "field name") of every column that holds a token from `encrypt`.
ENCRYPTED_FIELDS: list[tuple[str, str]] = []


def encrypted_field_register(model_label: str, field_name: str) -> None:
    if (model_label, field_name) not in ENCRYPTED_FIELDS:
        ENCRYPTED_FIELDS.append((model_label, field_name))


def _fernets() -> list[Fernet]:
    # Read on every call, so a changed setting (tests, a reloaded worker) takes effect.
    return [Fernet(key.encode()) for key in settings.FIELD_ENCRYPTION_KEYS]


def encrypt(plaintext: str) -> str:
    return _fernets()[0].encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return MultiFernet(_fernets()).decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DomainError(
            "A stored secret cannot be decrypted: none of the FIELD_ENCRYPTION_KEYS is the key "
            "it was saved under. Enter the secret again.",
            code="secret_unreadable",
        ) from exc


def token_is_current(token: str) -> bool:
    """Whether the newest key opens `token` (nothing to re-encrypt)."""
    try:
        _fernets()[0].decrypt(token.encode())
    except InvalidToken:
        return False
    return True


def token_rotate(token: str) -> str:
    """The same secret encrypted with the newest key. Raises InvalidToken when no key opens
    it."""
    return MultiFernet(_fernets()).rotate(token.encode()).decode()


def last4(secret: str) -> str:
    """What a page may show of a secret after it is saved."""
    return f"…{secret[-4:]}" if len(secret) >= 8 else "…"
