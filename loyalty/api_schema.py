"""What the POS and audiences APIs declare in their OpenAPI schema: each operation's
answer (a serializer per body), its integration level, its headers and, for each error
status it can return, the one error component with the codes that status can carry.

Views build their answers as plain dicts (the lookup path stays cheap); the serializers
here only describe them, and tests/loyalty/test_pos_api_schema.py checks real answers
against what they declare.
"""

from __future__ import annotations

from drf_spectacular.extensions import OpenApiSerializerFieldExtension
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, OpenApiResponse
from rest_framework import serializers

from .models import PointsKind, Redemption, TransactionStatus

ERROR_REF = {"$ref": "#/components/schemas/Error"}

# Every error body: `code` for programs, `detail` for people, `field` the input at fault.
ERROR_COMPONENT = {
    "type": "object",
    "description": "Every refusal under /api/. `code` is stable for programs; each response lists "
                   "the codes it can carry.",
    "properties": {
        "code": {"type": "string", "example": "invalid"},
        "detail": {"type": "string", "example": "items.0.unit_price: This field is required."},
        "field": {"type": "string", "nullable": True, "description": "The input at fault, null when none",
                  "example": "items.0.unit_price"},
        "request_id": {"type": "string", "nullable": True,
                       "description": "This call's X-Request-ID, also in the server's log lines"},
        "fields": {"type": "object", "additionalProperties": True,
                   "description": "`invalid`: every invalid field and its messages"},
        "candidates": {"type": "array", "description": "`several_matches`: the customers who match, masked",
                       "items": {"type": "object", "properties": {
                           "id": {"type": "integer"}, "name": {"type": "string"},
                           "phone_last4": {"type": "string"}, "email": {"type": "string"}}}},
        "balance": {"type": "integer", "description": "`insufficient_points`: the balance"},
        "needed": {"type": "integer", "description": "`insufficient_points`: the points needed"},
        "max": {"description": "`out_of_range`, `points_out_of_range`: the bound passed"},
        "state": {"type": "string", "description": "`wrong_state`, `redemption_released`: the "
                                                   "redemption's state"},
        "redemption_id": {"type": "integer", "description": "`redemption_released`: which redemption"},
        "path": {"type": "string", "description": "`invalid_rules`: where in the rule tree"},
    },
    "required": ["code", "detail", "field", "request_id"],
}

# The codes each status can carry, before an operation's own.
AUTH_CODES = ["not_authenticated", "authentication_failed"]
BODY_CODES = ["invalid", "parse_error", "json_too_deep"]
IDEMPOTENCY_CODES = ["idempotency_key_reused", "idempotency_in_progress"]
REFUSED_CODES = ["insufficient_points", "offer_inactive", "offer_not_valid_now", "offer_limit"]
LEVELS = {0: "0 (push only)", 1: "1 (push and pull)", 2: "2 (two-way)"}

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key", str, OpenApiParameter.HEADER, required=False,
    description="At most 200 characters, kept 24 hours per API key. The same key and body replay "
                "the first answer (refusals included, with `Idempotent-Replayed: true`); another body "
                "or path is a 409 `idempotency_key_reused`; a duplicate sent while the first runs "
                "waits up to 5 s, then gets 409 `idempotency_in_progress` with Retry-After.")
RETRY_AFTER = OpenApiParameter(
    "Retry-After", int, OpenApiParameter.HEADER, response=[409, 429],
    description="With `idempotency_in_progress` (409) or `rate_limited` (429): the seconds to wait "
                "before sending again")
RATE_RETRY_AFTER = OpenApiParameter(
    "Retry-After", int, OpenApiParameter.HEADER, response=[429],
    description="With `rate_limited`: the seconds to wait before sending again")


def replayed(codes) -> OpenApiParameter:
    return OpenApiParameter("Idempotent-Replayed", str, OpenApiParameter.HEADER, response=list(codes),
                            enum=["true"], description="Present on an answer replayed for an "
                                                       "Idempotency-Key")


