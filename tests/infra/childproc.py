"""What a test's child process (a Celery worker, a manage.py command) needs to reach the
test's own database: the embedded server's socket under `make test`, a TCP server otherwise."""

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from django.db import connection

ROOT = Path(__file__).resolve().parents[2]


def database_url(name: str | None = None) -> str:
    """The URL of the test database (or of another database `name` on the same server)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    name = name or db["NAME"]
    socket_dir = db["HOST"] if (db["HOST"] or "").startswith("/") else db["OPTIONS"].get("host", "")
    if socket_dir:  # a socket folder: the embedded server of make test
        port = f"&port={db['PORT']}" if db.get("PORT") else ""
        return f"postgresql://{db['USER']}{password}@/{name}?host={socket_dir}{port}"
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgresql://{db['USER']}{password}@{host}/{name}"


def reachable(host: str, port: int, timeout: float = 1.0) -> str:
    """"" when something listens on host:port, else why not."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return ""
    except OSError as exc:
        return f"{host}:{port} is not reachable ({exc.__class__.__name__}: {exc})"


def manage(*args: str, env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    """Run `manage.py ARGS` in a child process; its output is kept for the assertion message."""
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=os.environ | env,
                          capture_output=True, text=True, timeout=timeout)


def wait_for(predicate, *, timeout: float, every: float = 0.2):
    """Poll `predicate` until it returns something true, or `timeout` seconds pass."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(every)
