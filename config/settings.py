"""The one settings module. Everything that differs between machines is read from the
environment; the defaults are safe for development only."""

import json
import os
import re
from datetime import timedelta
from pathlib import Path

import dj_database_url
from cryptography.fernet import Fernet
from django.core.exceptions import ImproperlyConfigured

from config.secrets_check import DEV_FIELD_ENCRYPTION_KEY, DEV_SECRET_KEY

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


DEBUG = env_bool("DEBUG", True)
SECRET_KEY = os.environ.get("SECRET_KEY", DEV_SECRET_KEY)

if not DEBUG and SECRET_KEY == DEV_SECRET_KEY:
    raise ImproperlyConfigured("DEBUG=0 needs a real SECRET_KEY; the development secret is refused.")

# Secrets at rest: Fernet keys, newest first. New secrets are encrypted with the first, any
# of them decrypts (stores/crypto.py). FIELD_ENCRYPTION_KEY is the one-key form earlier
# deployments set; it is read only when FIELD_ENCRYPTION_KEYS is not.
FIELD_ENCRYPTION_KEYS = env_list("FIELD_ENCRYPTION_KEYS", "") or [
    os.environ.get("FIELD_ENCRYPTION_KEY", DEV_FIELD_ENCRYPTION_KEY).strip()]
for _position, _key in enumerate(FIELD_ENCRYPTION_KEYS, start=1):
    try:
        Fernet(_key)
    except ValueError:
        raise ImproperlyConfigured(
            f"Encryption key {_position} of {len(FIELD_ENCRYPTION_KEYS)} in FIELD_ENCRYPTION_KEYS "
            "(or FIELD_ENCRYPTION_KEY) is not a Fernet key: 32 url-safe base64-encoded bytes."
        ) from None
if not DEBUG and DEV_FIELD_ENCRYPTION_KEY in FIELD_ENCRYPTION_KEYS:
    raise ImproperlyConfigured(
        "DEBUG=0 needs real FIELD_ENCRYPTION_KEYS (Fernet keys); the development key is refused."
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
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
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
    "ops",
    "members",
    "campaigns",
]

MIDDLEWARE = [
    "stores.requestid.RequestIdMiddleware",  # first: every later log line carries the id
    # /healthz, /readyz: before the https redirect and host check, and not in the access log
    "ops.middleware.ProbeMiddleware",
    "stores.logs.AccessLogMiddleware",  # times everything below; one access line per request
    "stores.api.ApiErrorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "csp.middleware.CSPMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "stores.tenancy.CurrentCompanyMiddleware",
    "stores.signin.TwoFactorMiddleware",
    "axes.middleware.AxesMiddleware",
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
# A streaming read replica of the primary (stores/replica.py): the Analytics page and
# dashboard, audience counts and exports read from it; the POS, every write and the page
# after a save read the primary.
DATABASE_REPLICA_URL = os.environ.get("DATABASE_REPLICA_URL", "").strip()
# How long a browser that has just saved something reads only the primary: longer than the
# replica ever lags.
REPLICA_READ_YOUR_WRITES_SECONDS = int(os.environ.get("REPLICA_READ_YOUR_WRITES_SECONDS", "10"))
if DATABASE_REPLICA_URL:
    DATABASES["replica"] = dj_database_url.parse(DATABASE_REPLICA_URL, conn_max_age=60)
    DATABASES["replica"].setdefault("OPTIONS", {}).update(server_side_binding=True, prepare_threshold=5)
    if not DATABASES["replica"]["ENGINE"].endswith("postgresql"):
        raise ImproperlyConfigured("DATABASE_REPLICA_URL must point at PostgreSQL.")
    # Tests make no database on the replica: it is the primary's test database.
    DATABASES["replica"]["TEST"] = {"MIRROR": "default"}
    DATABASE_ROUTERS = ["stores.replica.ReplicaRouter"]
    MIDDLEWARE.insert(1, "stores.replica.ReadYourWritesMiddleware")  # it wraps every view
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6379/0")
# Redis away (stores/redis_guard.py): a call to it gives up after REDIS_SOCKET_TIMEOUT
# seconds, and after a failure this process leaves it alone for REDIS_BACKOFF_SECONDS, so
# the POS answers as fast as without it.
REDIS_SOCKET_TIMEOUT = float(os.environ.get("REDIS_SOCKET_TIMEOUT", "0.5"))
REDIS_BACKOFF_SECONDS = float(os.environ.get("REDIS_BACKOFF_SECONDS", "5"))

# Shared by the web server and the workers (sync progress is written by one, read by the other).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {"socket_connect_timeout": REDIS_SOCKET_TIMEOUT, "socket_timeout": REDIS_SOCKET_TIMEOUT},
        # Parallel test workers share one Redis: each keeps its counters to itself.
        "KEY_PREFIX": "loyalty" + (f"-{os.environ['PYTEST_XDIST_WORKER']}"
                                   if os.environ.get("PYTEST_XDIST_WORKER") else ""),
    }
}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator",
     "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"  # the dashboard for the signed-in role
