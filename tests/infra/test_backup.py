"""Backup and restore: `python -m config.launcher backup FILE` dumps the database with the
embedded server's own pg_dump (custom format); `restore FILE` loads it into a fresh
database, where every row, every ledger sum and every encrypted secret is as it was."""

import io
import os
import subprocess
import sys

import psycopg
import pytest
from django.core.management import call_command
from django.db import connection

from loyalty.models import Persona, WebhookEndpoint
from loyalty.services.points import points_adjust
from stores.crypto import decrypt
from stores.models import Company, Role
from tests.analytics.conftest import Shop
from tests.factories import MembershipFactory

from .childproc import ROOT, database_url

SECRET = "whsec-kept-through-a-restore-0123456789"

SNAPSHOT = {
    # every persona's ledger: entries, their sum, and the balance the persona row says
    "ledger": """SELECT p.id, p.company_id, p.points_balance, count(e.id), coalesce(sum(e.delta), 0)
                 FROM loyalty_persona p LEFT JOIN loyalty_pointsentry e ON e.persona_id = p.id
                 GROUP BY p.id ORDER BY p.id""",
    "sales": """SELECT company_id, status, count(*), sum(total), sum(subtotal), sum(tax_total)
                FROM loyalty_transaction GROUP BY 1, 2 ORDER BY 1, 2""",
    "lines": "SELECT count(*), sum(total), sum(quantity) FROM loyalty_lineitem",
    "secrets": "SELECT id, secret_encrypted FROM loyalty_webhookendpoint ORDER BY id",
}


def launcher(*args: str, url: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "config.launcher", *args], cwd=ROOT,
                          env=os.environ | {"DATABASE_URL": url},
                          capture_output=True, text=True, timeout=300)


def snapshot(url: str) -> dict:
    """Every table's exact row count, and the sums that must survive."""
    with psycopg.connect(url) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")]
        counts = {t: conn.execute(f'SELECT count(*) FROM "{t}"').fetchone()[0] for t in tables}
        return {"counts": counts} | {name: conn.execute(sql).fetchall() for name, sql in SNAPSHOT.items()}


@pytest.fixture
def fresh_database():
    name = f"{connection.settings_dict['NAME']}_restored"
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        cursor.execute(f'CREATE DATABASE "{name}"')
    yield database_url(name)
    with connection.cursor() as cursor:
        cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.django_db(transaction=True)
def test_backup_restored_into_a_fresh_database_has_every_row_sum_and_secret(
        company, other_company, fresh_database, tmp_path):
    # given the demo company, two more with sales and redemptions, hand adjustments to the
    # ledger, and a webhook endpoint whose signing secret is stored encrypted
    call_command("load_demo", personas=150, transactions=1500, stdout=io.StringIO())
    Shop(company, other_company)
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    for persona in Persona.objects.filter(company=company)[:3]:
        points_adjust(company=company, persona_id=persona.pk, delta=250, staff_user=staff, reason="Goodwill")
    endpoint = WebhookEndpoint(company=company, url="https://hooks.example.com/pos",
                               events=["points.changed"])
    endpoint.set_secret(SECRET)
    endpoint.save()
    before = snapshot(database_url())
    assert Company.objects.count() == 3 and len(before["ledger"]) > 150
    assert before["counts"]["loyalty_lineitem"] and before["counts"]["loyalty_pointsentry"]

    # when it is backed up, and the dump restored into a fresh database
    dump = tmp_path / "loyalty.dump"
    backed_up = launcher("backup", str(dump), url=database_url())
    assert backed_up.returncode == 0, backed_up.stderr
    assert dump.read_bytes()[:5] == b"PGDMP"  # pg_dump's custom format
    restored = launcher("restore", str(dump), url=fresh_database)
    assert restored.returncode == 0, restored.stderr

    # then every table has the same rows, every ledger the same sum, every sale the same total
    after = snapshot(fresh_database)
    assert after["counts"] == before["counts"]
    assert after == before
    # and the secret still opens with the same keys
    [(_, token)] = [row for row in after["secrets"] if row[0] == endpoint.pk]
    assert decrypt(token) == SECRET

    # and a second restore into the now full database is refused, not merged
    again = launcher("restore", str(dump), url=fresh_database)
    assert again.returncode == 1
    assert "restore into an empty database, or pass --clean" in again.stdout
    assert snapshot(fresh_database) == before
