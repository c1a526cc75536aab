"""The POS and audiences APIs' OpenAPI schema is a contract: a valid document whose every
operation has a typed answer, an error response per status with the codes it carries, its
integration level and headers; and the live server's answers match what it declares."""

import copy
import re
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import resolve
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate as spec_validate

from loyalty.api import LookupSerializer, PosActionView, SendTransactionSerializer
from loyalty.models import LoyaltyProgram, Offer
from loyalty.services import points_adjust
from stores.models import Role
from stores.services import api_key_create
from tests.factories import MembershipFactory, PersonaFactory

API = "/api/pos/v1/"
PREFIXES = ("/api/pos/v1/", "/api/v1/audiences/")
METHODS = ("get", "post", "put", "patch", "delete")


@pytest.fixture
def schema(db):
    response = Client().get("/api/schema/", {"format": "json"})
    assert response.status_code == 200
    return response.json()


def operations(schema):
    for path, item in schema["paths"].items():
        if path.startswith(PREFIXES):
            for method in METHODS:
                if method in item:
                    yield path, method, item[method]


def inlined(schema, node):
    """`node` with every #/components/schemas/ reference replaced by the component."""
    if isinstance(node, dict):
        if "$ref" in node:
            return inlined(schema, schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]])
        return {k: inlined(schema, v) for k, v in node.items()}
    if isinstance(node, list):
        return [inlined(schema, v) for v in node]
    return node


def response_schema(schema, path, method, status):
    declared = schema["paths"][path][method]["responses"]
    assert str(status) in declared, f"{method.upper()} {path} does not declare {status}"
    return inlined(schema, declared[str(status)]["content"]["application/json"]["schema"])


def conforms(schema, path, method, response):
    """The live answer validates against the schema its operation declares for its status."""
    body = response.json()
    OAS30Validator(response_schema(schema, path, method, response.status_code),
                   format_checker=OAS30Validator.FORMAT_CHECKER).validate(body)
    return body


# --- the document -----------------------------------------------------------------------------

def test_the_schema_is_a_valid_openapi_document(schema):
    spec_validate(copy.deepcopy(schema))


def typed(node) -> bool:
    """An object with its properties (or a composition of typed parts), never a bare object."""
    if "allOf" in node or "oneOf" in node or "anyOf" in node:
        return all(typed(n) for n in node.get("allOf", []) + node.get("oneOf", []) + node.get("anyOf", []))
    if node.get("type") == "array":
        return typed(node["items"])
    if node.get("type") == "object" or "properties" in node:
        return bool(node.get("properties")) and all(
            typed(p) for p in node["properties"].values() if p.get("type") in ("object", "array"))
    return True


def test_every_operation_has_a_typed_answer_with_an_example(schema):
    seen = 0
    for path, method, op in operations(schema):
        seen += 1
        success = {s: r for s, r in op["responses"].items() if s.startswith("2")}
        assert success, f"{method} {path}: no 2xx answer"
        for status, answer in success.items():
            content = answer["content"]["application/json"]
            node = content["schema"]
            assert "$ref" in node, f"{method} {path} {status}: not a component"
            assert typed(inlined(schema, node)), f"{method} {path} {status}: an untyped object"
            assert content.get("examples"), f"{method} {path} {status}: no example answer"
        if "requestBody" in op:
            assert op["requestBody"]["content"]["application/json"].get("examples"), f"{method} {path}"
    assert seen == 17  # 10 POS operations, 7 audiences ones


def test_every_error_status_is_the_one_error_component_with_its_codes(schema):
    error = schema["components"]["schemas"]["Error"]
    assert {"code", "detail", "field", "request_id"} <= set(error["required"])
    for path, method, op in operations(schema):
        errors = {s: r for s, r in op["responses"].items() if s[0] in "45"}
        assert "401" in errors, f"{method} {path}"
        for status, answer in errors.items():
            node = answer["content"]["application/json"]["schema"]
            assert node["allOf"][0] == {"$ref": "#/components/schemas/Error"}, f"{method} {path} {status}"
            codes = node["allOf"][1]["properties"]["code"]["enum"]
            assert codes and all(f"`{c}`" in answer["description"] for c in codes)
            examples = answer["content"]["application/json"]["examples"].values()
            assert {e["value"]["code"] for e in examples} == set(codes), f"{method} {path} {status}"
        if "requestBody" in op:
            assert {"400", "413", "415"} <= set(errors), f"{method} {path}"