LOGOUT_REDIRECT_URL = "login"

# --- Staff sign-in ----------------------------------------------------------------------------
# Failed passwords lock the account, and separately the address, for a cool-off: an account
# attacked from many addresses and an address trying many accounts both stop (django-axes).
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",  # first: refuses a locked-out attempt before checking it
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = int(os.environ.get("LOGIN_FAILURE_LIMIT", "5"))
AXES_COOLOFF_TIME = timedelta(minutes=int(os.environ.get("LOGIN_COOLOFF_MINUTES", "15")))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]  # each on its own
AXES_CLIENT_IP_CALLABLE = "stores.http.client_address"  # the kiosk's reading of TRUSTED_PROXIES
AXES_LOCKOUT_CALLABLE = "stores.signin.lockout_response"  # the login page, with when to retry
# Trying again while locked out does not move the time the page promised.
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
# A success does not wipe the failures: from a shared address it would also wipe the
# address's failures against other accounts.
AXES_RESET_ON_SUCCESS = False
# Two-factor (django-otp): an authenticator app (TOTP) plus one-time recovery codes. Wrong
# codes wait 1, 2, 4, 8... seconds per device before the next try.
OTP_TOTP_ISSUER = "Loyalty"
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_STATIC_THROTTLE_FACTOR = 1
OTP_ADMIN_HIDE_SENSITIVE_DATA = True  # Django admin never shows a device's secret key

LANGUAGE_CODE = "en-us"
TIME_ZONE = os.environ.get("TIME_ZONE", "America/Los_Angeles")
USE_I18N = False
USE_TZ = True

STATIC_URL = "/static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "staticfiles"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # WhiteNoise warns on every start otherwise
# In production (DEBUG=0) `collectstatic` writes each file under a name with its content's
# hash, plus a gzip copy; WhiteNoise serves those from STATIC_ROOT with a far-future
# Cache-Control, and pages link the hashed names. A page rendered before collectstatic has
# run fails on the missing manifest: `python -m config.launcher serve web` always runs it
# first. With DEBUG on (make run, the tests) files are served as they are, from the sources.
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage" if DEBUG
                    else "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
WHITENOISE_USE_FINDERS = DEBUG

# --- Security headers, cookies and https ----------------------------------------------------
def env_seconds(name: str, default: int, minimum: int = 0) -> int:
    value = os.environ.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < minimum:
        raise ImproperlyConfigured(f"{name} must be a whole number of seconds, at least {minimum}; "
                                   f"not {value!r}.")
    return int(value)


# Content-Security-Policy (django-csp): scripts, styles, fonts and requests only from this
# site; no inline script, event handler or style, no eval (htmx runs with allowEval off), no
# plugins, and no other site may frame a page. Images may also be data: URIs.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        # The one inline script allowed, by its hash: django-celery-beat's, on its periodic
        # task form in the Django admin (it spells out the crontab).
        "script-src": ["'self'", "'sha256-QE3U2xYF7B4J2ro1/9oxiKhaWCGW39gB7ocQ/xlD0bE='"],
        "style-src": ["'self'"],
        # Only an empty style="" (Plotly's colour bar writes one to reset itself).
        "style-src-attr": ["'unsafe-hashes'", "'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU='"],
        "img-src": ["'self'", "data:"],
        "object-src": ["'none'"],
        "base-uri": ["'self'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    },
}
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"

