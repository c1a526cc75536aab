"""A primary and a streaming replica, started from the embedded server's own binaries
(pgserver) in a temporary folder on free ports: initdb, then pg_basebackup -R."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psycopg


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PgPair:
    def __init__(self):
        from pgserver._commands import POSTGRES_BIN_PATH

        self.bin = Path(POSTGRES_BIN_PATH)
        self.root = Path(tempfile.mkdtemp(prefix="loyalty-replica-"))
        self.primary_dir, self.replica_dir = self.root / "primary", self.root / "replica"
        self.primary_port, self.replica_port = free_port(), free_port()
        self.user = None  # PostgreSQL refuses to run as root: then as pgserver's own user
        if os.geteuid() == 0:
            from pgserver.utils import ensure_prefix_permissions, ensure_user_exists

            self.user = "pgserver"
            entry = ensure_user_exists(self.user)
            ensure_prefix_permissions(self.bin)
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self.started: list[Path] = []

    def url(self, port: int, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{port}/{database}"

    def _run(self, *args: str, timeout: float = 60) -> None:
        result = subprocess.run([str(self.bin / args[0]), *args[1:]], user=self.user, cwd=self.root,
                                capture_output=True, text=True, timeout=timeout)
        if result.returncode:
            raise RuntimeError(f"{' '.join(args[:3])} failed: {result.stderr.strip()[-800:]}")

    def _start(self, data: Path, port: int) -> None:
        self._run("pg_ctl", "-D", str(data), "-l", str(self.root / f"{data.name}.log"), "-w", "-t", "40",
                  "-o", f"-p {port} -k {self.root} -c listen_addresses=127.0.0.1", "start")
        self.started.append(data)

    def start(self) -> PgPair:
        self._run("initdb", "-D", str(self.primary_dir), "-U", "postgres", "--auth=trust", "--encoding=utf8")
        # initdb's pg_hba already lets 127.0.0.1 replicate with trust.
        with (self.primary_dir / "postgresql.conf").open("a") as conf:
            conf.write("\nwal_level = replica\nmax_wal_senders = 4\nhot_standby = on\n"
                       "fsync = off\nfull_page_writes = off\nshared_buffers = 32MB\n")
        self._start(self.primary_dir, self.primary_port)
        self._run("pg_basebackup", "-h", "127.0.0.1", "-p", str(self.primary_port), "-U", "postgres",
                  "-D", str(self.replica_dir), "-R", "-X", "stream", "-c", "fast")
        self._start(self.replica_dir, self.replica_port)
        with psycopg.connect(self.url(self.replica_port)) as conn:
            assert conn.execute("SELECT pg_is_in_recovery()").fetchone()[0], "the replica is not a standby"
        return self

    def caught_up(self, timeout: float = 30) -> None:
        """Wait until the replica has replayed everything the primary has written."""
        with psycopg.connect(self.url(self.primary_port), autocommit=True) as primary:
            target = primary.execute("SELECT pg_current_wal_lsn()").fetchone()[0]
        deadline = time.monotonic() + timeout
        with psycopg.connect(self.url(self.replica_port), autocommit=True) as replica:
            while True:
                done = replica.execute("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", [target])
                if done.fetchone()[0]:
                    return
                if time.monotonic() > deadline:
                    raise TimeoutError("the replica did not catch up")
                time.sleep(0.1)

    def replay(self, *, paused: bool) -> None:
        with psycopg.connect(self.url(self.replica_port), autocommit=True) as replica:
            # Once asked, no further record is replayed ("pause requested" until the next one comes).
            replica.execute("SELECT pg_wal_replay_pause()" if paused else "SELECT pg_wal_replay_resume()")

    def stop(self) -> None:
        for data in reversed(self.started):
            with contextlib.suppress(Exception):
                self._run("pg_ctl", "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(self.root, ignore_errors=True)