def test_the_codes_the_issue_names_are_enumerated_where_they_happen(schema):
    def codes(path, method, status):
        return set(schema["paths"][path][method]["responses"][str(status)]["content"]["application/json"]
                   ["schema"]["allOf"][1]["properties"]["code"]["enum"])

    assert {"insufficient_points", "one_discount_per_order", "idempotency_key_reused",
            "idempotency_in_progress"} <= codes(API + "redeem", "post", 409)
    assert "redemption_released" in codes(API + "send_transaction", "post", 409)
    assert "several_matches" in codes(API + "lookup", "post", 409)
    assert "permission_denied" in codes(API + "lookup", "post", 403)
    assert "403" not in schema["paths"][API + "send_transaction"]["post"]["responses"]  # level 0


def test_each_operation_states_its_integration_level(schema):
    levels = {}
    for path, method, op in operations(schema):
        view = resolve(path.replace("{persona_id}", "1").replace("{audience_id}", "1")).func.view_class
        assert op["x-integration-level"] == view.min_level, f"{method} {path}"
        assert f"Integration level: {view.min_level}" in op["description"]
        levels[path] = view.min_level
    assert levels[API + "send_transaction"] == 0 and levels[API + "ping"] == 0
    assert levels[API + "lookup"] == 1


def test_idempotency_key_is_declared_where_it_is_honoured_and_retry_after_on_its_409(schema):
    for path, method, op in operations(schema):
        view = resolve(path.replace("{persona_id}", "1").replace("{audience_id}", "1")).func.view_class
        honoured = method == "post" and issubclass(view, PosActionView)
        headers = {p["name"] for p in op.get("parameters", []) if p["in"] == "header"}
        assert ("Idempotency-Key" in headers) == honoured, f"{method} {path}"
        if honoured:
            assert "Retry-After" in op["responses"]["409"]["headers"]


def test_one_auth_header_and_only_json_bodies(schema):
    schemes = schema["components"]["securitySchemes"]
    assert {s["name"] for s in schemes.values() if s.get("in") == "header"} == {"X-Account-UID"}
    assert any(s.get("scheme") == "bearer" for s in schemes.values())
    assert "X-Api-Key" not in str(schema)
    for path, method, op in operations(schema):
        assert op["security"] == [{"apiKey": [], "accountUid": []}], f"{method} {path}"
        if "requestBody" in op:
            assert set(op["requestBody"]["content"]) == {"application/json"}, f"{method} {path}"


def pattern_of(schema, component, *fields):
    node = schema["components"]["schemas"][component]
    for name in fields:
        node = inlined(schema, node["properties"][name])
        node = node.get("items", node)
    return node["pattern"]


def test_decimal_and_text_patterns_refuse_what_the_server_refuses(schema):
    money = pattern_of(schema, "SendTransaction", "subtotal")
    quantity = pattern_of(schema, "SendTransaction", "items", "quantity")
    cart_id = pattern_of(schema, "Apply", "cart_id")
    for value in ("-1", "", "-0.01", "1.001", "10000000000", "abc"):
        assert not re.search(money, value), value
    for value in ("0", "1", "45.5", "9999999999.99"):
        assert re.search(money, value), value
    assert re.search(quantity, "99999999.999") and not re.search(quantity, "100000000")
    for value in ("", "   ", "\t", "a\x00b"):
        assert not re.search(cart_id, value), repr(value)
    assert re.search(cart_id, " T-1 ")
    balance = schema["paths"][API + "personas/{persona_id}/balance"]["get"]["parameters"]
    persona_id = next(p["schema"] for p in balance if p["name"] == "persona_id")
    assert persona_id == {"type": "integer", "minimum": 0}


