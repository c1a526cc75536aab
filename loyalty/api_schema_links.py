"""OpenAPI links between the POS API's counter-flow calls: lookup → lock → send_transaction →
balance. Clients and test tools (Schemathesis' stateful runs) follow them to feed one
answer's ids into the next call (SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"])."""

PREFIX = "/api/pos/v1/"

# (source path, method, status) -> {link name: (target path, method, link definition)}
LINKS = {
    ("lookup", "post", "200"): {
        "LockAReward": ("lock", "post", {
            "requestBody": {"persona_id": "$response.body#/persona/id"},
            "description": "Lock a reward for the customer found."}),
        "SendTheirSale": ("send_transaction", "post", {
            "requestBody": {"persona_id": "$response.body#/persona/id"},
            "description": "Send the customer's sale."}),
        "ReadTheirBalance": ("personas/{persona_id}/balance", "get", {
            "parameters": {"persona_id": "$response.body#/persona/id"},
            "description": "The customer's balance."}),
    },
    ("lock", "post", "201"): {
        "SendTheSaleWithIt": ("send_transaction", "post", {
            "requestBody": {"persona_id": "$request.body#/persona_id",
                            "discounts": [{"redemption_id": "$response.body#/redemption_id",
                                           "amount": "$response.body#/discount_amount"}]},
            "description": "Send the sale that redeems the locked reward."}),
        "Unlock": ("unlock", "post", {
            "requestBody": {"redemption_id": "$response.body#/redemption_id"},
            "description": "Release the lock: the points come back."}),
        "ReadTheBalance": ("personas/{persona_id}/balance", "get", {
            "parameters": {"persona_id": "$request.body#/persona_id"},
            "description": "The balance, with the locked points."}),
    },
    ("send_transaction", "post", "201"): {
        "ReadTheBalance": ("personas/{persona_id}/balance", "get", {
            "parameters": {"persona_id": "$request.body#/persona_id"},
            "description": "The balance after the sale."}),
    },
}


def counter_flow_links(result, generator, request, public):
    paths = result.get("paths", {})
    for (source, method, status), links in LINKS.items():
        response = paths.get(PREFIX + source, {}).get(method, {}).get("responses", {}).get(status)
        if response is None:
            continue
        for name, (target, target_method, definition) in links.items():
            operation = paths.get(PREFIX + target, {}).get(target_method)
            if operation is None or "operationId" not in operation:
                continue
            response.setdefault("links", {})[name] = {"operationId": operation["operationId"], **definition}
    return result


# What the serializers' validate() requires across fields. JSON Schema says it with oneOf /
# anyOf of `required` lists, but openapi-python-client (0.29) then types the body as Any and
# writes code that does not compile; so the served schema carries it as an extension
# (`x-one-of-required`, `x-any-of-required`) and `json_schema_rules` turns it into JSON
# Schema for tools that generate data from it (tests/loyalty/test_pos_api_contract.py).
CROSS_FIELD = {
    "Lookup": ("oneOf", [["phone"], ["email"], ["persona_id"], ["external_id"], ["wallet_code"]]),
    "Apply": ("oneOf", [["offer_id"], ["wallet_item_id"]]),
    "Release": ("anyOf", [["redemption_id"], ["cart_id"]]),
}
EXTENSION = {"oneOf": "x-one-of-required", "anyOf": "x-any-of-required"}


def cross_field_rules(result, generator, request, public):
    schemas = result.get("components", {}).get("schemas", {})
    for name, (keyword, alternatives) in CROSS_FIELD.items():
        component = schemas.get(name)
        if component is None or "oneOf" in component or "anyOf" in component:
            continue
        component[EXTENSION[keyword]] = alternatives
    return result


def json_schema_rules(openapi: dict) -> dict:
    """`openapi` with each x-*-of-required extension written as oneOf / anyOf (in place)."""
    for component in openapi.get("components", {}).get("schemas", {}).values():
        for keyword, extension in EXTENSION.items():
            if extension in component and keyword not in component:
                component[keyword] = [{"required": fields} for fields in component[extension]]
    return openapi


def request_bodies_required(result, generator, request, public):
    """Every POST of the POS and audiences APIs needs its JSON body (the server answers 400
    without one); drf-spectacular marks a body required only when a field is, and lookup's
    fields are each optional (one of them is required)."""
    for path, operations in result.get("paths", {}).items():
        body = operations.get("post", {}).get("requestBody")
        if body is not None and path.startswith(("/api/pos/", "/api/v1/audiences/")):
            body["required"] = True
    return result
