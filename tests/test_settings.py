import os
import subprocess
import sys

from django.conf import settings

CHECK = "import django; django.setup(); print('started')"


def start(**env):
    environment = {**os.environ, **env}
    return subprocess.run([sys.executable, "-c", CHECK], env=environment, capture_output=True,
                          text=True, cwd=settings.BASE_DIR, timeout=60)


def test_debug_off_refuses_the_development_secret():
    env_without = {k: v for k, v in os.environ.items() if k not in ("SECRET_KEY",)}
    result = subprocess.run([sys.executable, "-c", CHECK],
                            env={**env_without, "DEBUG": "0"}, capture_output=True, text=True,
                            cwd=settings.BASE_DIR, timeout=60)
    assert result.returncode != 0
    assert "SECRET_KEY" in result.stderr


def test_debug_off_starts_with_real_secrets():
    from cryptography.fernet import Fernet

    result = start(DEBUG="0", SECRET_KEY="x" * 50, FIELD_ENCRYPTION_KEY=Fernet.generate_key().decode(),
                   ALLOWED_HOSTS="shop.example")
    assert result.returncode == 0, result.stderr
    assert "started" in result.stdout


def test_database_must_be_postgresql():
    result = start(DATABASE_URL="sqlite:///x.db")
    assert result.returncode != 0 and "PostgreSQL" in result.stderr


def test_secrets_round_trip_and_are_not_stored_in_clear():
    from stores.crypto import decrypt, encrypt, last4

    token = encrypt("cova-client-secret-1234")
    assert "cova" not in token and decrypt(token) == "cova-client-secret-1234"
    assert last4("cova-client-secret-1234") == "…1234"
