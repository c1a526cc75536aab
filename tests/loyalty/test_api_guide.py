"""The quick start (/api/docs/guide/) works as written: its counter flow and return run
against a live server on the demo's data, once from the steps it is rendered from and once as
the very bash it shows; its Postman collection has one request per operation."""

import html
import json
import re
import shutil
import subprocess

import pytest
import requests
from django.core.management import call_command
from django.urls import reverse

from loyalty import api_guide
from loyalty.models import Persona, Redemption
from loyalty.services.webhooks import webhook_signature_header
from stores.models import Company
from stores.services import api_key_create


@pytest.fixture
def demo(transactional_db):
    """The demo company, small, with a key of level 2: what the guide's reader has."""
    call_command("load_demo", personas=30, transactions=300)
    company = Company.objects.get(slug="green-leaf")
    _, raw = api_key_create(company=company, name="Counter 1", level=2)
    store = company.stores.order_by("pk").first()
    return {"company": company, "key": raw, "store": store,
            "persona": Persona.objects.get(company=company,
                                           identities__external_id=api_guide.DEMO_EXTERNAL_ID)}


def run_steps(base, demo, steps, variables):
    session = requests.Session()
    session.headers.update({"X-Account-UID": str(demo["company"].account_uid),
                            "Authorization": f"Bearer {demo['key']}"})
    answers = []
    for step in steps:
        body = api_guide.resolved(step.body, variables) if step.body is not None else None
        response = session.request(step.method, f"{base}/api/pos/v1/{api_guide.step_path(step, variables)}",
                                   json=body, headers=step.headers, timeout=30)
        assert response.status_code in step.expect_status, (step.title, response.status_code, response.text)
        answer = response.json()
        for name, path in step.captures.items():
            variables[name] = api_guide.captured(answer, path)
        answers.append(answer)
    return answers


def test_the_guide_page_shows_the_flow_and_links_its_neighbours(client):
    page = client.get(reverse("api_guide"))
    assert page.status_code == 200
    text = html.unescape(page.content.decode())
    for step in api_guide.COUNTER_FLOW + api_guide.RETURN_FLOW:
        assert api_guide.shell_step(step) in text
    assert api_guide.shell_setup() in text
    assert api_guide.WEBHOOK_VERIFY_EXAMPLE in text
    for name in ("api_docs", "api_schema", "api_postman"):
        assert f'href="{reverse(name)}"' in text
    for words in ("Settings › API keys", "Idempotency-Key", "idempotency_in_progress", "Retry-After",
                  "idempotency_key_reused", "24 hours", "original_transaction_id", "X-Loyalty-Signature",
                  "Level 0", "Level 2"):
        assert words in text, words
    # The Swagger page's description leads here.
    schema = client.get(reverse("api_schema"), HTTP_ACCEPT="application/json").json()
    assert "(/api/docs/guide/)" in schema["info"]["description"]


def test_the_counter_flow_and_the_return_work_as_the_guide_says(live_server, demo):
    persona = demo["persona"]
    before = persona.points_balance
    variables = {"STORE_ID": demo["store"].pk}
    lookup, lock, sale, balance = run_steps(live_server.url, demo, api_guide.COUNTER_FLOW, variables)

    assert lookup["persona"]["id"] == persona.pk
    reward = next(r for r in lookup["rewards"] if r["name"] == api_guide.DEMO_OFFER_NAME)
    assert reward["affordable"] and reward["discount"] == "5.00"
    assert lock["state"] == "locked" and lock["points_balance"] == before - reward["points_cost"]
    assert sale["recorded"] and sale["points_earned"] > 0
    assert sale["redemptions"] == [{"redemption_id": variables["REDEMPTION_ID"], "state": "redeemed"}]
    assert balance == {"persona_id": persona.pk, "points_locked": 0, "tier": balance["tier"],
                       "points_balance": before - reward["points_cost"] + sale["points_earned"],
                       "lifetime_points": balance["lifetime_points"]}
    assert Redemption.objects.get(pk=variables["REDEMPTION_ID"]).state == "redeemed"

    # The Idempotency-Key makes a resent sale a replay: nothing earned twice.
    [again] = run_steps(live_server.url, demo, api_guide.COUNTER_FLOW[2:3], dict(variables))
    assert again == sale

    [ret] = run_steps(live_server.url, demo, api_guide.RETURN_FLOW, variables)
    assert ret["recorded"] and 0 <= ret["points_reversed"] <= sale["points_earned"]
    assert ret["transaction_id"] == "T-1001-R1" and ret["points_balance"] == (
        balance["points_balance"] - ret["points_reversed"])


