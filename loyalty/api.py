"""The POS API (/api/pos/v1/): lookup, offers, redeem / reinstate, lock / unlock,
send_transaction, balance and ledger. Thin views: serializers validate, services act."""

from __future__ import annotations

import hashlib
import json
import time
from decimal import Decimal

from django.http import Http404
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import exceptions, serializers, status
from rest_framework.authentication import BaseAuthentication, get_authorization_header
from rest_framework.permissions import BasePermission
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.utils.encoders import JSONEncoder as DrfJSONEncoder
from rest_framework.views import APIView

from stores.api import JSONParser, error_body
from stores.api_usage import api_key_error_record, api_key_request_admit
from stores.errors import DomainError
from stores.metrics import POS_LOOKUP_SECONDS
from stores.models import ApiKey
from stores.requestid import request_id_current
from stores.services import api_key_authenticate

from .api_input import TextField, input_validated
from .api_schema import (
    REFUSED_CODES,
    BalanceResponse,
    LedgerResponse,
    LookupResponse,
    OfferPurchaseResponse,
    PingResponse,
    RedemptionResponse,
    SendTransactionResponse,
    example,
    operation,
)
from .bounds import MONEY_MAX, QUANTITY_MAX, derived_money_check, line_total
from .catalog import catalog_for
from .models import Persona, PointsEntry, Redemption, Tier, WalletItem, wallet_code_clean
from .phone import phone_looks_stored, phone_normalize
from .selectors import persona_get, persona_merged_into, personas_at_counter
from .services import idempotency
from .services.idempotency import idempotency_claim, idempotency_complete, idempotency_release
from .services.offers import offer_is_current
from .services.pos import PosTransaction, pos_transaction_send, return_points_reversed
from .services.redemptions import (
    Basket,
    BasketItem,
    locks_expire,
    offer_discount,
    offer_purchase,
    redemption_apply,
    redemption_reinstate,
    redemption_unlock,
    rewards_usable,
)
from .services.transactions import LineItemData, PaymentData

CENT = Decimal("0.01")
MONEY = {"max_digits": 12, "decimal_places": 2, "min_value": 0, "max_value": MONEY_MAX,
         "coerce_to_string": True}
QUANTITY = {"max_digits": 12, "decimal_places": 3, "min_value": 0, "max_value": QUANTITY_MAX,
            "coerce_to_string": True}


# --- authentication, levels, errors -------------------------------------------------------

class PosClient:
    """Who is calling: a company's POS, through one API key."""

    is_authenticated = True

    def __init__(self, api_key: ApiKey):
        self.api_key = api_key
        self.company = api_key.company

    def __str__(self) -> str:
        return f"POS key {self.api_key.prefix}"


class PosKeyAuthentication(BaseAuthentication):
    """`X-Account-UID: <company account UID>` and `Authorization: Bearer <API key>`."""

    keyword = "Bearer"

    def authenticate(self, request):
        header = get_authorization_header(request).decode("latin-1").split()
        # One documented credential: Authorization: Bearer <key> (no other header is read).
        raw = header[1] if len(header) == 2 and header[0] == self.keyword else ""
        account_uid = request.headers.get("X-Account-UID", "")
        if not raw and not account_uid:
            return None
        key = api_key_authenticate(account_uid=account_uid, raw_key=raw or "")
        if key is None:
            raise exceptions.AuthenticationFailed("Unknown account UID or API key, or the key was revoked.")
        return PosClient(key), key

    def authenticate_header(self, request):
        return self.keyword


class PosKeyAuthenticationScheme(OpenApiAuthenticationExtension):
    """How the API docs describe PosKeyAuthentication: both headers, together."""

    target_class = PosKeyAuthentication
    name = ["apiKey", "accountUid"]

    def get_security_definition(self, auto_schema):
        return [{"type": "http", "scheme": "bearer"},
                {"type": "apiKey", "in": "header", "name": "X-Account-UID"}]


class LevelAtLeast(BasePermission):
    message = "This API key's integration level does not allow this call."

    def has_permission(self, request, view):
        client = request.user
        return isinstance(client, PosClient) and client.api_key.level >= getattr(view, "min_level", 0)


class RateLimited(exceptions.Throttled):
    """429 rate_limited, with Retry-After (DRF's handler sets it from `wait`, whole seconds)."""

    default_code = "rate_limited"

    def __init__(self, *, wait: int, detail: str):
        exceptions.APIException.__init__(self, detail)  # Throttled's would add its own sentence
        self.wait = wait


