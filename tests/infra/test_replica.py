"""The read replica: with DATABASE_REPLICA_URL set, analytics, audience counts and exports
read from it; the rest (what the POS and staff pages read, every write) from the primary; a
browser that has just saved reads the primary.

Against a real primary and a real streaming replica (pg_basebackup -R) started here from the
embedded server's binaries. Replay on the replica is paused, so it visibly lags: a read that
shows the old numbers came from the replica, one that shows the new from the primary.
Skipped, saying why, where the pair cannot start within a minute."""

import json
import os
import subprocess
import sys
import time

import psycopg
import pytest

from .childproc import ROOT
from .pgpair import PgPair

START_SECONDS = 60

SEED = """
import datetime as dt, json
from django.utils import timezone
from loyalty.services import source_get_or_create
from analytics.services import rollup_ensure_current
from stores.models import Role
from tests.analytics.conftest import line, record
from tests.factories import CompanyFactory, MembershipFactory, PersonaFactory, RetailStoreFactory

company = CompanyFactory(name="Replica Co", timezone="America/Denver")
store = RetailStoreFactory(company=company, name="Main")
source = source_get_or_create(company=company, kind="pos_api")
user = MembershipFactory(company=company, role=Role.ADMIN).user
people = [PersonaFactory(company=company, sourced_from=source, first_name=f"Early{i}",
                         phone=f"+1303555010{i}", email=f"early{i}@example.com") for i in range(3)]
for i, person in enumerate(people[:2]):
    record(company, source, f"early-{i}", timezone.now() - dt.timedelta(hours=2),
           [line("Flower", "Green Dot", "Blue Dream 3.5g", 1, "20.00")], store=store, persona=person)
rollup_ensure_current(company=company)
print(json.dumps({"company": company.pk, "store": store.pk, "user": user.pk}))
"""

# The web side, while the replica is stopped at the seed: writes on the primary, then reads.
LAGGING = """
import csv, datetime as dt, io, json, re
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from loyalty.models import Transaction
from loyalty.services import source_get_or_create
from stores.models import Company
from tests.analytics.conftest import line, record
from tests.factories import PersonaFactory

ids = json.loads({ids!r})
company = Company.objects.get(pk=ids["company"])
store = company.stores.get(pk=ids["store"])
user = get_user_model().objects.get(pk=ids["user"])

def browser():
    client = Client()
    client.force_login(user)
    return client

def rows(response):
    assert response.status_code == 200, response.status_code
    return list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode()
                                       if response.streaming else response.content.decode())))

out = {{}}
elsewhere = browser()
out["analytics_before"] = rows(elsewhere.get("/analytics/export/stores.csv"))
# a new sale and two new customers, on the primary
source = source_get_or_create(company=company, kind="pos_api")
late = [PersonaFactory(company=company, sourced_from=source, first_name=f"Late{{i}}",
                       phone=f"+1303555020{{i}}", email=f"late{{i}}@example.com") for i in range(2)]
record(company, source, "late-0", timezone.now() - dt.timedelta(hours=1),
       [line("Flower", "Green Dot", "Blue Dream 3.5g", 5, "20.00")], store=store, persona=late[0])
out["orders_on_primary"] = Transaction.objects.filter(company=company).count()
out["analytics_after"] = rows(elsewhere.get("/analytics/export/stores.csv"))
# a staff page the budtender uses at the counter: the primary, new customer and all
page = elsewhere.get(f"/personas/{{late[0].pk}}/")
out["persona_page"] = [page.status_code, "Late0" in page.content.decode()]

# one browser saves an audience of everyone, and is sent to it
saver = browser()
saved = saver.post("/audiences/templates/all_customers/")
out["saved_status"] = saved.status_code
out["saved_cookie"] = "recent_write" in saved.cookies
audience_id = int(saved["Location"].rstrip("/").rsplit("/", 1)[1])
out["export_after_save"] = len(rows(saver.get(f"/audiences/{{audience_id}}/export.csv"))) - 1
out["export_elsewhere"] = len(rows(elsewhere.get(f"/audiences/{{audience_id}}/export.csv"))) - 1
# a live count in the builder, from another browser: the replica's customers
from audiences.models import Audience
rules = Audience.objects.get(pk=audience_id).rules
count = elsewhere.post(f"/audiences/{{audience_id}}/count/", {{"rules": json.dumps(rules)}})
out["count_status"] = count.status_code
found = re.search(r'data-testid="audience-count">([0-9,]+)<', count.content.decode())
out["count"] = found and int(found.group(1).replace(",", ""))
print("RESULT" + json.dumps(out))
"""