# https only in production. A load balancer's health check may still use plain http.
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", not DEBUG)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # ops.middleware answers them first anyway
# Behind a proxy that ends TLS: the header it sets to "https" when the browser used https,
# as Django names it (HTTP_X_FORWARDED_PROTO). Only if the proxy always sets or strips it.
_proxy_ssl_header = os.environ.get("SECURE_PROXY_SSL_HEADER", "").strip()
if _proxy_ssl_header and not re.fullmatch(r"HTTP_[A-Z0-9_]+", _proxy_ssl_header):
    raise ImproperlyConfigured(
        "SECURE_PROXY_SSL_HEADER names the request header as Django sees it, e.g. "
        f"HTTP_X_FORWARDED_PROTO for X-Forwarded-Proto; {_proxy_ssl_header!r} is not one.")
SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header, "https") if _proxy_ssl_header else None
SECURE_HSTS_SECONDS = env_seconds("SECURE_HSTS_SECONDS", 0 if DEBUG else 365 * 24 * 3600)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", not DEBUG)
SECURE_HSTS_PRELOAD = env_bool("SECURE_HSTS_PRELOAD", not DEBUG)

SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SECURE = not DEBUG
# A sign-in ends a shift (12 hours) after its session last changed, or when the browser closes.
SESSION_COOKIE_AGE = env_seconds("SESSION_COOKIE_AGE", 12 * 3600, minimum=60)
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_SECURE = not DEBUG
# No script reads the CSRF cookie: pages put the token in forms and in hx-headers.
CSRF_COOKIE_HTTPONLY = True

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["stores.api.JSONParser"],  # JSON only, size and depth checked
    "EXCEPTION_HANDLER": "stores.api.api_exception_handler",
}

# --- API request limits -----------------------------------------------------------------------
# The largest request body /api/ accepts; a larger one is a 413 JSON error before anything
# reads it. Keep it at most DATA_UPLOAD_MAX_MEMORY_SIZE (Django's limit for bodies it reads
# whole, 2.5 MB by default), which pages and the Django admin go by.
_api_max_body = os.environ.get("API_MAX_BODY_BYTES", "").strip() or str(1024 * 1024)
if not _api_max_body.isdigit() or int(_api_max_body) < 1024:
    raise ImproperlyConfigured(f"API_MAX_BODY_BYTES must be a whole number of bytes, at least 1024; "
                               f"not {_api_max_body!r}.")
API_MAX_BODY_BYTES = int(_api_max_body)
SPECTACULAR_SETTINGS = {
    "TITLE": "Loyalty platform API",
    "VERSION": "1.0.0",
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "DESCRIPTION": (
        "The POS API. Authenticate every call with `X-Account-UID: <your company's account UID>` "
        "and `Authorization: Bearer <API key>` (Settings › API keys); no other header carries the "
        "key. Each operation states the integration level its key needs (`x-integration-level`: "
        "0 push only, 1 push and pull, 2 two-way). Bodies are `application/json` only (anything "
        "else is a 415). Every POST that lists `Idempotency-Key` honours it, kept 24 hours: the "
        "same key and body replay the first answer (a duplicate sent while the first still runs "
        "waits for it, or gets 409 `idempotency_in_progress` with Retry-After); another body is a "
        "409 `idempotency_key_reused`. Every error is the `Error` component, its `code` one of "
        "those its response lists.\n\n"
        "New here? The [quick start](/api/docs/guide/) walks through a key and the counter flow "
        "(lookup → lock → send_transaction → balance); the [Postman collection](/api/docs/postman.json) "
        "has every call."),
    # The error component, then OpenAPI links between the counter flow's calls.
    "POSTPROCESSING_HOOKS": ["drf_spectacular.hooks.postprocess_schema_enums",
                             "loyalty.api_schema.schema_error_component",
                             "loyalty.api_schema_links.counter_flow_links",
                             "loyalty.api_schema_links.cross_field_rules",
                             "loyalty.api_schema_links.request_bodies_required"],
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
}

# Waiting-room kiosk: check-ins one tablet may send a store per minute.
CHECKIN_RATE_LIMIT_PER_MINUTE = int(os.environ.get("CHECKIN_RATE_LIMIT_PER_MINUTE", "30"))
# How many reverse proxies in front of the app append to X-Forwarded-For: the kiosk's rate
# limit then tells tablets apart by the address the outermost one saw. 0: the header is
# not trusted (anyone could write it).
TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))

# The operator's folder for report files on this server. Each company's "Folder on the
# server" connections read only inside REPORTS_ROOT/<company slug>/.
REPORTS_ROOT = Path(os.environ.get("REPORTS_ROOT", VAR_DIR / "reports"))