class PosView(APIView):
    """Errors answer in the shape of stores/api.py (REST_FRAMEWORK's EXCEPTION_HANDLER).
    Every call of a known key is counted and held to the key's rate (stores/api_usage.py)."""

    authentication_classes = [PosKeyAuthentication]
    permission_classes = [LevelAtLeast]
    renderer_classes = [JSONRenderer]  # errors too: never the browsable API's HTML
    parser_classes = [JSONParser]  # JSON bodies only: a form is a 415, and the schema says so
    min_level = 1
    pos_key: ApiKey | None = None
    rate_limited = False

    def perform_authentication(self, request):
        super().perform_authentication(request)
        client = request.user
        if not isinstance(client, PosClient):
            return
        key = self.pos_key = client.api_key
        wait = api_key_request_admit(api_key=key, method=request.method, path=request.path,
                                     request_id=request_id_current())
        if wait is not None:
            self.rate_limited = True  # its error is counted with the request
            raise RateLimited(wait=wait, detail=f"This API key may make {key.rate_per_second:,} "
                                                f"request{'s' if key.rate_per_second != 1 else ''} a second "
                                                f"(bursts of {key.burst:,}); retry after {wait} s.")

    def finalize_response(self, request, response, *args, **kwargs):
        response = super().finalize_response(request, response, *args, **kwargs)
        if response.status_code >= 400 and self.pos_key is not None and not self.rate_limited:
            data = response.data if isinstance(getattr(response, "data", None), dict) else {}
            api_key_error_record(api_key=self.pos_key, status=response.status_code,
                                 code=str(data.get("code", "")), method=request.method, path=request.path,
                                 request_id=request_id_current())
        return response

    @property
    def company(self):
        return self.request.user.company

    def valid(self, serializer_class):
        return input_validated(serializer_class, self.request.data)



class PosActionView(PosView):
    """A POST endpoint: `handle` does the work."""

    def handle(self, request):
        raise NotImplementedError

    def post(self, request, *args, **kwargs):
        """Every POST honours Idempotency-Key. The key is reserved before the work starts:
        the same key and request replay the first answer (refusals included), waiting up to
        5 s for a first request still running (then 409 idempotency_in_progress); the same
        key with another path or body is a 409 idempotency_key_reused; a 5xx frees the key."""
        key = request.headers.get("Idempotency-Key", "").strip()
        if not key:
            return self.handle(request, *args, **kwargs)
        if len(key) > 200:
            raise DomainError("Idempotency-Key: at most 200 characters.", extra={"field": "Idempotency-Key"})
        body_hash = hashlib.sha256(json.dumps(request.data, sort_keys=True, default=str).encode()).hexdigest()
        claim = idempotency_claim(company=self.company, api_key=request.user.api_key, key=key,
                                  method_path=f"{request.method} {request.path}", request_hash=body_hash)
        if claim.outcome == idempotency.REUSED:
            return Response(error_body(code="idempotency_key_reused",
                                       detail="This Idempotency-Key was used with a different request.",
                                       field="Idempotency-Key"), status=status.HTTP_409_CONFLICT)
        if claim.outcome == idempotency.IN_PROGRESS:
            return Response(error_body(code="idempotency_in_progress",
                                       detail="A request with this Idempotency-Key is still running; "
                                              "retry soon.",
                                       field="Idempotency-Key"),
                            status=status.HTTP_409_CONFLICT, headers={"Retry-After": "1"})
        if claim.outcome == idempotency.COMPLETED:
            replay = Response(claim.record.response_body, status=claim.record.response_status)
            replay["Idempotent-Replayed"] = "true"
            return replay
        try:
            try:
                response = self.handle(request, *args, **kwargs)
            except Exception as exc:
                response = self.handle_exception(exc)  # a refusal is an answer too; re-raises the rest
        except BaseException:
            idempotency_release(record=claim.record)
            raise
        if response.status_code >= 500:
            idempotency_release(record=claim.record)
            return response
        # Stored as the client reads it (DRF's encoder: decimals, dates as the renderer writes them).
        body = json.loads(json.dumps(response.data, cls=DrfJSONEncoder))
        idempotency_complete(record=claim.record, status=response.status_code, body=body)
        return response


# --- serializers --------------------------------------------------------------------------

class BasketItemSerializer(serializers.Serializer):
    line_id = TextField(required=False, allow_blank=True, max_length=100)
    sku = TextField(required=False, allow_blank=True, max_length=100, default="")
    product = TextField(required=False, allow_blank=True, max_length=300, default="")
    brand = TextField(required=False, allow_blank=True, max_length=200, default="")
    category = TextField(required=False, allow_blank=True, max_length=200, default="")
    quantity = serializers.DecimalField(**QUANTITY)
    unit_price = serializers.DecimalField(**MONEY)
    subtotal = serializers.DecimalField(**MONEY, required=False)
    tax_included = serializers.DecimalField(**MONEY, required=False, default=0)


