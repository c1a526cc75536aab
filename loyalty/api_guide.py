"""The POS API quick start (/api/docs/guide/) and its Postman collection (/api/docs/postman.json).

The guide's curl examples are built from COUNTER_FLOW and RETURN_FLOW, and the tests run the
same steps against a live server (in Python, and as the very shell text the page shows), so
the page cannot drift from what the API does."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

# The demo (`manage.py load_demo`): its first customer's card number, a product it sells,
# and an offer its customers can afford.
DEMO_EXTERNAL_ID = "C-100000"
DEMO_OFFER_NAME = "$5 off"
DEMO_ITEM = {"sku": "FLO-09737", "product": "Gary Payton 3.5g", "brand": "Cookies", "category": "Flower",
             "quantity": "1", "unit_price": "45.00"}

# What the reader sets before the first call; the tests set them too.
SETUP_VARIABLES = [
    ("API", "http://127.0.0.1:8000/api/pos/v1", "the API's address (here: `make run`)"),
    ("ACCOUNT_UID", "<account UID>", "shown on Settings › API keys"),
    ("KEY", "<API key>", "shown once, when the key is created"),
    ("STORE_ID", "1", "the number in a store's edit link (Settings › Retail stores)"),
]


@dataclass(frozen=True)
class Var:
    """A value taken from an earlier answer or the setup: `$NAME` in the shell."""

    name: str


@dataclass(frozen=True)
class Step:
    """One call. `captures` name values of its answer the later steps use: each path is a
    list of keys, list indexes and {key: value} filters (the first list element that
    matches)."""

    title: str
    method: str
    path: str
    body: dict | None = None
    headers: dict = field(default_factory=dict)
    captures: dict = field(default_factory=dict)
    expect_status: tuple = (200,)
    note: str = ""


def _cart(store_id) -> dict:
    return {"store_id": store_id, "items": [dict(DEMO_ITEM)]}


COUNTER_FLOW = [
    Step(
        title="1. Look the customer up, with the cart so far",
        method="POST", path="lookup",
        body={"external_id": DEMO_EXTERNAL_ID, "basket": _cart(Var("STORE_ID"))},
        captures={"PERSONA_ID": ["persona", "id"],
                  "OFFER_ID": ["rewards", {"name": DEMO_OFFER_NAME}, "offer_id"]},
        note="Look up by exactly one of `phone`, `email`, `persona_id`, `external_id` (the card "
             "number) or `wallet_code` (the code, or its QR code, on the customer's loyalty page; "
             "the answer's `scanned` is that wallet item, with `applicable`). The answer has the "
             "balance, the tier, the wallet and each reward with `affordable` and, with a basket, "
             "its `discount`. Use `persona.id` from then on.",
    ),
    Step(
        title="2. Lock a reward on the cart",
        method="POST", path="lock",
        body={"persona_id": Var("PERSONA_ID"), "cart_id": "T-1001", "offer_id": Var("OFFER_ID"),
              "basket": _cart(Var("STORE_ID"))},
        captures={"REDEMPTION_ID": ["redemption_id"], "DISCOUNT": ["discount_amount"]},
        expect_status=(201,),
        note="The reward's points are held for the lock time (Settings › Loyalty program). "
             "Lock again after the cart changes; `unlock` with the `redemption_id` or `cart_id` "
             "gives the points back.",
    ),
    Step(
        title="3. Send the sale when it closes",
        method="POST", path="send_transaction",
        headers={"Idempotency-Key": "T-1001"},
        body={"transaction_id": "T-1001", "store_id": Var("STORE_ID"), "persona_id": Var("PERSONA_ID"),
              "subtotal": "45.00", "tax_total": "6.00",
              "items": [dict(DEMO_ITEM)],
              "payments": [{"method": "Cash", "amount": "46.00"}],
              "discounts": [{"redemption_id": Var("REDEMPTION_ID"), "amount": Var("DISCOUNT")}]},
        captures={"EARNED": ["points_earned"]},
        expect_status=(201,),
        note="The locked reward is redeemed with the sale and the customer earns its points. "
             "Sending the same `transaction_id` again updates the sale (201 the first time, "
             "then 200).",
    ),
    Step(
        title="4. Read the balance",
        method="GET", path="personas/{PERSONA_ID}/balance",
        captures={"BALANCE": ["points_balance"]},
        note="`points_locked` counts the points held by rewards locked on open carts.",
    ),
]

RETURN_FLOW = [
    Step(
        title="A partial return of that sale",
        method="POST", path="send_transaction",
        headers={"Idempotency-Key": "T-1001-R1"},
        body={"transaction_id": "T-1001-R1", "original_transaction_id": "T-1001",
              "store_id": Var("STORE_ID"), "persona_id": Var("PERSONA_ID"),
              "subtotal": "20.00", "tax_total": "0.00",
              "items": [dict(DEMO_ITEM, quantity="1", unit_price="20.00")],
              "payments": [{"method": "Cash", "amount": "20.00"}]},
        captures={"REVERSED": ["points_reversed"]},
        expect_status=(201,),
        note="A return is a sale of its own with `original_transaction_id` naming the sale. "
             "`subtotal` is the amount refunded. Under the \"reverse\" refund policy it takes back "
             "the original's points in proportion; `points_reversed` says how many it has taken "
             "back in all. Send it again with the same `transaction_id` and another amount to "
             "amend it (never more than the sale earned), or `\"status\": \"voided\"` to cancel it.",
    ),
]


# --- evaluation (the tests) and shell rendering (the page) -----------------------------------

def resolved(value, variables: dict):
    """`value` with each Var replaced by its value."""
    if isinstance(value, Var):
        return variables[value.name]
    if isinstance(value, dict):
        return {k: resolved(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [resolved(v, variables) for v in value]
    return value


def step_path(step: Step, variables: dict) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: str(variables[m.group(1)]), step.path)


def captured(answer, path: list):
    """The value at `path` in a decoded answer (see Step.captures)."""
    for part in path:
        if isinstance(part, dict):
            answer = next(item for item in answer if all(item.get(k) == v for k, v in part.items()))
        else:
            answer = answer[part]
    return answer


def _jq(path: list) -> str:
    parts = []
    for part in path:
        if isinstance(part, dict):
            test = " and ".join(f".{k} == {json.dumps(v)}" for k, v in part.items())
            parts.append(f"map(select({test}))[0]")
        elif isinstance(part, int):
            parts.append(f".[{part}]")
        else:
            parts.append(f".{part}")
    return " | ".join(parts) or "."


def _body_text(body) -> str:
    """The body as JSON, with each Var written `$NAME` (numbers bare, text in quotes)."""
    marks = {}

    def mark(value):
        if isinstance(value, Var):
            token = f"@@{value.name}@@"
            marks[json.dumps(token)] = f"${value.name}"
            return token
        if isinstance(value, dict):
            return {k: mark(v) for k, v in value.items()}
        if isinstance(value, list):
            return [mark(v) for v in value]
        return value

    text = json.dumps(mark(body), indent=2, ensure_ascii=False)
    for quoted, shell in marks.items():
        # Ids are numbers; the discount amount is a decimal string.
        text = text.replace(quoted, f'"{shell}"' if shell == "$DISCOUNT" else shell)
    return text


def shell_setup(values: dict | None = None) -> str:
    """The variables to set first; `values` replaces the placeholders (the tests' server)."""
    values = values or {}
    lines = [f'{name}="{values.get(name, value)}"    # {help_}'.replace("`", "")
             for name, value, help_ in SETUP_VARIABLES]
    lines.append('H=(-H "X-Account-UID: $ACCOUNT_UID" -H "Authorization: Bearer $KEY" '
                 '-H "Content-Type: application/json")')
    return "\n".join(lines)


def shell_step(step: Step) -> str:
    """The step as bash: curl, its answer kept in $OUT and printed, captures read with jq."""
    url = '"$API/' + re.sub(r"\{(\w+)\}", r"$\1", step.path) + '"'
    parts = ['curl -sS "${H[@]}"']
    if step.method != "GET" or step.body is not None:
        parts.append(f"-X {step.method}")
    parts += [f'-H "{k}: {v}"' for k, v in step.headers.items()]
    if step.body is not None:
        parts.append("--data-binary @-")
    parts.append(url)
    command = "OUT=$(" + " ".join(parts)
    if step.body is not None:
        command += " <<JSON\n" + _body_text(step.body) + "\nJSON\n)"
    else:
        command += ")"
    lines = [command, 'echo "$OUT" | jq .']
    for name, path in step.captures.items():
        lines.append(f"{name}=$(echo \"$OUT\" | jq -r '{_jq(path)}')")
    return "\n".join(lines)


def shell_script(steps: list[Step]) -> str:
    return "\n\n".join(shell_step(s) for s in steps)


# --- webhooks ------------------------------------------------------------------------------

WEBHOOK_VERIFY_EXAMPLE = '''import hashlib
import hmac
import time


def loyalty_signature_ok(secret: str, header: str, body: bytes, tolerance: int = 300) -> bool:
    """header: the X-Loyalty-Signature header, "t=<unix time>,v1=<hex>"; body: the raw body."""
    timestamp, signatures = None, []
    for part in header.split(","):
        key, _, value = part.strip().partition("=")
        if key == "t":
            timestamp = value
        elif key == "v1":
            signatures.append(value)
    try:
        timestamp = int(timestamp)
    except (TypeError, ValueError):
        return False
    if not signatures or abs(time.time() - timestamp) > tolerance:
        return False  # too old: a replay
    signed = f"{timestamp}.".encode() + body
    expected = hmac.new(secret.encode(), signed, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, s) for s in signatures)
'''


# --- Postman -----------------------------------------------------------------------------------

POSTMAN_SCHEMA = "https://schema.getpostman.com/json/collection/v2.1.0/collection.json"


def _example(schema: dict, components: dict, depth: int = 0):
    """An example value for a JSON schema: its example, default or first enum value, else
    one built from its type (required properties, one element per array)."""
    if "$ref" in schema:
        return _example(components.get(schema["$ref"].rsplit("/", 1)[-1], {}), components, depth)
    for key in ("example", "default"):
        if key in schema:
            return schema[key]
    if schema.get("enum"):
        return schema["enum"][0]
    for combo in ("allOf", "oneOf", "anyOf"):
        if schema.get(combo):
            parts = [_example(s, components, depth) for s in schema[combo]]
            if combo == "allOf" and all(isinstance(p, dict) for p in parts):
                return {k: v for p in parts for k, v in p.items()}
            return next((p for p in parts if p is not None), None)
    kind = schema.get("type")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), None)
    if kind == "object" or "properties" in schema:
        if depth > 6:
            return {}
        props = schema.get("properties", {})
        required = schema.get("required") or list(props)
        return {name: _example(props[name], components, depth + 1) for name in required if name in props}
    if kind == "array":
        return [_example(schema.get("items", {}), components, depth + 1)]
    if kind == "integer":
        return max(1, schema.get("minimum", 1))
    if kind == "number":
        return schema.get("minimum", 1)
    if kind == "boolean":
        return True
    if kind == "string":
        fmt = schema.get("format")
        return {"decimal": "1.00", "email": "customer@example.com", "date-time": "2026-01-01T12:00:00Z",
                "date": "2026-01-01", "uuid": "00000000-0000-0000-0000-000000000000"}.get(fmt, "string")
    return None


