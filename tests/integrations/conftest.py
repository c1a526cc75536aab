import itertools
import os
import time

import pytest

from integrations.models import SyncRun
from integrations.services.connections import connection_create
from integrations.services.sync import sync_run_create, sync_run_execute


@pytest.fixture
def reports_dir(company, reports_root):
    """The folder `folder_connection` reads: "daily" in the company's report folder."""
    path = reports_root / company.slug / "daily"
    path.mkdir(parents=True)
    return path


@pytest.fixture
def folder_connection(company, store, reports_dir):
    return connection_create(company=company, name="Nightly reports", provider="folder",
                             settings={"path": "daily"}, credentials={})


@pytest.fixture
def write_report(reports_dir):
    """Write (or rewrite) a report file in the folder. Every write gets a later modification
    time, so a rewrite is always a new etag for the folder provider."""
    stamps = itertools.count(1)
    base = time.time_ns() - 10**12

    def write(name: str, content, encoding: str = "utf-8"):
        path = reports_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
        stamp = base + next(stamps) * 10**9
        os.utime(path, ns=(stamp, stamp))
        return path

    return write


@pytest.fixture
def run_sync():
    """Queue and execute one sync run of a connection; returns the run as saved."""

    def run(connection, trigger=SyncRun.Trigger.MANUAL):
        queued = sync_run_create(connection=connection, trigger=trigger)
        sync_run_execute(run_id=queued.pk)
        return SyncRun.objects.get(pk=queued.pk)

    return run