class BasketSerializer(serializers.Serializer):
    store_id = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    items = BasketItemSerializer(many=True, max_length=500)
    subtotal = serializers.DecimalField(**MONEY, required=False)
    tax_total = serializers.DecimalField(**MONEY, required=False, default=0)


def basket_from(data: dict | None) -> Basket | None:
    if data is None:
        return None
    # What a discount is computed from must fit the redemption's amount column too.
    lines = Decimal("0")
    for n, item in enumerate(data["items"]):
        lines += (item["subtotal"] if item.get("subtotal") is not None
                  else line_total(item["quantity"], item["unit_price"], field=f"basket.items[{n}].quantity"))
    pre_tax = data["subtotal"] if data.get("subtotal") is not None else lines
    derived_money_check(pre_tax + (data.get("tax_total") or 0), field="basket.tax_total",
                        what="the basket's subtotal + tax_total")
    return Basket(
        items=[BasketItem(sku=i.get("sku", ""), product=i.get("product", ""), brand=i.get("brand", ""),
                          category=i.get("category", ""), quantity=i["quantity"], unit_price=i["unit_price"],
                          subtotal=i.get("subtotal"), tax_included=i.get("tax_included") or 0)
               for i in data["items"]],
        subtotal=data.get("subtotal"), tax_total=data.get("tax_total") or 0, store_id=data.get("store_id"))


LOOKUP_BY = ("phone", "email", "persona_id", "external_id", "wallet_code")


class LookupSerializer(serializers.Serializer):
    phone = TextField(required=False, max_length=40)
    email = serializers.EmailField(required=False, max_length=254)
    persona_id = serializers.IntegerField(
        required=False, min_value=1, max_value=2**62,
        help_text="A persona id. The id of a persona since merged into another finds that one; "
                  "the answer's persona.id is the id to use from then on.")
    external_id = TextField(required=False, max_length=200)
    wallet_code = TextField(
        required=False, max_length=40,
        help_text="The code of a wallet item, as the customer's loyalty page shows it (8 characters, "
                  "in its QR code too; case, spaces and dashes ignored). The answer's `scanned` is that "
                  "item: `applicable` false when it was used, has expired or does not fit the basket.")
    basket = BasketSerializer(required=False)

    def validate(self, attrs):
        given = [k for k in LOOKUP_BY if attrs.get(k) not in (None, "")]
        if len(given) != 1:
            raise serializers.ValidationError(
                {"non_field_errors": [f"Send exactly one of {', '.join(LOOKUP_BY)}."]})
        return attrs


class PurchaseSerializer(serializers.Serializer):
    persona_id = serializers.IntegerField(min_value=1, max_value=2**62)
    offer_id = serializers.IntegerField(min_value=1, max_value=2**62)


class ApplySerializer(serializers.Serializer):
    persona_id = serializers.IntegerField(min_value=1, max_value=2**62)
    cart_id = TextField(max_length=200)
    offer_id = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    wallet_item_id = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    basket = BasketSerializer()

    def validate(self, attrs):
        if ("offer_id" in attrs) == ("wallet_item_id" in attrs):
            raise serializers.ValidationError({"offer_id": ["Send either offer_id or wallet_item_id."]})
        return attrs


class ReleaseSerializer(serializers.Serializer):
    redemption_id = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    cart_id = TextField(max_length=200, required=False)

    def validate(self, attrs):
        if not attrs.get("redemption_id") and not attrs.get("cart_id"):
            raise serializers.ValidationError({"redemption_id": ["Send redemption_id or cart_id."]})
        return attrs


class PaymentSerializer(serializers.Serializer):
    method = TextField(max_length=60)
    amount = serializers.DecimalField(**MONEY)


class DiscountSerializer(serializers.Serializer):
    redemption_id = serializers.IntegerField(min_value=1, max_value=2**62, required=False)
    amount = serializers.DecimalField(**MONEY)
    description = TextField(required=False, allow_blank=True, max_length=200)


class TransactionItemSerializer(BasketItemSerializer):
    product = TextField(max_length=300)