# A running sync renews a lease this often divided by four; a run whose lease lapses (its
# worker was killed or lost) is marked interrupted and no longer blocks the next sync.
SYNC_LEASE_SECONDS = int(os.environ.get("SYNC_LEASE_SECONDS", "90"))

# Requests the server makes on a merchant's behalf (webhooks, S3 endpoint, OneDrive, Cova)
# never reach private or local addresses (stores/outbound.py). Only the exact host:port
# pairs listed here may, e.g. "127.0.0.1:8765,localhost:9000" for local fakes; empty in
# production. There is no switch that allows every private address.
OUTBOUND_ALLOW_HOSTS = env_list("OUTBOUND_ALLOW_HOSTS", "")
for _entry in OUTBOUND_ALLOW_HOSTS:
    if not _entry.rpartition(":")[0] or not _entry.rpartition(":")[2].isdigit():
        raise ImproperlyConfigured(
            f"OUTBOUND_ALLOW_HOSTS entry '{_entry}' is not host:port, e.g. 127.0.0.1:8765.")

# Text messages to customers (members/sms.py): "outbox" only records them (the operator's
# Sent messages page in Django admin), "twilio" sends through Twilio's Messages API with
# the TWILIO_* account below. A company can use its own Twilio account instead (Settings ›
# Loyalty page). TWILIO_API_BASE points the client at another host (the local fake in
# tests and `make run`: members/twilio_fake.py); it must then be in OUTBOUND_ALLOW_HOSTS.
SMS_PROVIDER = os.environ.get("SMS_PROVIDER", "outbox").strip() or "outbox"
if SMS_PROVIDER not in ("outbox", "twilio"):
    raise ImproperlyConfigured(f"SMS_PROVIDER must be outbox or twilio, not '{SMS_PROVIDER}'.")
TWILIO_ACCOUNT_SID = os.environ.get("TWILIO_ACCOUNT_SID", "").strip()
TWILIO_AUTH_TOKEN = os.environ.get("TWILIO_AUTH_TOKEN", "").strip()
# The sender: a phone number in E.164 (+13035550100) or a Messaging Service SID (MG...).
TWILIO_FROM = os.environ.get("TWILIO_FROM", "").strip()
TWILIO_API_BASE = os.environ.get("TWILIO_API_BASE", "").strip().rstrip("/") or "https://api.twilio.com"
# Seconds to connect, and again to wait for the answer, before a message counts as not sent.
SMS_TIMEOUT_SECONDS = float(os.environ.get("SMS_TIMEOUT_SECONDS", "5"))

# The address customers reach this server at, for what is sent to them and opened later:
# tracked links and unsubscribe links in campaign messages, the provider's status and
# reply webhooks. `make run` sets it to the demo server.
PUBLIC_BASE_URL = os.environ.get("PUBLIC_BASE_URL", "http://127.0.0.1:8000").strip().rstrip("/")

# Email to customers (campaigns) goes out through an SMTP server: the provider's relay in
# production (EMAIL_HOST, EMAIL_PORT 587 with EMAIL_USE_TLS=1, or 465 with EMAIL_USE_SSL=1,
# and its login); `make run` points it at the local fake (campaigns/smtp_fake.py). With
# EMAIL_HOST unset it is localhost:25, so nothing leaves a development machine.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "").strip() or "django.core.mail.backends.smtp.EmailBackend"
EMAIL_HOST = os.environ.get("EMAIL_HOST", "").strip() or "localhost"
EMAIL_PORT = int(os.environ.get("EMAIL_PORT", "").strip() or 25)
EMAIL_HOST_USER = os.environ.get("EMAIL_HOST_USER", "").strip()
EMAIL_HOST_PASSWORD = os.environ.get("EMAIL_HOST_PASSWORD", "").strip()
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
EMAIL_USE_SSL = env_bool("EMAIL_USE_SSL", False)
if EMAIL_USE_TLS and EMAIL_USE_SSL:
    raise ImproperlyConfigured("Set EMAIL_USE_TLS (STARTTLS, port 587) or EMAIL_USE_SSL (port 465), "
                               "not both.")
# Seconds to connect, and again to wait for each answer, before a message counts as not sent.
EMAIL_TIMEOUT = float(os.environ.get("EMAIL_TIMEOUT", "").strip() or 10)
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "").strip() or "Loyalty <no-reply@localhost>"
# An email service's API instead of SMTP, through django-anymail: EMAIL_BACKEND set to its
# backend (e.g. anymail.backends.sendgrid.EmailBackend) and ANYMAIL to its settings as JSON
# (e.g. {"SENDGRID_API_KEY": "..."}).
try:
    ANYMAIL = json.loads(os.environ.get("ANYMAIL", "").strip() or "{}")
