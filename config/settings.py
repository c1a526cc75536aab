"""The one settings module. Everything that differs between machines is read from the
environment; the defaults are safe for development only."""

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEV_SECRET_KEY = "dev-only-secret-key-do-not-use-in-production"
# A valid Fernet key, for development only.
DEV_FIELD_ENCRYPTION_KEY = "ZGV2LW9ubHktZmllbGQtZW5jcnlwdGlvbi1rZXktMDA="

DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)
FIELD_ENCRYPTION_KEY = os.environ.get("FIELD_ENCRYPTION_KEY", DEV_FIELD_ENCRYPTION_KEY)

if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("DEBUG=0 needs a real SECRET_KEY; the development secret is refused.")
if not DEBUG and FIELD_ENCRYPTION_KEY == DEV_FIELD_ENCRYPTION_KEY:
    raise ImproperlyConfigured(
        "DEBUG=0 needs a real FIELD_ENCRYPTION_KEY (a Fernet key); the development key is refused."
    )

ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]" if not DEBUG else "*")
CSRF_TRUSTED_ORIGINS = env_list("CSRF_TRUSTED_ORIGINS", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.humanize",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "django_htmx",
    "template_partials",
    "pgtrigger",
    "stores",
    "loyalty",
    "integrations",
    "audiences",
    "waitingroom",
    "analytics",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "stores.tenancy.CurrentCompanyMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "stores.context_processors.shell",
                "integrations.context_processors.account_notices",
            ],
        },
    },
]

# With no DATABASE_URL, the embedded server that `make run` / `make test` start under var/.
DATABASE_URL = os.environ.get(
    "DATABASE_URL", f"postgresql://postgres@/loyalty?host={VAR_DIR / 'postgres'}"
)
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
# Server-side binding lets psycopg prepare a statement a connection runs again and again
# (after 5 runs), so PostgreSQL stops planning the POS's hot queries on every call.
DATABASES["default"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
if not DATABASES["default"]["ENGINE"].endswith("postgresql"):
    raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL.")
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")

# Shared by the web server and the workers (sync progress is written by one, read by the other).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        # Parallel test workers share one Redis: each keeps its counters to itself.
        "KEY_PREFIX": "loyalty" + (f"-{os.environ['PYTEST_XDIST_WORKER']}"
                                   if os.environ.get("PYTEST_XDIST_WORKER") else ""),
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"  # the dashboard for the signed-in role
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "America/Los_Angeles")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start otherwise
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = True

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
CSRF_COOKIE_SECURE = not DEBUG

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty platform API",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "DESCRIPTION": (
        "The POS API. Authenticate every call with `X-Account-UID: <your company's account UID>` "
        "and `Authorization: Bearer <API key>` (Settings › API keys). Every POST accepts an "
        "`Idempotency-Key` header: the same key and body replay the first response."),
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "APPEND_COMPONENTS": {"securitySchemes": {
        "apiKey": {"type": "http", "scheme": "bearer"},
        "accountUid": {"type": "apiKey", "in": "header", "name": "X-Account-UID"}}},
    "SECURITY": [{"apiKey": [], "accountUid": []}],
}

# Waiting-room kiosk: check-ins one tablet may send a store per minute.
CHECKIN_RATE_LIMIT_PER_MINUTE = int(os.environ.get("CHECKIN_RATE_LIMIT_PER_MINUTE", "30"))
# How many reverse proxies in front of the app append to X-Forwarded-For: the kiosk's rate
# limit then tells tablets apart by the address the outermost one saw. 0: the header is
# not trusted (anyone could write it).
TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

CELERY_BROKER_URL = REDIS_URL
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
# Fixed jobs; per-connection nightly syncs are added to the database schedule by the app.
CELERY_BEAT_SCHEDULE = {
    "release-expired-locks": {"task": "loyalty.tasks.locks_release_expired", "schedule": 60.0},
    "refresh-tiers": {"task": "loyalty.tasks.tiers_refresh", "schedule": 6 * 3600.0},
    "count-prompt-firings": {"task": "loyalty.tasks.prompt_firings_flush", "schedule": 60.0},
    "expire-points": {"task": "loyalty.tasks.points_expire_all", "schedule": 24 * 3600.0},
    "refresh-audiences": {"task": "audiences.tasks.audiences_refresh_all_companies",
                          "schedule": 24 * 3600.0},
}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"}},
}