class SendTransactionSerializer(serializers.Serializer):
    transaction_id = TextField(max_length=150)
    store_id = serializers.IntegerField(min_value=1, max_value=2**62)
    persona_id = serializers.IntegerField(min_value=1, max_value=2**62, required=False, allow_null=True)
    channel = serializers.ChoiceField(choices=["in_store", "online", "phone"], default="in_store")
    fulfillment = serializers.ChoiceField(choices=["in_store", "pickup", "delivery"], default="in_store")
    status = serializers.ChoiceField(choices=["open", "closed", "voided"], default="closed")
    employee = TextField(max_length=200, required=False, allow_blank=True, default="")
    opened_at = serializers.DateTimeField(required=False)
    modified_at = serializers.DateTimeField(required=False)
    subtotal = serializers.DecimalField(**MONEY)
    tax_total = serializers.DecimalField(**MONEY, required=False, default=0)
    items = TransactionItemSerializer(many=True, max_length=500)
    payments = PaymentSerializer(many=True, required=False, default=list, max_length=50)
    discounts = DiscountSerializer(many=True, required=False, default=list, max_length=20)
    original_transaction_id = TextField(
        max_length=150, required=False, allow_blank=True, default="",
        help_text="A return: the transaction_id of the sale it returns (same store). Send the "
                  "returned items and their subtotal (a partial return sends only what came back); "
                  "under the 'reverse' refund policy it takes back the original's points in "
                  "proportion, answered as points_reversed. Sent again with the same transaction_id "
                  "and another amount, the reversal follows the new amount.")


# --- responses ------------------------------------------------------------------------------

def _masked(persona: Persona) -> dict:
    phone = persona.phone[-4:] if persona.phone else ""
    email = persona.email
    if "@" in email:
        name, domain = email.split("@", 1)
        email = f"{name[:1]}***@{domain}"
    return {"id": persona.pk, "name": f"{persona.first_name[:1]}. {persona.last_name[:1]}.".strip(),
            "phone_last4": phone, "email": email}


def _persona_body(persona: Persona, basket: Basket | None, company) -> dict:
    from .services.program import tier_progress
    from .services.prompts import prompts_firing

    catalog = catalog_for(company)
    current, upcoming, to_next = tier_progress(persona, tiers=catalog.tiers)
    rewards = rewards_usable(company=company, persona=persona, basket=basket, catalog=catalog)
    prompts = prompts_firing(company=company, persona=persona, prompts=catalog.prompts, basket=[
        {"sku": i.sku, "product": i.product, "brand": i.brand, "category": i.category,
         "quantity": i.quantity, "unit_price": i.unit_price} for i in (basket.items if basket else [])])
    return {
        "persona": {"id": persona.pk, "first_name": persona.first_name, "last_name": persona.last_name,
                    "phone": persona.phone, "email": persona.email, "is_member": persona.is_member},
        "points_balance": persona.points_balance,
        "lifetime_points": persona.lifetime_points,
        "tier": current.name if current else None,
        "next_tier": upcoming.name if upcoming else None,
        "to_next_tier": str(to_next) if to_next is not None else None,
        "wallet": [{"wallet_item_id": r.wallet_item.pk, "offer_id": r.offer.pk, "name": r.offer.name,
                    "code": r.wallet_item.code, "discount": str(r.discount) if basket else None}
                   for r in rewards if r.wallet_item is not None],
        "rewards": [{"offer_id": r.offer.pk, "wallet_item_id": r.wallet_item.pk if r.wallet_item else None,
                     "name": r.offer.name, "points_cost": r.points, "affordable": r.affordable,
                     "discount": str(r.discount) if basket else None}
                    for r in rewards],
        "prompts": [{"id": p.pk, "message": p.message, "suggested_sku": p.suggested_sku} for p in prompts],
    }


def _scanned_body(company, persona: Persona, code: str, basket: Basket | None) -> dict:
    """The wallet item whose code was scanned: usable now (and on the basket sent), or why not."""
    item = WalletItem.objects.select_related("offer").get(company=company, persona=persona, code=code)
    offer = next((o for o in catalog_for(company).offers if o.pk == item.offer_id), None)
    if item.state != WalletItem.State.AVAILABLE:
        applicable, reason = False, f"This reward was already {item.get_state_display().lower()}."
    elif offer is None or not offer_is_current(offer):
        applicable, reason = False, "This reward has expired or is no longer offered."
    else:
        discount = offer_discount(offer=offer, program=catalog_for(company).program,
                                  basket=basket or Basket(), persona=persona)
        applicable = basket is None or discount is not None
        reason = "" if applicable else "This reward does not apply to this basket."
    return {"wallet_item_id": item.pk, "offer_id": item.offer_id, "name": item.offer.name, "code": item.code,
            "state": item.state, "applicable": applicable, "reason": reason}


def _redemption_body(redemption: Redemption, persona: Persona | None = None) -> dict:
    persona = persona or Persona.objects.get(pk=redemption.persona_id)
    return {"redemption_id": redemption.pk, "state": redemption.state, "cart_id": redemption.cart_id,
            "offer_id": redemption.offer_id, "points": redemption.points,
            "discount_amount": str(redemption.discount_amount),
            "locked_until": redemption.locked_until.isoformat() if redemption.locked_until else None,
            "points_balance": persona.points_balance}


