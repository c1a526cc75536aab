"""A real Celery worker process for tests that need one: solo pool, on the queues given
(one of the test's own, so no other test's worker takes its tasks), on the test database
and the suite's broker, its output in a log file the test can read."""

import contextlib
import os
import subprocess
import sys

from django.conf import settings

from config.celery import app
from tests.childdb import database_url


@contextlib.contextmanager
def celery_worker_process(queues: str, log_path, **env):
    """`queues`: comma-separated, as `celery worker -Q` takes them; `env`: more variables."""
    env = os.environ | {"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                        "CELERY_BROKER_URL": app.conf.broker_url,
                        "PYTHONPATH": str(settings.BASE_DIR)} | env
    with open(log_path, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "celery", "-A", "config", "worker", "-P", "solo",
                                 "-Q", queues, "-l", "info", "--without-gossip", "--without-mingle",
                                 "--without-heartbeat"],
                                cwd=settings.BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