def test_what_the_decimal_patterns_accept_the_server_accepts():
    """Schema-valid values are never refused: each one through the real serializer."""
    import json

    schema = json.loads(Client().get("/api/schema/", {"format": "json"}).content)
    money = pattern_of(schema, "SendTransaction", "subtotal")
    quantity = pattern_of(schema, "SendTransaction", "items", "quantity")
    body = {"transaction_id": "T-1", "store_id": 1, "subtotal": "1", "items": [
        {"product": "P", "quantity": "1", "unit_price": "1"}]}
    candidates = ["0", "00", "1", "1.5", "0.01", "9999999999.99", "99999999.999", "12345678.9",
                  "9999999999", "0000000001.10", "-0", "1.", ".5", "1e3", " 1"]
    for value in candidates:
        if re.search(money, value):
            serializer = SendTransactionSerializer(data={**body, "subtotal": value})
            assert serializer.is_valid(), (value, serializer.errors)
        if re.search(quantity, value):
            line = {**body["items"][0], "quantity": value}
            serializer = SendTransactionSerializer(data={**body, "items": [line]})
            assert serializer.is_valid(), (value, serializer.errors)
    assert LookupSerializer  # the lookup's body keeps its serializer (api_input reads it)


pytestmark = pytest.mark.django_db


# --- the live server --------------------------------------------------------------------------

@pytest.fixture
def counter(company, store):
    program, _ = LoyaltyProgram.objects.get_or_create(company=company)
    program.refund_policy = "reverse"
    program.save()
    offer = Offer.objects.create(company=company, name="$10 off", kind="flat", amount=Decimal("10"),
                                 points_cost=100)
    persona = PersonaFactory(company=company, first_name="Dana", phone="+13035550150", sms_opt_in=True)
    staff = MembershipFactory(company=company, role=Role.ADMIN).user
    points_adjust(company=company, persona_id=persona.pk, delta=250, staff_user=staff, reason="Welcome")
    _, raw = api_key_create(company=company, name="Register 1", level=2)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_ACCOUNT_UID=str(company.account_uid))
    return client, offer, persona, raw


def post(client, path, body, **headers):
    return client.post(path, body, content_type="application/json", **headers)


def basket(store):
    return {"store_id": store.pk, "tax_total": "6.30", "items": [
        {"line_id": "1", "sku": "FLO-1", "product": "Blue Dream 3.5g", "brand": "Green Dot",
         "category": "Flower", "quantity": "2", "unit_price": "21.00"}]}


def test_every_pos_answer_matches_its_declared_schema(schema, counter, store):
    client, offer, persona, _ = counter
    p = API
    conforms(schema, p + "ping", "get", client.get(p + "ping"))
    found = conforms(schema, p + "lookup", "post",
                     post(client, p + "lookup", {"phone": persona.phone, "basket": basket(store)}))
    assert found["rewards"][0]["discount"] == "10.00"
    conforms(schema, p + "lookup", "post", post(client, p + "lookup", {"persona_id": persona.pk}))
    bought = conforms(schema, p + "offers/purchase", "post",
                      post(client, p + "offers/purchase", {"persona_id": persona.pk, "offer_id": offer.pk}))
    apply = {"persona_id": persona.pk, "cart_id": "C-1", "offer_id": offer.pk, "basket": basket(store)}
    lock = conforms(schema, p + "lock", "post", post(client, p + "lock", apply))
    assert lock["state"] == "locked"
    conforms(schema, p + "unlock", "post", post(client, p + "unlock", {"cart_id": "C-1"}))
    wallet_apply = {**apply, "cart_id": "C-2", "wallet_item_id": bought["wallet_item_id"]}
    del wallet_apply["offer_id"]
    redeemed = conforms(schema, p + "redeem", "post", post(client, p + "redeem", wallet_apply))
    conforms(schema, p + "reinstate", "post",
             post(client, p + "reinstate", {"redemption_id": redeemed["redemption_id"]}))
    apply["cart_id"] = "T-1"
    redeemed = conforms(schema, p + "redeem", "post", post(client, p + "redeem", apply))
    sale = {"transaction_id": "T-1", "store_id": store.pk, "persona_id": persona.pk, "subtotal": "42.00",
            "tax_total": "6.30", "items": [{"sku": "FLO-1", "product": "Blue Dream", "quantity": "2",
                                            "unit_price": "21.00"}],
            "payments": [{"method": "cash", "amount": "38.30"}],
            "discounts": [{"redemption_id": redeemed["redemption_id"], "amount": "10.00"}]}
    sold = conforms(schema, p + "send_transaction", "post",
                    post(client, p + "send_transaction", sale, HTTP_IDEMPOTENCY_KEY="T-1"))
    assert sold["recorded"] and sold["redemptions"][0]["state"] == "redeemed"
    partial = {"transaction_id": "T-1-R", "store_id": store.pk, "persona_id": persona.pk,
               "original_transaction_id": "T-1", "subtotal": "21.00",
               "items": [{"product": "Blue Dream", "quantity": "1", "unit_price": "21.00"}]}
    returned = conforms(schema, p + "send_transaction", "post", post(client, p + "send_transaction", partial))
    assert returned["status"] == "refunded"
    again = conforms(schema, p + "send_transaction", "post", post(client, p + "send_transaction", partial))
    assert again["points_reversed"] == returned["points_reversed"]
    opened = conforms(schema, p + "send_transaction", "post",
                      post(client, p + "send_transaction", {**sale, "transaction_id": "T-2", "status": "open",
                                                            "discounts": []}))
    assert opened == {"recorded": False, "prompts": []}
    balance_path, ledger_path = p + "personas/{persona_id}/balance", p + "personas/{persona_id}/ledger"
    conforms(schema, balance_path, "get", client.get(f"{p}personas/{persona.pk}/balance"))
    ledger = conforms(schema, ledger_path, "get", client.get(f"{p}personas/{persona.pk}/ledger"))
    assert {e["kind"] for e in ledger["entries"]} >= {"adjust", "redeem", "earn"}


