"""The POS API keeps the contract its schema states, against a live server.

The schema served at /api/schema/ is a valid OpenAPI document. Schemathesis then sends
every POS operation generated requests, valid and invalid, with all its checks: no server
error, a status and content type the schema lists, bodies matching the response schemas,
invalid data refused, valid data accepted. Ids in valid bodies are pointed at rows of the
demo company (a hook), so they reach the sales code instead of stopping at a 404. A
stateful run follows the schema's links: lookup → lock → send_transaction → balance.
The share of generated bodies accepted and refused is printed per operation."""

from __future__ import annotations

import itertools
import json
import random
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import pytest
import requests
import schemathesis
from django.conf import settings as settings_module
from django.core.management import call_command
from drf_spectacular.generators import SchemaGenerator
from hypothesis import HealthCheck, Phase, settings
from openapi_spec_validator import validate
from pytest_django.live_server_helper import LiveServer
from schemathesis.checks import positive_data_acceptance
from schemathesis.generation.meta import TestPhase
from schemathesis.generation.modes import GenerationMode

from loyalty import api_guide
from loyalty.api_schema_links import json_schema_rules
from loyalty.bounds import MONEY_MAX
from loyalty.models import Offer, Persona, Redemption, WalletItem
from stores.models import API_BURST_MAX, API_RATE_MAX, Company
from stores.services import api_key_create

PREFIX = "/api/pos/v1/"
MAX_EXAMPLES = 8
# The shares, per run, also here (under xdist a passing test's output is not shown).
REPORT = Path(settings_module.BASE_DIR) / "var" / "pos_api_contract_report.txt"

# Rows of the seeded company that generated ids are pointed at (filled by `seeded`).
REAL: dict[str, list] = {}
# (operation, "valid" | "invalid") -> Counter of status classes, over the whole module.
TALLY: dict[tuple[str, str], Counter] = defaultdict(Counter)
# Operation -> Counter of the error codes that refused valid requests (the rules beyond the schema).
REFUSALS: dict[str, Counter] = defaultdict(Counter)


# Rewards locked during the run (lock's answers): a stateful sale that carries one by the
# schema's link redeems it, so it is kept in the body.
LOCKED_NOW: set[int] = set()


def _pick(kind: str, rng: random.Random, current):
    rows = REAL.get(kind)
    if not rows or current in rows:
        return current  # already real: a stateful step's id from an earlier answer
    return rng.choice(rows)


FRESH = itertools.count(1)


def _real_ids(body, rng: random.Random, operation: str):
    """Each id in a valid body becomes a real row's (nested baskets and discounts too): the
    customer found, the seeded store, a reward the operation can act on; new carts and sales
    get fresh ids, so one generated case does not refuse the next."""
    if isinstance(body, list):
        return [_real_ids(item, rng, operation) for item in body]
    if not isinstance(body, dict):
        return body
    out = {}
    for key, value in body.items():
        if key == "offer_id" and isinstance(value, int) and operation in ("lock", "redeem"):
            value = _pick("cart_offer", rng, value)  # the offer with the lowest minimum basket
        elif (key in ("persona_id", "offer_id", "wallet_item_id", "store_id") and isinstance(value, int)
                or key in ("phone", "email", "external_id") and operation == "lookup"):
            value = _pick(key, rng, value)
        elif key == "redemption_id" and isinstance(value, int):
            if operation == "send_transaction":
                if value in LOCKED_NOW:  # the lock's link: the sale redeems it
                    LOCKED_NOW.discard(value)
                else:
                    continue  # a discount of the POS's own: a reward's redemption is redeemed once
            value = _pick("locked" if operation == "unlock" else "redeemed", rng, value)
        elif key == "cart_id" and isinstance(value, str):
            # new carts for lock and redeem; the seeded locked cart to unlock, the sold one to reinstate
            value = (f"GEN-CART-{next(FRESH)}" if operation in ("lock", "redeem")
                     else "T-2002" if operation == "unlock" else "T-1001")
        elif key == "transaction_id" and isinstance(value, str):
            value = f"GEN-{next(FRESH)}"
        elif key == "original_transaction_id" and isinstance(value, str) and value:
            value = _pick("transaction_id", rng, value)
        else:
            value = _real_ids(value, rng, operation)
        out[key] = value
    if out.get("wallet_item_id") in REAL.get("wallet_owner", {}) and "persona_id" in out:
        out["persona_id"] = REAL["wallet_owner"][out["wallet_item_id"]]  # the item's holder
    return _within_money_bound(out)


def _within_money_bound(line: dict) -> dict:
    """A basket line whose quantity × unit price passes the money bound is one of that item:
    the product is a rule JSON Schema cannot state, and such a line would stop every
    generated sale at 400 before the sales code."""
    try:
        total = Decimal(line["quantity"]) * Decimal(line["unit_price"])
    except (KeyError, TypeError, ArithmeticError):
        return line
    return {**line, "quantity": "1"} if total > MONEY_MAX else line


