"""The benchmark scripts run to the end on a small input and print their key=value line:
a bench that breaks (an address the outbound guard refuses, a renamed service) is caught
here, not when someone needs its number."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings

from tests.childdb import database_url

ROOT = Path(__file__).resolve().parent.parent

SMALL_RUNS = [
    ("cova_sync.py", ["--customers", "200", "--sales", "300"],
     ["customers", "sales", "sync_s", "fetch_s", "ratio"]),
    ("import_csv.py", ["--rows", "2000"],
     ["rows", "import_s", "copy_s", "ratio", "rows_per_s", "peak_rss_mb"]),
    ("wallet.py", ["--personas", "300", "--repeat", "3", "--customers", "2"],
     ["personas", "page_ms", "raw_sql_ms", "ratio"]),
]


@pytest.mark.parametrize(("script", "args", "keys"), SMALL_RUNS, ids=[run[0] for run in SMALL_RUNS])
def test_bench_script_prints_its_line_on_a_small_input(transactional_db, script, args, keys):
    # when the bench runs on a small input against the test database
    env = os.environ | {"DATABASE_URL": database_url(), "REDIS_URL": settings.REDIS_URL,
                        "DJANGO_SETTINGS_MODULE": "config.settings"}
    result = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=240)

    # then it ends well and its last line holds every key with a number
    assert result.returncode == 0, result.stderr[-3000:]
    last = result.stdout.strip().splitlines()[-1]
    values = dict(re.findall(r"(\w+)=([-\d.]+)", last))
    assert set(keys) <= set(values), last
    assert all(float(values[key]) >= 0 for key in keys), last