def test_pos_refusals_match_the_error_schema_of_their_status(schema, counter, store):
    client, offer, persona, _ = counter
    p = API
    conforms(schema, p + "lookup", "post", post(client, p + "lookup", {"phone": "+13035550199"}))  # 404
    conforms(schema, p + "lookup", "post", post(client, p + "lookup", {"phone": ""}))  # 400
    too_dear = Offer.objects.create(company=offer.company, name="Big", kind="flat", amount=50,
                                    points_cost=9999)
    purchase = {"persona_id": persona.pk, "offer_id": too_dear.pk}
    refused = conforms(schema, p + "offers/purchase", "post", post(client, p + "offers/purchase", purchase))
    assert refused["code"] == "insufficient_points"
    apply = {"persona_id": persona.pk, "cart_id": "C-1", "offer_id": offer.pk, "basket": basket(store)}
    post(client, p + "redeem", apply)
    refused = conforms(schema, p + "redeem", "post", post(client, p + "redeem", apply))
    assert refused["code"] == "one_discount_per_order"
    post(client, p + "redeem", {**apply, "cart_id": "C-9"}, HTTP_IDEMPOTENCY_KEY="k1")
    reused = conforms(schema, p + "redeem", "post",
                      post(client, p + "redeem", {**apply, "cart_id": "C-8"}, HTTP_IDEMPOTENCY_KEY="k1"))
    assert reused["code"] == "idempotency_key_reused"
    blank_cart = conforms(schema, p + "redeem", "post",
                          post(client, p + "redeem", {**apply, "cart_id": "  "}))
    assert blank_cart["field"] == "cart_id"
    conforms(schema, p + "personas/{persona_id}/balance", "get", client.get(f"{p}personas/999999/balance"))
    conforms(schema, p + "ping", "get", Client().get(p + "ping"))  # 401


def test_a_form_body_is_a_json_415(counter):
    client, _, persona, _ = counter
    for response in (client.post(API + "lookup", {"persona_id": persona.pk}),
                     client.post(API + "lookup", f"persona_id={persona.pk}",
                                 content_type="application/x-www-form-urlencoded")):
        assert response.status_code == 415
        assert response["Content-Type"] == "application/json"
        assert response.json()["code"] == "unsupported_media_type"