def _is_valid(case) -> bool:
    """Whether a generated request is meant to be valid. A stateful step records what it broke
    (its mutations); its generation mode does not say (a step in the negative mode that broke
    nothing is a valid request)."""
    if case.meta is None:
        return False
    if case.meta.phase.name == TestPhase.STATEFUL:
        return not case.meta.phase.data.mutations
    return case.meta.generation.mode == GenerationMode.POSITIVE


@schemathesis.hook
def before_call(context, case, kwargs):
    """Valid requests name real rows; invalid ones are left as generated (they must be refused)."""
    if not REAL or not case.path.startswith(PREFIX) or not _is_valid(case):
        return
    rng = random.Random(json.dumps(case.body, sort_keys=True, default=str) + repr(case.path_parameters))
    if isinstance(case.body, dict):
        case.body = _real_ids(case.body, rng, case.path.removeprefix(PREFIX))
    if case.headers and "Idempotency-Key" in case.headers:
        # A generated key ("0") comes back with other bodies: each request gets its own, or
        # the API rightly answers 409 idempotency_key_reused.
        case.headers = {**case.headers, "Idempotency-Key": f"GEN-KEY-{next(FRESH)}"}
    if case.path_parameters and "persona_id" in case.path_parameters:
        case.path_parameters = {**case.path_parameters, "persona_id": _pick("persona_id", rng, 0)}


@pytest.fixture(scope="module")
def seeded(django_db_setup, django_db_blocker):
    """A live server of its own for this module, and the demo company, seeded once: a key of
    level 2, a closed sale with a redeemed reward (the guide's counter flow) and a reward
    locked on an open cart. Seeding per test (pytest-django's live_server flushes the
    database after each) would take most of the time budget; the rows are removed at the end."""
    with django_db_blocker.unblock():
        call_command("flush", interactive=False, verbosity=0)  # whatever an earlier test committed
        server = LiveServer("localhost")
        server._live_server_modified_settings.enable()
        try:
            yield _seed(server.url)
        finally:
            REAL.clear()
            LOCKED_NOW.clear()
            server._live_server_modified_settings.disable()
            server.stop()
            call_command("flush", interactive=False, verbosity=0)  # the worker's next test starts empty


def _seed(base_url: str) -> dict:
    call_command("load_demo", personas=30, transactions=300)
    company = Company.objects.get(slug="green-leaf")
    _, raw = api_key_create(company=company, name="Contract", level=2,
                            rate_per_second=API_RATE_MAX, burst=API_BURST_MAX)  # limits on, not binding
    headers = {"X-Account-UID": str(company.account_uid), "Authorization": f"Bearer {raw}"}
    store = company.stores.order_by("pk").first()
    variables = {"STORE_ID": store.pk}
    session = requests.Session()
    session.headers.update(headers)
    for step in api_guide.COUNTER_FLOW[:3]:
        url = f"{base_url}{PREFIX}{api_guide.step_path(step, variables)}"
        response = session.request(step.method, url, json=api_guide.resolved(step.body, variables),
                                   headers=step.headers)
        assert response.status_code in step.expect_status, response.text
        for name, path in step.captures.items():
            variables[name] = api_guide.captured(response.json(), path)
    lock = dict(api_guide.resolved(api_guide.COUNTER_FLOW[1].body, variables), cart_id="T-2002")
    assert session.post(f"{base_url}{PREFIX}lock", json=lock).status_code == 201
    personas = list(Persona.objects.filter(company=company).order_by("-points_balance")[:5])
    mine = {"persona__company": company}
    wallet_items = WalletItem.objects.filter(**mine, state="available").values_list("pk", "persona_id")
    redemptions = Redemption.objects.filter(**mine)
    REAL.update({
        "persona_id": [p.pk for p in personas],
        "phone": [p.phone for p in personas if p.phone],
        "email": [p.email for p in personas if p.email],
        "external_id": [api_guide.DEMO_EXTERNAL_ID],
        "locked": list(redemptions.filter(state="locked").values_list("pk", flat=True)),
        "redeemed": list(redemptions.filter(state="redeemed").values_list("pk", flat=True)),
        "offer_id": list(Offer.objects.filter(company=company).values_list("pk", flat=True)),
        "cart_offer": [Offer.objects.get(company=company, name=api_guide.DEMO_OFFER_NAME).pk],
        "wallet_item_id": list(wallet_items),
        "wallet_owner": dict(wallet_items),
        "store_id": [store.pk],
        "transaction_id": ["T-1001"],
    })
    return {"headers": headers, "base_url": base_url, "persona_id": variables["PERSONA_ID"]}


