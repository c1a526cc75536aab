"""The test database as a child process (manage.py, a Celery worker, gunicorn) reaches it."""

from django.db import connection


def database_url() -> str:
    """DATABASE_URL for a child process: over the embedded server's unix socket under
    `make test`, else host and port; the test database's own name (per xdist worker)."""
    db = connection.settings_dict
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    socket_dir = db["HOST"] if (db["HOST"] or "").startswith("/") else db["OPTIONS"].get("host", "")
    if socket_dir:
        port = f"&port={db['PORT']}" if db.get("PORT") else ""
        return f"postgresql://{db['USER']}{password}@/{db['NAME']}?host={socket_dir}{port}"
    host = f"{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}"
    return f"postgresql://{db['USER']}{password}@{host}/{db['NAME']}"
