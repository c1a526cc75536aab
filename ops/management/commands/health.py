"""Exit 0 when this container's process is healthy, 1 when not: for exec probes.

    manage.py health worker    this machine's Celery worker wrote a heartbeat lately
    manage.py health beat      Celery beat wrote a heartbeat lately
    manage.py health web       the web server here answers /healthz (--ready: /readyz)
"""

import os
import socket
import urllib.error
import urllib.request

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from redis.exceptions import RedisError

from ops.checks import CHECK_TIMEOUT
from ops.selectors import heartbeat_age


class Command(BaseCommand):
    help = "Exit 0 if this container's worker, beat or web server is healthy, else 1 (for exec probes)."

    def add_arguments(self, parser):
        parser.add_argument("role", choices=["worker", "beat", "web"])
        parser.add_argument("--ready", action="store_true",
                            help="web: ask /readyz (every dependency) instead of /healthz")
        parser.add_argument("--url", help="web: the address to ask (default http://127.0.0.1:$PORT/healthz)")

    def handle(self, *args, role, ready, url, **options):
        if role == "web":
            self._web(url or f"http://127.0.0.1:{os.environ.get('PORT', '8000')}/"
                               f"{'readyz' if ready else 'healthz'}")
        else:
            self._heartbeat(role)

    def _heartbeat(self, role):
        # A worker is asked about this machine's own heartbeat; beat runs once per deployment.
        host = socket.gethostname() if role == "worker" else None
        try:
            age = heartbeat_age(role=role, host=host)
        except (RedisError, OSError) as error:
            raise CommandError(f"{role}: cannot reach the cache ({type(error).__name__})",
                               returncode=1) from error
        where = f" on {host}" if host else ""
        if age is None:
            raise CommandError(f"{role}{where}: no heartbeat on record", returncode=1)
        if age > settings.HEALTH_HEARTBEAT_MAX_AGE:
            raise CommandError(f"{role}{where}: last heartbeat {age:.0f} s ago, more than "
                               f"{settings.HEALTH_HEARTBEAT_MAX_AGE} s", returncode=1)
        self.stdout.write(f"{role}{where}: last heartbeat {age:.0f} s ago")

    def _web(self, url):
        # The local server, not a merchant's: stores.outbound (which refuses loopback) is not for this.
        try:
            with urllib.request.urlopen(url, timeout=CHECK_TIMEOUT + 1) as response:
                body = response.read().decode()
        except urllib.error.HTTPError as error:
            raise CommandError(f"web: {url} answered {error.code} {error.read().decode()}",
                               returncode=1) from error
        except (urllib.error.URLError, OSError) as error:
            raise CommandError(f"web: {url} did not answer ({error})", returncode=1) from error
        self.stdout.write(f"web: {body.strip()}")