@pytest.fixture(scope="module", autouse=True)
def accepted_share_report():
    yield
    if not TALLY:
        return
    lines = ["", "Generated requests per POS operation (valid: accepted 2xx / refused 4xx; "
                 "invalid: refused 4xx / accepted 2xx):"]
    for (operation, kind), counts in sorted(TALLY.items()):
        total = sum(counts.values())
        lines.append(f"  {operation:<50} {kind:<7} n={total:<4} 2xx={counts['2xx']:<4} "
                     f"4xx={counts['4xx']:<4} ({100 * counts['2xx'] // max(total, 1)}% accepted)")
    lines.append("Valid requests refused, by error code:")
    for operation, codes in sorted(REFUSALS.items()):
        lines.append(f"  {operation:<50} " + ", ".join(f"{code}={n}" for code, n in codes.most_common()))
    print("\n".join(lines))
    REPORT.parent.mkdir(parents=True, exist_ok=True)
    with REPORT.open("a") as report:
        report.write("\n".join(lines) + "\n")


# Marked so that pytest-django sets the test database up even when this module runs alone:
# the other tests reach it through the module's own server only.
@pytest.mark.django_db
def test_the_served_schema_is_valid_openapi(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    validate(schema)
    lookup = schema["paths"][f"{PREFIX}lookup"]["post"]
    # a lookup without a body is a 400, so the schema must not offer it as valid
    assert lookup["requestBody"]["required"] is True
    assert set(lookup["responses"]["200"]["links"]) >= {"LockAReward", "ReadTheirBalance"}
    assert set(schema["paths"][f"{PREFIX}lock"]["post"]["responses"]["201"]["links"]) >= {"SendTheSaleWithIt"}


def pos_schema(mode: GenerationMode, *, coverage: bool):
    """The schema /api/schema/ serves (generated in-process, so the tests can be collected
    before any server runs), for one kind of data; every request goes to the live server."""
    openapi = json_schema_rules(SchemaGenerator().get_schema(request=None, public=True))
    loaded = schemathesis.openapi.from_dict(openapi)
    loaded.config.generation.update(modes=[mode])
    # The coverage phase sends each boundary the schema defines: every invalid edge, once.
    loaded.config.phases.coverage.enabled = coverage
    return loaded.include(path_regex=r"^/api/pos/")


valid_schema = pos_schema(GenerationMode.POSITIVE, coverage=False)
invalid_schema = pos_schema(GenerationMode.NEGATIVE, coverage=True)
EXAMPLES = settings(max_examples=MAX_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck),
                    phases=[Phase.explicit, Phase.generate])


def _count(operation: str, kind: str, response) -> None:
    TALLY[(operation, kind)][f"{response.status_code // 100}xx"] += 1
    if kind == "valid" and response.status_code >= 400:
        REFUSALS[operation][response.json().get("code", "?")] += 1


def call_and_count(case, seeded, kind: str):
    # All default checks. Valid data the server refuses is counted, not failed: some rules
    # (quantity × unit price within the money bound, an offer's minimum basket) are beyond
    # JSON Schema, and the printed shares show how much is accepted.
    response = case.call_and_validate(base_url=seeded["base_url"], headers=seeded["headers"],
                                      excluded_checks=[positive_data_acceptance])
    _count(f"{case.method} {case.path}", kind, response)
    assert response.status_code < 500
    return response


@valid_schema.parametrize()
@EXAMPLES
def test_valid_requests_keep_the_contract(case, seeded):
    call_and_count(case, seeded, "valid")


@invalid_schema.parametrize()
@EXAMPLES
def test_invalid_requests_are_refused_within_the_contract(case, seeded):
    # negative_data_rejection fails the test for invalid data the server takes; a 2xx
    # counted here was valid once sent (an optional header's value, a number as text...).
    call_and_count(case, seeded, "invalid")


def test_the_counter_flow_follows_the_schemas_links(seeded):
    served = requests.get(f"{seeded['base_url']}/api/schema/", headers={"Accept": "application/json"}).json()
    flow = schemathesis.openapi.from_dict(json_schema_rules(served)).include(path_regex=r"^/api/pos/")

    class CounterFlow(flow.as_state_machine()):
        def get_call_kwargs(self, case):
            return {"base_url": seeded["base_url"], "headers": seeded["headers"]}

        def validate_response(self, response, case, additional_checks=None, **kwargs):
            case.validate_response(response, additional_checks=additional_checks,
                                   excluded_checks=[positive_data_acceptance], transport_kwargs=kwargs)
            kind = "valid" if _is_valid(case) else "invalid"
            if response.status_code == 201 and case.path.endswith("/lock"):
                LOCKED_NOW.add(response.json()["redemption_id"])
            _count(f"stateful {case.method} {case.path}", kind, response)

    CounterFlow.run(settings=settings(max_examples=6, stateful_step_count=4, deadline=None,
                                      suppress_health_check=list(HealthCheck)))
