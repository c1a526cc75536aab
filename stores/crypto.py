"""Secrets at rest (integration credentials) are Fernet-encrypted with FIELD_ENCRYPTION_KEY."""

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from .errors import DomainError


def _fernet() -> Fernet:
    return Fernet(settings.FIELD_ENCRYPTION_KEY.encode())


def encrypt(plaintext: str) -> str:
    return _fernet().encrypt(plaintext.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise DomainError(
            "A stored secret cannot be decrypted: FIELD_ENCRYPTION_KEY has changed since it "
            "was saved. Enter the credential again.",
            code="secret_unreadable",
        ) from exc


def last4(secret: str) -> str:
    """What a page may show of a secret after it is saved."""
    return f"…{secret[-4:]}" if len(secret) >= 8 else "…"