except ValueError as exc:
    raise ImproperlyConfigured(f"ANYMAIL must be a JSON object of django-anymail settings: {exc}") from None

# The outside APIs the integrations call (integrations/providers/http.py): seconds to
# connect, and again to wait for an answer. Cova's answers are small pages; Microsoft
# Graph also streams whole report files.
COVA_TIMEOUT_SECONDS = float(os.environ.get("COVA_TIMEOUT_SECONDS", "10"))
GRAPH_CONNECT_TIMEOUT_SECONDS = float(os.environ.get("GRAPH_CONNECT_TIMEOUT_SECONDS", "5"))
GRAPH_READ_TIMEOUT_SECONDS = float(os.environ.get("GRAPH_READ_TIMEOUT_SECONDS", "60"))

# The broker: Redis (the cache's server) unless CELERY_BROKER_URL names another, e.g.
# RabbitMQ (amqp://user:pass@host:5672/vhost). Redis stays the cache either way.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "").strip() or REDIS_URL
CELERY_BROKER_TRANSPORT_OPTIONS = {}
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    # Queueing a task with the broker away fails at once instead of retrying for seconds
    # inside a POS call (workers reconnect with their own retries).
    CELERY_BROKER_TRANSPORT_OPTIONS.update(socket_connect_timeout=REDIS_SOCKET_TIMEOUT, max_retries=0)
# Webhook deliveries never attempted this long after they were made are queued again
# (their queueing failed: the broker was away).
WEBHOOK_REQUEUE_AFTER_SECONDS = int(os.environ.get("WEBHOOK_REQUEUE_AFTER_SECONDS", "300"))
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_TIMEZONE = TIME_ZONE
# django-celery-beat's DatabaseScheduler, writing beat's heartbeat as it goes.
CELERY_BEAT_SCHEDULER = "ops.beat:HeartbeatDatabaseScheduler"
# Fixed jobs; per-connection nightly syncs are added to the database schedule by the app.
CELERY_BEAT_SCHEDULE = {
    "release-expired-locks": {"task": "loyalty.tasks.locks_release_expired", "schedule": 60.0},
    "campaigns-tick": {"task": "campaigns.tasks.campaigns_tick", "schedule": 60.0},
    "refresh-tiers": {"task": "loyalty.tasks.tiers_refresh", "schedule": 6 * 3600.0},
    "count-prompt-firings": {"task": "loyalty.tasks.prompt_firings_flush", "schedule": 60.0},
    "flush-api-key-usage": {"task": "stores.tasks.api_key_usage_flush", "schedule": 60.0},
    "requeue-webhook-deliveries": {"task": "loyalty.tasks.webhook_deliveries_requeue",
                                   "schedule": 3 * 60.0},
    "requeue-persona-bulk-jobs": {"task": "loyalty.tasks.persona_bulk_jobs_requeue",
                                  "schedule": 3 * 60.0},
    "purge-sign-in-records": {"task": "members.tasks.sign_in_records_purge", "schedule": 24 * 3600.0},
    "expire-points": {"task": "loyalty.tasks.points_expire_all", "schedule": 24 * 3600.0},
    "expire-idempotency-keys": {"task": "loyalty.tasks.idempotency_keys_expire", "schedule": 3600.0},
    "interrupt-lapsed-syncs": {"task": "integrations.tasks.sync_runs_interrupt_lapsed_all",
                               "schedule": 3 * 60.0},
    "refresh-audiences": {"task": "audiences.tasks.audiences_refresh_all_companies",
                          "schedule": 24 * 3600.0},
}
CELERY_TASK_ACKS_LATE = True
# Parallel test processes share one broker: each queues its tasks (and purges) on its own.
if os.environ.get("PYTEST_XDIST_WORKER"):
    CELERY_TASK_DEFAULT_QUEUE = f"celery-{os.environ['PYTEST_XDIST_WORKER']}"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A task whose worker process is killed goes back on the queue at once (a lost pool child),