def postman_collection(openapi: dict, *, base_url: str, path_prefix: str = "/api/") -> dict:
    """A Postman Collection v2.1 with one request per operation of `openapi` under
    `path_prefix`: its example JSON body, `{{baseUrl}}` and `{{apiKey}}` / `{{accountUid}}`
    variables, and the two authentication headers."""
    components = openapi.get("components", {}).get("schemas", {})
    folders: dict[str, list] = {}
    for path, operations in openapi.get("paths", {}).items():
        if not path.startswith(path_prefix) or path.startswith("/api/schema"):
            continue
        for method, operation in operations.items():
            if method not in ("get", "post", "put", "patch", "delete"):
                continue
            postman_path = re.sub(r"\{(\w+)\}", r":\1", path)
            headers = [{"key": "X-Account-UID", "value": "{{accountUid}}"},
                       {"key": "Authorization", "value": "Bearer {{apiKey}}"}]
            request = {"method": method.upper(), "header": headers, "description": operation.get(
                "description") or operation.get("summary", ""),
                "url": {"raw": "{{baseUrl}}" + postman_path, "host": ["{{baseUrl}}"],
                        "path": [p for p in postman_path.split("/") if p],
                        "variable": [{"key": p["name"], "value": str(_example(p.get("schema", {}),
                                                                                  components))}
                                     for p in operation.get("parameters", []) if p.get("in") == "path"],
                        "query": [{"key": p["name"], "value": str(_example(p.get("schema", {}), components)),
                                   "disabled": True}
                                  for p in operation.get("parameters", []) if p.get("in") == "query"]}}
            content = operation.get("requestBody", {}).get("content", {})
            if "application/json" in content:
                headers.append({"key": "Content-Type", "value": "application/json"})
                example = content["application/json"].get("example")
                if example is None:
                    example = _example(content["application/json"].get("schema", {}), components)
                request["body"] = {"mode": "raw", "raw": json.dumps(example, indent=2),
                                   "options": {"raw": {"language": "json"}}}
            tag = (operation.get("tags") or ["api"])[0]
            folders.setdefault(tag, []).append(
                {"name": operation.get("summary") or operation.get("operationId") or f"{method} {path}",
                 "request": request})
    return {
        "info": {"name": openapi.get("info", {}).get("title", "API"), "schema": POSTMAN_SCHEMA,
                 "description": "Generated from the OpenAPI schema at /api/schema/. Set accountUid "
                                "and apiKey (Settings › API keys)."},
        "item": [{"name": tag, "item": items} for tag, items in folders.items()],
        "variable": [{"key": "baseUrl", "value": base_url}, {"key": "accountUid", "value": ""},
                     {"key": "apiKey", "value": ""}],
    }