# What an example of each code says; the rest get a generic sentence.
ERROR_DETAILS = {
    "invalid": ("items.0.unit_price: This field is required.", "items.0.unit_price"),
    "not_found": ("No such persona.", None),
    "insufficient_points": ("Not enough points: the balance is 40 and this needs 100.", None),
    "one_discount_per_order": ("Cart T-1001 already has a loyalty discount; only one per order.", None),
    "idempotency_key_reused": ("This Idempotency-Key was used with a different request.", "Idempotency-Key"),
    "idempotency_in_progress": ("A request with this Idempotency-Key is still running; retry soon.",
                                "Idempotency-Key"),
    "several_matches": ("Several customers match; ask for another detail or use persona_id.", "phone"),
    "not_authenticated": ("Authentication credentials were not provided.", None),
    "permission_denied": ("This API key's integration level does not allow this call.", None),
    "unsupported_media_type": ("Unsupported media type \"multipart/form-data\" in request.", None),
    "body_too_large": ("The request body is larger than the API accepts (1048576 bytes).", None),
    "rate_limited": ("This API key may make 20 requests a second (bursts of 40); retry after 1 s.", None),
}


def error(status: int, codes: list[str], description: str = "") -> OpenApiResponse:
    """The error component for one status, its `code` narrowed to what that status carries,
    with an example of each code."""
    codes = sorted(set(codes))
    narrowed = {"allOf": [ERROR_REF, {"type": "object", "properties": {
        "code": {"type": "string", "enum": codes}}}]}
    listed = ", ".join(f"`{c}`" for c in codes)
    examples = []
    for code in codes:
        detail, field = ERROR_DETAILS.get(code, (f"Refused: {code.replace('_', ' ')}.", None))
        examples.append(OpenApiExample(f"{status} {code}", response_only=True, status_codes=[str(status)],
                                       value={"code": code, "detail": detail, "field": field,
                                              "request_id": "5f0c2b7e9d1a4c38b6e0a1f2c3d4e5f6"}))
    return OpenApiResponse(narrowed, description=f"{description} Codes: {listed}.".strip(), examples=examples)


def operation(*, level: int, summary: str, responses: dict, request=None, idempotent: bool = False,
              body: bool = False, not_found: list[str] | None = None, conflict: list[str] | None = None,
              invalid: list[str] | None = None, description: str = "", examples=None,
              parameters=None, **kwargs) -> dict:
    """extend_schema arguments for one operation: its level (in words and as
    `x-integration-level`), its answers, and an error response for each status it can return."""
    errors = {401: error(401, AUTH_CODES, "Missing or wrong X-Account-UID / API key.")}
    if level > 0:
        errors[403] = error(403, ["permission_denied"], f"The API key's level is under {level}.")
    if body or invalid:
        errors[400] = error(400, (BODY_CODES if body else []) + (invalid or []))
    if not_found:
        errors[404] = error(404, not_found)
    conflicts = (conflict or []) + (IDEMPOTENCY_CODES if idempotent else [])
    if conflicts:
        errors[409] = error(409, conflicts)
    if body:
        errors[413] = error(413, ["body_too_large"], "The body is over the API's limit (1 MB by default).")
        errors[415] = error(415, ["unsupported_media_type"], "Bodies are application/json only.")
    # Every call counts against the key's rate (Settings › API keys).
    errors[429] = error(429, ["rate_limited"], "Over this API key's request rate; wait Retry-After seconds.")
    level_note = f"Integration level: {LEVELS[level]} or higher."
    return {
        "summary": summary,
        "description": f"{level_note}\n\n{description}".strip(),
        "request": request,
        "responses": {**responses, **errors},
        "parameters": [*(parameters or []),
                       *([IDEMPOTENCY_KEY, RETRY_AFTER, replayed(responses)] if idempotent
                         else [RATE_RETRY_AFTER])],
        "extensions": {"x-integration-level": level},
        "examples": examples or [],
        **kwargs,
    }