class LookupTimed:
    """The POS's lookups (a customer by phone/email/id, a balance, a ledger) in their own
    latency histogram: the counter waits on these. `lookup_endpoint` is its label."""

    lookup_endpoint = ""

    def dispatch(self, request, *args, **kwargs):
        started = time.perf_counter()
        status_code = 500
        try:
            response = super().dispatch(request, *args, **kwargs)
            status_code = response.status_code
            return response
        finally:
            POS_LOOKUP_SECONDS.labels(self.lookup_endpoint, str(status_code)).observe(
                time.perf_counter() - started)


# --- schema examples and shared operations --------------------------------------------------

PERSONA_ID = OpenApiParameter("persona_id", {"type": "integer", "minimum": 0}, OpenApiParameter.PATH,
                              description="The customer's persona id (digits only; anything else is a 404)")

BASKET_EXAMPLE = {"store_id": 1, "tax_total": "6.75", "items": [
    {"line_id": "1", "sku": "FLO-1", "product": "Blue Dream 3.5g", "brand": "Green Dot", "category": "Flower",
     "quantity": "1", "unit_price": "45.00"}]}
LOOKUP_REQUEST = {"phone": "(720) 902-6752", "basket": BASKET_EXAMPLE}
LOOKUP_BY_CODE_REQUEST = {"wallet_code": "7KQ4-MZ2P", "basket": BASKET_EXAMPLE}
LOOKUP_ANSWER = {
    "persona": {"id": 123, "first_name": "Dana", "last_name": "Reyes", "phone": "+17209026752",
                "email": "dana@example.com", "is_member": True},
    "points_balance": 250, "lifetime_points": 900, "tier": "Gold", "next_tier": "Platinum",
    "to_next_tier": "100", "wallet": [],
    "rewards": [{"offer_id": 7, "wallet_item_id": None, "name": "$10 off", "points_cost": 100,
                 "affordable": True, "discount": "10.00"}],
    "prompts": [{"id": 3, "message": "Ask about the pre-roll of the week", "suggested_sku": "PR-1"}]}
APPLY_REQUEST = {"persona_id": 123, "cart_id": "T-1001", "offer_id": 7, "basket": BASKET_EXAMPLE}
SALE_REQUEST = {"transaction_id": "T-1001", "store_id": 1, "persona_id": 123, "subtotal": "45.00",
                "tax_total": "6.75", "payments": [{"method": "cash", "amount": "41.75"}],
                "items": [{"sku": "FLO-1", "product": "Blue Dream 3.5g", "quantity": "1",
                           "unit_price": "45.00"}],
                "discounts": [{"redemption_id": 31, "amount": "10.00"}]}
RETURN_REQUEST = {"transaction_id": "T-1001-R", "store_id": 1, "persona_id": 123,
                  "original_transaction_id": "T-1001", "subtotal": "22.50", "tax_total": "3.38",
                  "items": [{"sku": "PR-1", "product": "Pre-roll 1g", "quantity": "1",
                             "unit_price": "22.50"}],
                  "payments": [{"method": "cash", "amount": "25.88"}]}


def _apply_operation(summary: str, *, state: str) -> dict:
    return operation(
        level=1, idempotent=True, body=True, request=ApplySerializer, summary=summary,
        description="Send offer_id (points are spent now) or wallet_item_id (already paid for). One "
                    "loyalty discount per cart_id.",
        responses={201: RedemptionResponse}, invalid=["out_of_range"], not_found=["not_found"],
        conflict=[*REFUSED_CODES, "wallet_item_used", "one_discount_per_order", "offer_not_applicable"],
        examples=[
            example("Apply an offer", APPLY_REQUEST, request=True),
            example("Applied", {"redemption_id": 31, "state": state, "cart_id": "T-1001", "offer_id": 7,
                                "points": 100, "discount_amount": "10.00",
                                "locked_until": "2026-12-04T17:31:25+00:00" if state == "locked" else None,
                                "points_balance": 150}, status=201),
        ])


def _release_operation(summary: str, *, state: str) -> dict:
    return operation(
        level=1, idempotent=True, body=True, request=ReleaseSerializer, summary=summary,
        description="Send redemption_id, or cart_id for the cart's loyalty discount.",
        responses={200: RedemptionResponse}, not_found=["not_found"], conflict=["wrong_state"],
        examples=[
            example("By cart", {"cart_id": "T-1001"}, request=True),
            example("Released", {"redemption_id": 31, "state": state, "cart_id": "T-1001", "offer_id": 7,
                                 "points": 100, "discount_amount": "10.00", "locked_until": None,
                                 "points_balance": 250}),
        ])


