"""The app's settings with one more route, a POS view that raises: what the Sentry test
runs its server with (SENTRY_DSN comes from the environment, as in production)."""

from config.settings import *  # noqa: F403

ROOT_URLCONF = "tests.stores.sentry_urls"