def example(name: str, value: dict, *, request: bool = False, status: int = 200, summary: str = ""):
    if request:
        return OpenApiExample(name, value=value, request_only=True, summary=summary or None)
    return OpenApiExample(name, value=value, response_only=True, status_codes=[str(status)],
                          summary=summary or None)


# --- field patterns equal to what the server accepts ------------------------------------------

class DecimalFieldPattern(OpenApiSerializerFieldExtension):
    """A decimal string as the server takes it: no sign unless negatives are allowed, at least
    one digit, and no more whole digits than the field's maximum has (loyalty/bounds.py)."""

    target_class = "rest_framework.fields.DecimalField"

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        if schema.get("type") != "string" or field.decimal_places is None:
            return schema
        whole = field.max_whole_digits
        if field.max_value is not None:
            whole = min(whole, len(str(int(field.max_value)))) if whole is not None else \
                len(str(int(field.max_value)))
        sign = "" if field.min_value is not None and field.min_value >= 0 else "-?"
        digits = rf"\d{{1,{whole}}}" if whole else r"\d+"
        fraction = rf"(?:\.\d{{1,{field.decimal_places}}})?" if field.decimal_places else ""
        schema["pattern"] = f"^{sign}{digits}{fraction}$"
        return schema


class CharFieldPattern(OpenApiSerializerFieldExtension):
    """A request string as the server takes it: no NUL character and, unless blank is
    allowed, something besides spaces (the server trims them before checking)."""

    target_class = "rest_framework.fields.CharField"
    match_subclasses = True  # api_input.TextField, the POS's strings-only CharField

    def map_serializer_field(self, auto_schema, direction):
        field = self.target
        schema = auto_schema._map_serializer_field(field, direction, bypass_extensions=True)
        if direction != "request" or schema.get("type") != "string" or "pattern" in schema:
            return schema
        if field.allow_blank or not field.trim_whitespace:
            schema["pattern"] = r"^[^\x00]*$"
        else:
            schema["pattern"] = r"^[^\x00]*[^\s\x00][^\x00]*$"
        return schema


# --- answers ------------------------------------------------------------------------------------

def _money(**kwargs):
    return serializers.DecimalField(max_digits=12, decimal_places=2, coerce_to_string=True, **kwargs)


class PingResponse(serializers.Serializer):
    company = serializers.CharField()
    key = serializers.CharField(help_text="The key's prefix")
    level = serializers.ChoiceField(choices=[0, 1, 2], help_text="The key's integration level")


class PersonaBrief(serializers.Serializer):
    id = serializers.IntegerField(help_text="The persona id to use from now on (a merged id finds "
                                            "the surviving customer)")
    first_name = serializers.CharField(allow_blank=True)
    last_name = serializers.CharField(allow_blank=True)
    phone = serializers.CharField(allow_blank=True)
    email = serializers.CharField(allow_blank=True)
    is_member = serializers.BooleanField()


class WalletEntry(serializers.Serializer):
    wallet_item_id = serializers.IntegerField()
    offer_id = serializers.IntegerField()
    name = serializers.CharField()
    code = serializers.CharField(help_text="The code the customer shows (their loyalty page, as text and QR)")
    discount = _money(allow_null=True, help_text="The discount on the basket sent; null without one")


class RewardEntry(serializers.Serializer):
    offer_id = serializers.IntegerField()
    wallet_item_id = serializers.IntegerField(allow_null=True)
    name = serializers.CharField()
    points_cost = serializers.IntegerField()
    affordable = serializers.BooleanField()
    discount = _money(allow_null=True, help_text="The discount on the basket sent; null without one")


class PromptEntry(serializers.Serializer):
    id = serializers.IntegerField()
    message = serializers.CharField()
    suggested_sku = serializers.CharField(allow_blank=True)