# --- views ----------------------------------------------------------------------------------

class PingView(PosView):
    min_level = 0

    @extend_schema(**operation(
        level=0, summary="Check the credentials: which company and key level",
        responses={200: PingResponse},
        examples=[example("Ping", {"company": "Green Leaf", "key": "lk_3f9a", "level": 1})]))
    def get(self, request):
        key = request.user.api_key
        return Response({"company": self.company.name, "key": key.prefix, "level": key.level})


class LookupView(LookupTimed, PosActionView):
    lookup_endpoint = "lookup"

    @extend_schema(**operation(
        level=1, idempotent=True, body=True, request=LookupSerializer,
        summary="Find a customer; with a basket, the rewards and prompts for it",
        description="Send exactly one of phone, email, persona_id, external_id, wallet_code. With a "
                    "basket, each reward's `discount` is what it takes off that basket. By `wallet_code` "
                    "(the code or QR on the customer's loyalty page): the customer holding that item, "
                    "with the item in `scanned`; a used or expired item still finds the customer, with "
                    "`scanned.applicable` false; another company's code is a 404 `not_found`.",
        responses={200: LookupResponse}, invalid=["out_of_range"], not_found=["not_found"],
        conflict=["several_matches"],
        examples=[
            example("By phone, with a basket", LOOKUP_REQUEST, request=True),
            example("By wallet code, with a basket", LOOKUP_BY_CODE_REQUEST, request=True),
            example("A member", LOOKUP_ANSWER),
        ]))
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def handle(self, request):
        data = self.valid(LookupSerializer)
        by = next(k for k in LOOKUP_BY if data.get(k) not in (None, ""))
        value = data[by]
        if by in ("phone", "email", "external_id"):
            value = value.strip()
        if by == "wallet_code":
            value = wallet_code_clean(value)
        # Per-customer limits need each offer's times held, tiers on spend the last 12
        # months' spend; most programs have neither.
        catalog = catalog_for(self.company)
        extras = {"with_offers_held": any(o.limit_per_persona is not None for o in catalog.offers),
                  "with_spend_12m": any(t.threshold_kind == Tier.Threshold.SPEND_12M for t in catalog.tiers)}
        # A phone sent as stored (E.164) is looked up as it is; it is parsed only when nobody
        # has it, to tell a mistyped number from an unknown one.
        matches = [] if by == "phone" and not phone_looks_stored(value) else personas_at_counter(
            company=self.company, by=by, value=value, **extras)
        if by == "phone" and not matches:
            try:
                normalized = phone_normalize(value, country=self.company.country or "US")
            except DomainError as exc:
                raise DomainError(exc.message, code="invalid", extra={"field": "phone"}) from None
            if normalized != value:
                matches = personas_at_counter(company=self.company, by=by, value=normalized, **extras)
        if by == "persona_id" and not matches:
            # A card or link from before a merge still finds the customer.
            survivor_id = persona_merged_into(company=self.company, persona_id=value)
            if survivor_id is not None:
                matches = personas_at_counter(company=self.company, by=by, value=survivor_id, **extras)
        if not matches:
            raise Http404("No customer matches.")
        if len(matches) > 1:
            return Response(error_body(
                code="several_matches",
                detail="Several customers match; ask for another detail or use persona_id.", field=by,
                extra={"candidates": [_masked(p) for p in matches[:5]]}), status=409)
        persona = matches[0]
        if persona.has_overdue_lock and locks_expire(company=self.company, persona_id=persona.pk):
            persona = personas_at_counter(company=self.company, by="persona_id", value=persona.pk,
                                          **extras)[0]
        basket = basket_from(data.get("basket"))
        body = _persona_body(persona, basket, self.company)
        if by == "wallet_code":
            body["scanned"] = _scanned_body(self.company, persona, value, basket)
        return Response(body)


class OfferPurchaseView(PosActionView):
    @extend_schema(**operation(
        level=1, idempotent=True, body=True, request=PurchaseSerializer,
        summary="Spend points to put an offer in the customer's wallet",
        responses={201: OfferPurchaseResponse}, invalid=["points_out_of_range"], not_found=["not_found"],
        conflict=REFUSED_CODES + ["offer_tier"],
        examples=[
            example("Buy an offer", {"persona_id": 123, "offer_id": 7}, request=True),
            example("In the wallet", {"wallet_item_id": 55, "offer_id": 7, "points_paid": 100,
                                      "points_balance": 150}, status=201),
        ]))
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def handle(self, request):
        data = self.valid(PurchaseSerializer)
        item = offer_purchase(company=self.company, persona_id=data["persona_id"], offer_id=data["offer_id"])
        persona = Persona.objects.get(pk=item.persona_id)
        return Response({"wallet_item_id": item.pk, "offer_id": item.offer_id,
                         "points_paid": item.points_paid, "points_balance": persona.points_balance},
                        status=201)


