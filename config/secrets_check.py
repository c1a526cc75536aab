"""The development secrets, and the check that production refuses them.

Plain Python with no Django: the launcher runs the check before it starts anything, and
the settings module takes the development values from here."""

from collections.abc import Mapping

from cryptography.fernet import Fernet

DEV_SECRET_KEY = "dev-only-secret-key-do-not-use-in-production"
# A valid Fernet key, for development only.
DEV_FIELD_ENCRYPTION_KEY = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA="

# As the README's Deploying section gives them, from the checkout's root.
MAKE_SECRET_KEY = "python3 -c 'import secrets; print(secrets.token_urlsafe(50))'"
MAKE_FERNET_KEY = (".venv/bin/python -c 'from cryptography.fernet import Fernet; "
                   "print(Fernet.generate_key().decode())'")


def encryption_keys(environ: Mapping[str, str]) -> tuple[str, list[str]]:
    """The variable the keys come from and the keys, as the settings read them:
    FIELD_ENCRYPTION_KEYS (comma-separated), else the one-key FIELD_ENCRYPTION_KEY."""
    keys = [k.strip() for k in environ.get("FIELD_ENCRYPTION_KEYS", "").split(",") if k.strip()]
    if keys:
        return "FIELD_ENCRYPTION_KEYS", keys
    single = environ.get("FIELD_ENCRYPTION_KEY", "").strip()
    return "FIELD_ENCRYPTION_KEY", [single] if single else []


def production_secret_problems(environ: Mapping[str, str]) -> list[str]:
    """What keeps these secrets out of production, one sentence each naming the variable;
    empty when they will do."""
    problems = []
    secret = environ.get("SECRET_KEY", "")
    if not secret:
        problems.append(f"SECRET_KEY is not set. Make one with: {MAKE_SECRET_KEY}")
    elif secret == DEV_SECRET_KEY:
        problems.append(f"SECRET_KEY is the development key. Make a real one with: {MAKE_SECRET_KEY}")
    elif len(secret) < 50 or len(set(secret)) < 5:
        # Django's own deployment check (security.W009) asks the same of it.
        problems.append("SECRET_KEY is too weak: it needs at least 50 characters and 5 different "
                        f"ones. Make one with: {MAKE_SECRET_KEY}")

    variable, keys = encryption_keys(environ)
    if not keys:
        problems.append("FIELD_ENCRYPTION_KEYS is not set (Fernet keys for secrets at rest, newest "
                        f"first). Make one with: {MAKE_FERNET_KEY}")
    for position, key in enumerate(keys, start=1):
        if key == DEV_FIELD_ENCRYPTION_KEY:
            problems.append(f"{variable} holds the development key (key {position} of {len(keys)}). "
                            f"Make a real one with: {MAKE_FERNET_KEY}")
            continue
        try:
            Fernet(key)
        except ValueError:
            problems.append(f"{variable}: key {position} of {len(keys)} is not a Fernet key "
                            f"(32 url-safe base64-encoded bytes). Make one with: {MAKE_FERNET_KEY}")
    return problems
