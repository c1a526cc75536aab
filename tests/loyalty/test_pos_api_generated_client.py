"""A Python client generated from /api/schema/ (openapi-python-client) runs the counter flow
against a live server and gets typed answers: the schema is enough to integrate."""

import importlib
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from django.core.management import call_command

from loyalty import api_guide
from loyalty.models import Persona, Redemption
from stores.models import API_BURST_MAX, API_RATE_MAX, Company
from stores.services import api_key_create

GENERATOR = (shutil.which("openapi-python-client")
             or str(Path(sys.executable).parent / "openapi-python-client"))


@pytest.fixture
def pos_client_package(live_server, tmp_path):
    """The client package, generated from the schema the live server serves."""
    schema = tmp_path / "schema.json"
    schema.write_bytes(requests.get(f"{live_server.url}/api/schema/", headers={"Accept": "application/json"},
                                    timeout=30).content)
    config = tmp_path / "config.yaml"
    config.write_text("post_hooks: []\n")  # no formatter needed to import it
    done = subprocess.run([GENERATOR, "generate", "--path", str(schema), "--meta", "none",
                           "--config", str(config), "--output-path", str(tmp_path / "pos_client")],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Warning" not in done.stdout + done.stderr, done.stdout + done.stderr
    sys.path.insert(0, str(tmp_path))
    try:
        yield importlib.import_module("pos_client")
    finally:
        sys.path.remove(str(tmp_path))
        for name in [m for m in sys.modules if m == "pos_client" or m.startswith("pos_client.")]:
            del sys.modules[name]


def test_the_generated_client_runs_the_counter_flow(live_server, pos_client_package):
    call_command("load_demo", personas=30, transactions=300)
    company = Company.objects.get(slug="green-leaf")
    _, raw = api_key_create(company=company, name="Generated client", level=2,
                            rate_per_second=API_RATE_MAX, burst=API_BURST_MAX)  # limits on, not binding
    store = company.stores.order_by("pk").first()
    persona = Persona.objects.get(company=company, identities__external_id=api_guide.DEMO_EXTERNAL_ID)
    before = persona.points_balance

    client_module = importlib.import_module("pos_client.client")
    pos = importlib.import_module("pos_client.api.pos")
    models = importlib.import_module("pos_client.models")
    for name in ("pos_v1_lookup_create", "pos_v1_lock_create", "pos_v1_send_transaction_create",
                 "pos_v1_personas_balance_retrieve"):
        importlib.import_module(f"pos_client.api.pos.{name}")
    client = client_module.AuthenticatedClient(base_url=live_server.url, token=raw,
                                               headers={"X-Account-UID": str(company.account_uid)})
    lookup_step, lock_step, sale_step, _ = api_guide.COUNTER_FLOW
    variables = {"STORE_ID": store.pk}

    # The guide's bodies, as the client's typed models.
    found = pos.pos_v1_lookup_create.sync(
        client=client, body=models.Lookup.from_dict(api_guide.resolved(lookup_step.body, variables)))
    assert isinstance(found, models.LookupResponse), found
    assert found.persona.id == persona.pk and found.points_balance == before
    reward = next(r for r in found.rewards if r.name == api_guide.DEMO_OFFER_NAME)
    assert reward.affordable
    variables.update(PERSONA_ID=found.persona.id, OFFER_ID=reward.offer_id)

    locked = pos.pos_v1_lock_create.sync(
        client=client, body=models.Apply.from_dict(api_guide.resolved(lock_step.body, variables)))
    assert isinstance(locked, models.RedemptionResponse), locked
    assert locked.state == models.StateEnum.LOCKED
    assert locked.points_balance == before - reward.points_cost
    variables.update(REDEMPTION_ID=locked.redemption_id, DISCOUNT=locked.discount_amount)

    sale = pos.pos_v1_send_transaction_create.sync(
        client=client, body=models.SendTransaction.from_dict(api_guide.resolved(sale_step.body, variables)),
        idempotency_key="T-1001")
    assert isinstance(sale, models.SendTransactionResponse), sale
    assert sale.points_earned > 0

    balance = pos.pos_v1_personas_balance_retrieve.sync(client=client, persona_id=persona.pk)
    assert isinstance(balance, models.BalanceResponse), balance
    assert balance.persona_id == persona.pk and balance.points_locked == 0
    assert balance.points_balance == before - reward.points_cost + sale.points_earned
    assert Redemption.objects.get(pk=locked.redemption_id).state == "redeemed"

    # A refusal is typed too: the error component with its code.
    missing = pos.pos_v1_personas_balance_retrieve.sync(client=client, persona_id=10**9)
    assert missing.code.value == "not_found"