class ApplyView(PosActionView):
    lock = False

    def handle(self, request):
        data = self.valid(ApplySerializer)
        redemption = redemption_apply(
            company=self.company, persona_id=data["persona_id"], cart_id=data["cart_id"],
            basket=basket_from(data["basket"]), offer_id=data.get("offer_id"),
            wallet_item_id=data.get("wallet_item_id"), lock=self.lock)
        return Response(_redemption_body(redemption), status=201)


class RedeemView(ApplyView):
    @extend_schema(**_apply_operation(
        "Apply a reward to an open cart now; its points are deducted at once", state="redeemed"))
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class LockView(ApplyView):
    lock = True

    @extend_schema(**_apply_operation(
        "Hold a reward's points on a cart for the lock time; again after a cart change", state="locked"))
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


class ReinstateView(PosActionView):
    release = staticmethod(redemption_reinstate)

    @extend_schema(**_release_operation("Take a redeemed discount off the cart: the points come back",
                                        state="reinstated"))
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def handle(self, request):
        data = self.valid(ReleaseSerializer)
        redemption = self.release(company=self.company, redemption_id=data.get("redemption_id"),
                                  cart_id=data.get("cart_id"))
        return Response(_redemption_body(redemption))


class UnlockView(ReinstateView):
    release = staticmethod(redemption_unlock)

    @extend_schema(**_release_operation("Release a lock: the points come back", state="unlocked"))
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)


def _sale_numbers_check(data: dict) -> Decimal:
    """Each field fits its column (the serializer); here, what is computed from them must
    too: each line's quantity × unit price, the discounts' sum, and the sale's total.
    Returns the discount total."""
    for n, item in enumerate(data["items"]):
        if item.get("subtotal") is None:
            line_total(item["quantity"], item["unit_price"], field=f"items[{n}].quantity")
    discount_total = derived_money_check(sum((d["amount"] for d in data["discounts"]), Decimal("0")),
                                         field="discounts", what="the sum of the discounts")
    derived_money_check(max(Decimal("0"), data["subtotal"] - discount_total) + data["tax_total"],
                        field="tax_total", what="subtotal − discounts + tax_total")
    return discount_total


class SendTransactionView(PosActionView):
    min_level = 0

    @extend_schema(**operation(
        level=0, idempotent=True, body=True, request=SendTransactionSerializer,
        summary="Send a closed or voided transaction (or an open cart, for its prompts)",
        description="201 records a new transaction, 200 updates one sent before (same store and "
                    "transaction_id). A return is a transaction of its own with "
                    "`original_transaction_id` set to the sale it returns and only the items that "
                    "came back (a partial return sends part of them); its `points_reversed` is what "
                    "it took back of the sale's points. An open cart (`status: open`) records "
                    "nothing and answers its prompts.",
        responses={201: SendTransactionResponse, 200: SendTransactionResponse},
        invalid=["invalid_transaction", "out_of_range", "points_out_of_range"], not_found=["not_found"],
        conflict=["redemption_released"],
        examples=[
            example("A sale with a locked reward", SALE_REQUEST, request=True),
            example("A partial return", RETURN_REQUEST, request=True,
                    summary="One of the sale's two items came back"),
            example("Recorded", {"recorded": True, "transaction_id": "T-1001", "id": 9001,
                                 "status": "completed", "points_earned": 45, "points_balance": 195,
                                 "points_reversed": 0,
                                 "redemptions": [{"redemption_id": 31, "state": "redeemed"}]}, status=201),
            example("Sent again: updated", {"recorded": True, "transaction_id": "T-1001", "id": 9001,
                                            "status": "completed", "points_earned": 45,
                                            "points_balance": 195, "points_reversed": 0,
                                            "redemptions": [{"redemption_id": 31, "state": "redeemed"}]},
                    status=200),
            example("The return recorded", {"recorded": True, "transaction_id": "T-1001-R", "id": 9002,
                                            "status": "refunded", "points_earned": -22,
                                            "points_balance": 173, "points_reversed": 22,
                                            "redemptions": []}, status=201),
        ]))
    def post(self, request, *args, **kwargs):
        return super().post(request, *args, **kwargs)

    def handle(self, request):
        data = self.valid(SendTransactionSerializer)
        discount_total = _sale_numbers_check(data)
        items = [LineItemData(product=i["product"], quantity=i["quantity"], unit_price=i["unit_price"],
                              total=i["subtotal"] if i.get("subtotal") is not None
                              else line_total(i["quantity"], i["unit_price"], field=f"items[{n}].quantity"),
                              sku=i.get("sku", ""), brand=i.get("brand", ""), category=i.get("category", ""),
                              tax=i.get("tax_included") or 0) for n, i in enumerate(data["items"])]
        if data["status"] == "open":  # nothing is recorded for an open cart: prompts only
            persona = (Persona.objects.filter(company=self.company, pk=data.get("persona_id")).first()
                       if data.get("persona_id") else None)
            from .services.prompts import prompts_firing

            prompts = prompts_firing(company=self.company, persona=persona,
                                     prompts=catalog_for(self.company).prompts, basket=[
                {"sku": i.sku, "product": i.product, "brand": i.brand, "category": i.category,
                 "quantity": i.quantity, "unit_price": i.unit_price} for i in items])
            return Response({"recorded": False, "prompts": [
                {"id": p.pk, "message": p.message, "suggested_sku": p.suggested_sku} for p in prompts]})
        txn, created = pos_transaction_send(company=self.company, data=PosTransaction(
            transaction_id=data["transaction_id"], store_id=data["store_id"], subtotal=data["subtotal"],
            tax_total=data["tax_total"], status=data["status"], persona_id=data.get("persona_id"),
            channel=data["channel"], fulfillment=data["fulfillment"], employee=data["employee"],
            opened_at=data.get("opened_at"), modified_at=data.get("modified_at"), items=items,
            payments=[PaymentData(method=p["method"], amount=p["amount"]) for p in data["payments"]],
            redemption_ids=[d["redemption_id"] for d in data["discounts"] if d.get("redemption_id")],
            discount_total=discount_total,
            original_transaction_id=data["original_transaction_id"]))
        earned = sum(txn.points_entries.filter(kind__in=("earn", "reverse")).values_list("delta", flat=True))
        persona = Persona.objects.filter(pk=txn.persona_id).first()
        return Response({"recorded": True, "transaction_id": data["transaction_id"], "id": txn.pk,
                         "status": txn.status, "points_earned": earned,
                         "points_balance": persona.points_balance if persona else None,
                         "points_reversed": (return_points_reversed(txn)
                                             if data["original_transaction_id"] else 0),
                         "redemptions": [{"redemption_id": r.pk, "state": r.state}
                                         for r in txn.redemptions.all()]},
                        status=201 if created else 200)