@pytest.mark.skipif(not (shutil.which("curl") and shutil.which("jq")),
                    reason="needs curl and jq, as the guide does")
def test_the_guides_bash_runs_as_shown(live_server, demo):
    page = html.unescape(requests.get(f"{live_server.url}{reverse('api_guide')}", timeout=30).text)
    shown = re.findall(r'<pre class="code-block" data-testid="guide-step">(.*?)</pre>', page, re.S)
    assert len(shown) == len(api_guide.COUNTER_FLOW) + len(api_guide.RETURN_FLOW)
    setup = api_guide.shell_setup({"API": f"{live_server.url}/api/pos/v1",
                                   "ACCOUNT_UID": demo["company"].account_uid, "KEY": demo["key"],
                                   "STORE_ID": demo["store"].pk})
    script = "set -euo pipefail\n" + setup + "\n" + "\n".join(shown) + (
        '\necho "RESULT $PERSONA_ID $REDEMPTION_ID $EARNED $BALANCE $REVERSED"\n')
    done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    persona_id, redemption_id, earned, balance, reversed_ = done.stdout.strip().splitlines()[-1].split()[1:]
    persona = Persona.objects.get(pk=persona_id)
    assert persona == demo["persona"] and int(earned) > 0
    assert Redemption.objects.get(pk=redemption_id).state == "redeemed"
    assert persona.points_balance == int(balance) - int(reversed_)


def test_the_webhook_example_accepts_our_signature_and_nothing_else():
    namespace = {}
    exec(api_guide.WEBHOOK_VERIFY_EXAMPLE, namespace)  # the code the guide shows, as a receiver runs it
    check = namespace["loyalty_signature_ok"]
    body = json.dumps({"id": 1, "event": "points.changed", "data": {"points_balance": 10}}).encode()
    header = webhook_signature_header("whsec_test", body)
    assert check("whsec_test", header, body)
    assert not check("whsec_other", header, body)
    assert not check("whsec_test", header, body + b" ")
    assert not check("whsec_test", webhook_signature_header("whsec_test", body, timestamp=1), body)


def test_the_postman_collection_has_one_request_per_operation(client):
    response = client.get(reverse("api_postman"))
    assert response.status_code == 200
    assert "attachment" in response["Content-Disposition"]
    collection = response.json()
    assert collection["info"]["schema"] == api_guide.POSTMAN_SCHEMA
    assert {v["key"] for v in collection["variable"]} >= {"baseUrl", "apiKey", "accountUid"}
    schema = client.get(reverse("api_schema"), HTTP_ACCEPT="application/json").json()
    operations = {(m.upper(), re.sub(r"\{(\w+)\}", r":\1", p)) for p, ops in schema["paths"].items()
                  for m in ops if p.startswith("/api/") and m in ("get", "post", "put", "patch", "delete")
                  and p != "/api/schema/"}
    requests_ = [item["request"] for folder in collection["item"] for item in folder["item"]]
    assert len(requests_) == len(operations)
    assert {(r["method"], r["url"]["raw"].removeprefix("{{baseUrl}}")) for r in requests_} == operations
    for request in requests_:
        assert request["url"]["host"] == ["{{baseUrl}}"]
        headers = {h["key"]: h["value"] for h in request["header"]}
        assert headers["Authorization"] == "Bearer {{apiKey}}"
        assert headers["X-Account-UID"] == "{{accountUid}}"
    with_body = [r for r in requests_ if "body" in r]
    assert len(with_body) == sum("requestBody" in op for p, ops in schema["paths"].items()
                                 if p.startswith("/api/") for op in ops.values())
    for request in with_body:
        assert isinstance(json.loads(request["body"]["raw"]), dict)
    lookup = next(r for r in requests_ if r["url"]["raw"].endswith("/api/pos/v1/lookup"))
    assert json.loads(lookup["body"]["raw"])  # an example body to start from