# or, when the whole worker is gone, once the broker's visibility timeout has passed since
# it was handed out: another worker then gets it again. Every task must tolerate running
# again (a sync resumes its run; see integrations/services/sync.py). Keep the timeout above
# the longest a task may run, ETA retries included, or a still-running task is delivered twice.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_VISIBILITY_TIMEOUT = int(os.environ.get("CELERY_VISIBILITY_TIMEOUT", "3600"))
if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):  # RabbitMQ redelivers on its own
    CELERY_BROKER_TRANSPORT_OPTIONS["visibility_timeout"] = CELERY_VISIBILITY_TIMEOUT
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True

# Health (ops/): each Celery worker and beat write a heartbeat this often; /readyz and
# `manage.py health worker|beat` call one older than HEALTH_HEARTBEAT_MAX_AGE stale.
HEALTH_HEARTBEAT_SECONDS = env_seconds("HEALTH_HEARTBEAT_SECONDS", 15, minimum=1)
HEALTH_HEARTBEAT_MAX_AGE = env_seconds("HEALTH_HEARTBEAT_MAX_AGE", 60, minimum=1)
if HEALTH_HEARTBEAT_MAX_AGE < 2 * HEALTH_HEARTBEAT_SECONDS:
    raise ImproperlyConfigured("HEALTH_HEARTBEAT_MAX_AGE must be at least twice HEALTH_HEARTBEAT_SECONDS, "
                               "or one late heartbeat reads as a dead process.")

# --- Logs, metrics and errors --------------------------------------------------------------
# json: one JSON object per line, for a log collector (the default with DEBUG=0); plain:
# readable text for a terminal (the default with DEBUG on, as under `make run`).
LOG_FORMAT = os.environ.get("LOG_FORMAT", "").strip().lower() or ("plain" if DEBUG else "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT is json or plain, not {LOG_FORMAT!r}.")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    # request_id: the request's X-Request-ID ("-" outside a request), as API errors show it.
    "filters": {"request_id": {"()": "stores.requestid.RequestIdFilter"},
                "forbidden": {"()": "stores.logs.ForbiddenFilter"}},
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s"},
                   "json": {"()": "stores.logs.JsonFormatter"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT,
                             "filters": ["request_id"]}},
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {"django.db.backends": {"level": "INFO"},
                # A 403 is the access line alone, not a warning with a traceback as well.
                "django.request": {"filters": ["forbidden"]},
                # A failing check is in the /readyz answer; no traceback per probe in the log.
                "health_check": {"level": "ERROR"},
                # The twilio library's clients (twilio.http_client, twilio.async_http_client)
                # log every request's headers and phone numbers at INFO: noise, personal
                # data in the log, and CPU a campaign's sending needs.
                "twilio": {"level": "WARNING"}},
}
# Celery keeps the logging above in its workers (task lines come from stores/taskruns.py).
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# /metrics answers only a scraper sending `Authorization: Bearer <METRICS_TOKEN>`; without
# the setting it is a 404. PROMETHEUS_MULTIPROC_DIR (read from the environment by
# prometheus-client itself) sums the numbers of every gunicorn and Celery process.
METRICS_TOKEN = os.environ.get("METRICS_TOKEN", "").strip()
if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)

# Errors to Sentry (or a compatible service) when SENTRY_DSN is set: exceptions in views and
# tasks, without personal data: no cookies, credentials, bodies or user details, and no
# local variables of the stack frames (they hold customers' phones and emails, and keys).
SENTRY_DSN = os.environ.get("SENTRY_DSN", "").strip()
SENTRY_ENVIRONMENT = (os.environ.get("SENTRY_ENVIRONMENT", "").strip()
                      or ("development" if DEBUG else "production"))
SENTRY_RELEASE = os.environ.get("SENTRY_RELEASE", "").strip() or None
try:
    SENTRY_TRACES_SAMPLE_RATE = float(os.environ.get("SENTRY_TRACES_SAMPLE_RATE", "").strip() or 0)
except ValueError:
    raise ImproperlyConfigured("SENTRY_TRACES_SAMPLE_RATE is a number from 0 to 1.") from None
if not 0 <= SENTRY_TRACES_SAMPLE_RATE <= 1:
    raise ImproperlyConfigured("SENTRY_TRACES_SAMPLE_RATE is a number from 0 to 1.")
if SENTRY_DSN:
    from stores.errorreports import sentry_start

    sentry_start(dsn=SENTRY_DSN, environment=SENTRY_ENVIRONMENT, release=SENTRY_RELEASE,
                 traces_sample_rate=SENTRY_TRACES_SAMPLE_RATE)