@pytest.mark.parametrize("mode", ["debug", "production", "production, static files not collected"])
def test_a_persona_id_that_is_not_a_number_is_a_json_404(counter, settings, tmp_path, mode):
    """The path's converter refuses `null`: Django's own 404, answered as the API's JSON
    without rendering the site's HTML page (which needs templates and static files)."""
    settings.DEBUG = mode == "debug"
    if "not collected" in mode:
        settings.STATIC_ROOT = tmp_path
        settings.STORAGES = {**settings.STORAGES, "staticfiles": {
            "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"}}
    client, _, _, _ = counter
    for path in ("personas/null/balance", "personas/null/ledger", "personas/-1/balance", "nothing/here"):
        response = client.get(API + path)
        assert response.status_code == 404, path
        assert response["Content-Type"].startswith("application/json")
        body = response.json()
        assert body["code"] == "not_found" and set(body) >= {"detail", "field", "request_id"}


def test_the_key_is_read_only_from_the_documented_header(counter, company):
    _, _, _, raw = counter
    alias = Client(HTTP_X_API_KEY=raw, HTTP_X_ACCOUNT_UID=str(company.account_uid))
    response = alias.get(API + "ping")
    assert response.status_code == 401 and response.json()["code"] in ("authentication_failed",
                                                                        "not_authenticated")
    documented = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_ACCOUNT_UID=str(company.account_uid))
    assert documented.get(API + "ping").status_code == 200


def test_every_audiences_answer_matches_its_declared_schema(schema, counter):
    client, _, _, _ = counter
    a = "/api/v1/audiences/"
    rules = {"type": "group", "match": "all", "negate": False, "children": [
        {"type": "condition", "trait": "sms_opt_in", "operator": "equals", "value": True, "negate": False}]}
    created = conforms(schema, a, "post", post(client, a, {"name": "Texting", "rules": rules}))
    detail = a + "{audience_id}"
    conforms(schema, a, "get", client.get(a))
    conforms(schema, a + "count", "post", post(client, a + "count", {"rules": rules}))
    conforms(schema, detail, "get", client.get(f"{a}{created['id']}"))
    conforms(schema, detail, "patch", client.patch(f"{a}{created['id']}", {"name": "SMS"},
                                                   content_type="application/json"))
    members = conforms(schema, detail + "/members", "get", client.get(f"{a}{created['id']}/members"))
    assert len(members["members"]) == 1
    conforms(schema, detail + "/refresh", "post", client.post(f"{a}{created['id']}/refresh"))
    bad = {**rules, "children": [{**rules["children"][0], "trait": "no_such_trait"}]}
    refused = conforms(schema, a + "count", "post", post(client, a + "count", {"rules": bad}))
    assert refused["code"] == "invalid_rules"
    conforms(schema, detail, "get", client.get(f"{a}999999"))  # 404


def test_every_operation_declares_its_429_with_retry_after_and_a_real_one_conforms(schema, counter):
    for path, method, op in operations(schema):
        answer = op["responses"].get("429")
        assert answer is not None, f"{method.upper()} {path} does not declare 429"
        assert "Retry-After" in answer["headers"], f"{method.upper()} {path}"
        assert answer["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"] == [
            "rate_limited"]
    # and a key past its rate is answered as declared
    client, offer, *_ = counter
    company = offer.company
    _, raw = api_key_create(company=company, name="Slow register", level=2, rate_per_second=1, burst=1)
    client = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_ACCOUNT_UID=str(company.account_uid))
    answers = [client.get(API + "ping") for _ in range(3)]
    limited = [a for a in answers if a.status_code == 429]
    assert limited, [a.status_code for a in answers]
    assert conforms(schema, API + "ping", "get", limited[0])["code"] == "rate_limited"
    assert int(limited[0]["Retry-After"]) >= 1


def test_a_number_where_the_schema_says_string_is_refused(counter):
    """DRF's CharField would take 0 as "0"; the schema says string, so the server does too."""
    client, *_ = counter
    answer = post(client, API + "reinstate", {"cart_id": 0, "redemption_id": 1})
    assert answer.status_code == 400 and answer.json()["field"] == "cart_id"
    answer = post(client, API + "lookup", {"phone": 3035550150})
    assert answer.status_code == 400 and answer.json()["field"] == "phone"