class ScannedEntry(serializers.Serializer):
    wallet_item_id = serializers.IntegerField()
    offer_id = serializers.IntegerField()
    name = serializers.CharField()
    code = serializers.CharField()
    state = serializers.CharField(help_text="available, used or expired")
    applicable = serializers.BooleanField(
        help_text="False when the item was used, its offer ended or was switched off, or (with a "
                  "basket) it does not apply to that basket; the customer is found all the same")
    reason = serializers.CharField(allow_blank=True, help_text="Why it is not applicable; blank when it is")


class LookupResponse(serializers.Serializer):
    persona = PersonaBrief()
    points_balance = serializers.IntegerField()
    lifetime_points = serializers.IntegerField()
    tier = serializers.CharField(allow_null=True)
    next_tier = serializers.CharField(allow_null=True)
    to_next_tier = serializers.CharField(allow_null=True, help_text="What is left to reach next_tier")
    wallet = WalletEntry(many=True)
    rewards = RewardEntry(many=True)
    prompts = PromptEntry(many=True)
    scanned = ScannedEntry(required=False, help_text="Only for a lookup by wallet_code: that wallet item")


class OfferPurchaseResponse(serializers.Serializer):
    wallet_item_id = serializers.IntegerField()
    offer_id = serializers.IntegerField()
    points_paid = serializers.IntegerField()
    points_balance = serializers.IntegerField()


REDEMPTION_STATES = Redemption.State.values


class RedemptionResponse(serializers.Serializer):
    redemption_id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=REDEMPTION_STATES)
    cart_id = serializers.CharField()
    offer_id = serializers.IntegerField()
    points = serializers.IntegerField()
    discount_amount = _money()
    locked_until = serializers.DateTimeField(allow_null=True)
    points_balance = serializers.IntegerField()


class RedemptionState(serializers.Serializer):
    redemption_id = serializers.IntegerField()
    state = serializers.ChoiceField(choices=REDEMPTION_STATES)


class SendTransactionResponse(serializers.Serializer):
    """A closed or voided sale or return (`recorded: true`), or an open cart (`recorded:
    false`, only `prompts`)."""

    recorded = serializers.BooleanField()
    transaction_id = serializers.CharField(required=False)
    id = serializers.IntegerField(required=False)
    status = serializers.ChoiceField(choices=TransactionStatus.values, required=False)
    points_earned = serializers.IntegerField(required=False, help_text="What this sale earned, net of "
                                                                        "reversals")
    points_balance = serializers.IntegerField(required=False, allow_null=True)
    points_reversed = serializers.IntegerField(
        required=False, help_text="A return under the 'reverse' refund policy: how many of the original "
                                  "sale's points it took back in all; 0 for a sale")
    redemptions = RedemptionState(many=True, required=False)
    prompts = PromptEntry(many=True, required=False)


class BalanceResponse(serializers.Serializer):
    persona_id = serializers.IntegerField()
    points_balance = serializers.IntegerField()
    lifetime_points = serializers.IntegerField()
    points_locked = serializers.IntegerField(help_text="Points held by locks on open carts")
    tier = serializers.CharField(allow_null=True)


class LedgerEntry(serializers.Serializer):
    id = serializers.IntegerField()
    delta = serializers.IntegerField()
    kind = serializers.ChoiceField(choices=PointsKind.values)
    balance_after = serializers.IntegerField()
    transaction_id = serializers.IntegerField(allow_null=True)
    reason = serializers.CharField(allow_blank=True)
    created_at = serializers.DateTimeField()


class LedgerResponse(serializers.Serializer):
    persona_id = serializers.IntegerField()
    points_balance = serializers.IntegerField()
    entries = LedgerEntry(many=True)


def schema_error_component(result, generator, request, public):
    """Postprocessing hook: the one error component every error response refers to."""
    result.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_COMPONENT
    return result

