import os
import subprocess
import sys

from cryptography.fernet import Fernet
from django.conf import settings

CHECK = "import django; django.setup(); print('started')"
KEYS = ("import django; django.setup(); from django.conf import settings; "
        "print(settings.FIELD_ENCRYPTION_KEYS)")
DEV_KEY = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA="
OWN = ("SECRET_KEY", "FIELD_ENCRYPTION_KEY", "FIELD_ENCRYPTION_KEYS")


def start(code=CHECK, **env):
    # Only what the test gives of the variables under test, whatever the shell has.
    environment = {k: v for k, v in os.environ.items() if k not in OWN} | env
    return subprocess.run([sys.executable, "-c", code], env=environment, capture_output=True,
                          text=True, cwd=settings.BASE_DIR, timeout=60)


def key() -> str:
    return Fernet.generate_key().decode()


def test_debug_off_refuses_the_development_secret():
    result = start(DEBUG="0", FIELD_ENCRYPTION_KEY=key())
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_off_refuses_the_development_encryption_key():
    # neither variable set: the development key, refused
    result = start(DEBUG="0", SECRET_KEY="x" * 50, ALLOWED_HOSTS="shop.example")
    assert result.returncode != 0 and "development key is refused" in result.stderr
    # the development key anywhere in the list: refused too
    result = start(DEBUG="0", SECRET_KEY="x" * 50, ALLOWED_HOSTS="shop.example",
                   FIELD_ENCRYPTION_KEYS=f"{key()},{DEV_KEY}")
    assert result.returncode != 0 and "development key is refused" in result.stderr


def test_debug_off_starts_with_real_secrets():
    # the one-key form of earlier deployments
    result = start(DEBUG="0", SECRET_KEY="x" * 50, FIELD_ENCRYPTION_KEY=key(), ALLOWED_HOSTS="shop.example")
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout
    # and the list
    result = start(DEBUG="0", SECRET_KEY="x" * 50, FIELD_ENCRYPTION_KEYS=f"{key()}, {key()}",
                   ALLOWED_HOSTS="shop.example")
    assert result.returncode == 0, result.stderr


def test_encryption_keys_list_newest_first_else_the_single_key():
    # given both variables, the list wins, in its order
    new, old, single = key(), key(), key()
    result = start(KEYS, FIELD_ENCRYPTION_KEYS=f"{new}, {old}", FIELD_ENCRYPTION_KEY=single)
    assert result.stdout.strip() == repr([new, old]), result.stderr
    # given only FIELD_ENCRYPTION_KEY, it is the one key
    result = start(KEYS, FIELD_ENCRYPTION_KEY=single)
    assert result.stdout.strip() == repr([single]), result.stderr


def test_encryption_key_that_is_not_a_fernet_key_is_refused_by_position():
    result = start(FIELD_ENCRYPTION_KEYS=f"{key()},not-a-key")
    assert result.returncode != 0
    assert "key 2 of 2" in result.stderr and "not-a-key" not in result.stderr


def test_database_must_be_postgresql():
    result = start(DATABASE_URL="sqlite:///x.db")
    assert result.returncode != 0 and "PostgreSQL" in result.stderr


def test_secrets_round_trip_and_are_not_stored_in_clear():
    from stores.crypto import decrypt, encrypt, last4

    token = encrypt("cova-client-secret-1234")
    assert "cova" not in token and decrypt(token) == "cova-client-secret-1234"
    assert last4("cova-client-secret-1234") == "…1234"