class PersonaBalanceView(LookupTimed, PosView):
    lookup_endpoint = "balance"

    @extend_schema(**operation(
        level=1, summary="A customer's points balance", responses={200: BalanceResponse},
        parameters=[PERSONA_ID],
        not_found=["not_found"],
        examples=[example("Balance", {"persona_id": 123, "points_balance": 250, "lifetime_points": 900,
                                      "points_locked": 100, "tier": "Gold"})]))
    def get(self, request, persona_id: int):
        persona = persona_get(company=self.company, persona_id=persona_id)
        if locks_expire(company=self.company, persona_id=persona.pk):
            persona.refresh_from_db()
        held = sum(Redemption.objects.filter(persona=persona, state=Redemption.State.LOCKED)
                   .values_list("points", flat=True))
        return Response({"persona_id": persona.pk, "points_balance": persona.points_balance,
                         "lifetime_points": persona.lifetime_points, "points_locked": held,
                         "tier": persona.tier or None})


class PersonaLedgerView(LookupTimed, PosView):
    lookup_endpoint = "ledger"

    @extend_schema(**operation(
        level=1, summary="A customer's latest points ledger entries", responses={200: LedgerResponse},
        parameters=[PERSONA_ID, OpenApiParameter("limit", int, description="At most 200; default 50")],
        invalid=["invalid"], not_found=["not_found"],
        examples=[example("Ledger", {"persona_id": 123, "points_balance": 250, "entries": [
            {"id": 77, "delta": 45, "kind": "earn", "balance_after": 250, "transaction_id": 9001,
             "reason": "", "created_at": "2026-12-04T17:16:25.298000+00:00"}]})]))
    def get(self, request, persona_id: int):
        persona = persona_get(company=self.company, persona_id=persona_id)
        try:
            limit = max(1, min(200, int(request.query_params.get("limit", 50))))
        except ValueError:
            raise DomainError("limit: a whole number.", code="invalid", extra={"field": "limit"}) from None
        entries = PointsEntry.objects.filter(persona=persona).order_by("-created_at", "-id")[:limit]
        return Response({"persona_id": persona.pk, "points_balance": persona.points_balance, "entries": [
            {"id": e.pk, "delta": e.delta, "kind": e.kind, "balance_after": e.balance_after,
             "transaction_id": e.transaction_id, "reason": e.reason, "created_at": e.created_at.isoformat()}
            for e in entries]})