CAUGHT_UP = """
import csv, io, json
from django.contrib.auth import get_user_model
from django.test import Client
client = Client()
client.force_login(get_user_model().objects.get(pk=json.loads({ids!r})["user"]))
response = client.get("/analytics/export/stores.csv")
print("RESULT" + json.dumps(list(csv.reader(io.StringIO(response.content.decode())))))
"""


@pytest.fixture(scope="module")
def pair():
    started = time.monotonic()
    try:
        pair = PgPair()
    except Exception as exc:  # noqa: BLE001 - any reason the pair cannot start is the skip's reason
        pytest.skip(f"cannot set up a primary and replica: {exc.__class__.__name__}: {exc}")
    try:
        pair.start()
    except Exception as exc:  # noqa: BLE001
        pair.stop()
        pytest.skip(f"cannot start a primary and a streaming replica: {exc.__class__.__name__}: {exc}")
    if time.monotonic() - started > START_SECONDS:
        pair.stop()
        pytest.skip(f"starting a primary and a streaming replica took over {START_SECONDS} s")
    yield pair
    pair.stop()


def django(pair: PgPair, code: str, *args: str) -> str:
    env = os.environ | {
        "DATABASE_URL": pair.url(pair.primary_port, "loyalty"),
        "DATABASE_REPLICA_URL": pair.url(pair.replica_port, "loyalty"),
        "CELERY_BROKER_URL": "memory://",  # the sale's rollup refresh is queued nowhere
    }
    result = subprocess.run([sys.executable, "manage.py", *args, *(["-c", code] if code else [])],
                            cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def result(stdout: str):
    return json.loads(stdout.split("RESULT", 1)[1])


def test_replica_serves_analytics_counts_and_exports_while_the_primary_serves_the_rest(pair):
    # given a migrated primary with a company, three customers and two sales, all replicated
    with psycopg.connect(pair.url(pair.primary_port), autocommit=True) as conn:
        conn.execute("CREATE DATABASE loyalty")
    django(pair, "", "migrate", "--no-input")
    ids = django(pair, SEED, "shell").strip().splitlines()[-1]
    pair.caught_up()

    # when the replica stops replaying (it lags) and the web side writes, then reads
    pair.replay(paused=True)
    out = result(django(pair, LAGGING.format(ids=ids), "shell"))

    # then analytics read the replica: the new sale is not there yet
    assert out["orders_on_primary"] == 3
    assert out["analytics_after"] == out["analytics_before"]
    # and the customer page reads the primary: the new customer is there
    assert out["persona_page"] == [200, True]
    # and the browser that saved the audience reads its own write: 5 members; another
    # browser's export reads the replica, where the audience has no members yet
    assert out["saved_status"] == 302
    assert out["export_after_save"] == 5
    assert out["export_elsewhere"] == 0
    assert out["saved_cookie"]
    # and the live count in another browser counts the replica's customers: 3 of 3
    assert (out["count_status"], out["count"]) == (200, 3)

    # when the replica catches up, analytics show the new sale
    pair.replay(paused=False)
    pair.caught_up()
    assert result(django(pair, CAUGHT_UP.format(ids=ids), "shell")) != out["analytics_before"]
