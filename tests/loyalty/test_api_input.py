"""The POS API's quick body check accepts only what its serializer accepts, with the same
values, and a register's usual body takes the quick path.

Random bodies, from well-formed to nonsense, go through both: whenever the quick check
vouches for a body, the serializer must find it valid and produce exactly the same data
(Decimals compared by their digits, so 1.0 and 1.00 differ)."""

from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from audiences.api import AudienceUpdateSerializer
from loyalty import api_input
from loyalty.api import (
    ApplySerializer,
    LookupSerializer,
    PurchaseSerializer,
    ReleaseSerializer,
)

# Those whose bodies the quick check can vouch for (the audience rules are JSON: always
# the serializer's).
SERIALIZERS = [LookupSerializer, ApplySerializer, PurchaseSerializer, ReleaseSerializer,
               AudienceUpdateSerializer]

BASKET = [
    {"sku": "FLO-1", "product": "Blue Dream 3.5g", "brand": "Green Dot Labs", "category": "Flower",
     "quantity": "1", "unit_price": "35.00"},
    {"sku": "VAP-2", "product": "Elite Cartridge 1g", "brand": "Select", "category": "Vapes",
     "quantity": 2, "unit_price": 48.5, "tax_included": "0.10"},
]


def comparable(value):
    """Decimals by their exact digits, containers element by element."""
    if isinstance(value, Decimal):
        return ("decimal", str(value))
    if isinstance(value, dict):
        return {k: comparable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [comparable(v) for v in value]
    return (type(value).__name__, value)


def by_serializer(serializer_class, data):
    serializer = serializer_class(data=data)
    return serializer.validated_data if serializer.is_valid() else None


def quick(serializer_class, data):
    checker = api_input._serializer_checker(serializer_class())
    return checker(data)


# --- random bodies shaped by the serializer's own fields ------------------------------------

numbers_as_text = st.from_regex(r"\s?-?0{0,2}\d{0,14}(\.\d{0,5})?(e-?\d)?\s?", fullmatch=True)
junk = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-10, max_value=2**63),
    st.floats(allow_nan=True, allow_infinity=True), numbers_as_text,
    st.text(max_size=8), st.text(alphabet=" \t\x00\ud800abc", max_size=4),
    st.just(""), st.just("   "), st.lists(st.integers(), max_size=2), st.just({}),
)


def valid(field):
    """Values the field accepts, in the forms a POS sends them."""
    if isinstance(field, serializers.ChoiceField):
        return st.sampled_from(list(field.choice_strings_to_values))
    if isinstance(field, serializers.CharField):
        return st.text(alphabet="abcXYZ 09-é", min_size=1, max_size=min(field.max_length or 20, 20))
    if isinstance(field, serializers.IntegerField):
        return st.integers(min_value=field.min_value or 0, max_value=10**6)
    if isinstance(field, serializers.DecimalField):
        amounts = st.decimals(min_value=0, max_value=10**6, places=field.decimal_places)
        return st.one_of(amounts.map(lambda d: f"{d:f}"), amounts.map(float),
                         st.integers(min_value=0, max_value=999))
    return junk


def edges(field):
    """Values at and past the field's limits."""
    if isinstance(field, serializers.ChoiceField):
        return st.sampled_from(["other", "", " in_store"])
    if isinstance(field, serializers.CharField):
        limit = field.max_length or 30
        return st.sampled_from(["x" * limit, "x" * (limit + 1), " padded ", "", "  ", "a\x00b", "\ud800"])
    if isinstance(field, serializers.IntegerField):
        limits = [v for v in (field.min_value, field.max_value) if v is not None]
        return st.sampled_from([v + d for v in limits for d in (-1, 0, 1)] + ["12", 1.0, True])
    if isinstance(field, serializers.DecimalField):
        places, whole = field.decimal_places, field.max_digits - field.decimal_places
        return st.one_of(numbers_as_text, st.floats(), st.sampled_from([
            "0", "0.00", "-0.00", "-1", "35.10", "1e2", " 12.5 ", "1." + "5" * (places + 1),
            "9" * whole + "." + "9" * places, "9" * (whole + 1), "0" * (whole + 1) + ".5"]))
    return junk


def typical(field, noisy=True):
    # Noisy bodies are still mostly well-formed, so that one odd value decides.
    return st.one_of(*[valid(field)] * 10, edges(field), edges(field), junk) if noisy else valid(field)


def body_for(serializer, depth=0, noisy=True):
    required, optional = {}, {}
    for name, field in serializer.fields.items():
        if field.read_only:
            continue
        if isinstance(field, serializers.ListSerializer):
            value = st.lists(body_for(field.child, depth + 1, noisy), max_size=2) if depth < 2 else junk
        elif isinstance(field, serializers.Serializer):
            value = body_for(field, depth + 1, noisy) if depth < 2 else junk
        else:
            value = typical(field, noisy)
        (required if field.required else optional)[name] = value
    return st.fixed_dictionaries(required, optional=optional).flatmap(
        lambda body: st.sampled_from([body] * 8 + [[body], None]) if depth == 0 else st.just(body))


# Bodies whose validate() wants exactly one of some optional keys, which random optional
# keys rarely give.
ONE_OF = {LookupSerializer: ["phone", "persona_id", "external_id"],
          ApplySerializer: ["offer_id", "wallet_item_id"]}


def bodies(serializer_class):
    """Half with every value well-formed, half with odd values anywhere."""
    serializer = serializer_class()
    general = st.booleans().flatmap(lambda noisy: body_for(serializer, noisy=noisy))
    if serializer_class not in ONE_OF:
        return general
    names = ONE_OF[serializer_class]
    targeted = st.tuples(general, st.sampled_from(names)).flatmap(
        lambda pair: typical(serializer.fields[pair[1]]).map(
            lambda value: {**{k: v for k, v in pair[0].items() if k not in names}, pair[1]: value}
            if isinstance(pair[0], dict) else pair[0]))
    return st.one_of(general, targeted, targeted)


@pytest.mark.parametrize("serializer_class", SERIALIZERS, ids=lambda c: c.__name__)
def test_the_quick_check_only_vouches_for_what_the_serializer_accepts(serializer_class):
    vouched = []

    @settings(max_examples=400, deadline=None, suppress_health_check=list(HealthCheck))
    @given(bodies(serializer_class))
    def run(data):
        fast = quick(serializer_class, data)
        if fast is api_input._UNSURE:
            return
        vouched.append(1)
        slow = by_serializer(serializer_class, data)
        assert slow is not None, f"quick check accepted a body the serializer refuses: {data!r}"
        assert comparable(fast) == comparable(slow)

    run()
    assert len(vouched) >= 10, "too few well-formed bodies to compare"


def test_a_registers_usual_lookup_takes_the_quick_path_with_the_serializers_values():
    body = {"phone": "+1 303 555 0150", "basket": {"store_id": 4, "tax_total": "20.00", "items": BASKET}}
    fast = quick(LookupSerializer, body)
    assert fast is not api_input._UNSURE
    assert comparable(fast) == comparable(by_serializer(LookupSerializer, body))
    assert fast["basket"]["items"][1]["quantity"] == Decimal("2.000")
    assert str(fast["basket"]["items"][1]["unit_price"]) == "48.50"


@pytest.mark.parametrize("body", [
    {"phone": "+13035550150", "email": "a@example.com"},  # the serializer's own validate()
    {"phone": "+13035550150", "basket": {"items": [{"quantity": "-1", "unit_price": "1"}]}},
    {"phone": "+13035550150", "basket": {"items": [{"quantity": "1", "unit_price": "1.001"}]}},
    {"phone": "+13035550150", "basket": {"items": "none"}},
    {"phone": "x" * 41},
    {"persona_id": True},
])
def test_bodies_the_serializer_refuses_are_left_to_it(body):
    assert quick(LookupSerializer, body) is api_input._UNSURE
    with pytest.raises(serializers.ValidationError):
        api_input.input_validated(LookupSerializer, body)


# --- one odd value at a time ---------------------------------------------------------------

ITEM = {"line_id": "1", "sku": "FLO-1", "product": "Blue Dream", "brand": "Green Dot", "category": "Flower",
        "quantity": "1.5", "unit_price": "35.00", "subtotal": "52.50", "tax_included": "0.00"}
WELL_FORMED = {
    LookupSerializer: {"phone": "+13035550150",
                       "basket": {"store_id": 4, "subtotal": "52.50", "tax_total": "4.10", "items": [ITEM]}},
    ApplySerializer: {"persona_id": 7, "cart_id": "cart-1", "offer_id": 3,
                      "basket": {"store_id": 4, "tax_total": "4.10", "items": [ITEM]}},
    PurchaseSerializer: {"persona_id": 7, "offer_id": 3},
    ReleaseSerializer: {"redemption_id": 9, "cart_id": "cart-1"},
    AudienceUpdateSerializer: {"name": "Delivery", "description": ""},
}
ODD_TEXT = ["", "  ", " padded ", "a\x00b", "\ud800", 12, 1.5, True, None, [], {}]
ODD_NUMBERS = ["", " 7 ", "7", "-1", "0", "1e2", "1.5", 1.5, 2**63, True, None, "NaN", "Infinity", [], {}]


def odd_values(field):
    if isinstance(field, serializers.CharField):
        return ODD_TEXT + ["x" * (field.max_length or 30), "x" * ((field.max_length or 30) + 1)]
    if isinstance(field, serializers.DecimalField):
        places, whole = field.decimal_places, field.max_digits - field.decimal_places
        return ODD_NUMBERS + ["0.00", "-0.00", "1." + "5" * places, "1." + "5" * (places + 1), "9" * whole,
                              "9" * (whole + 1), "0" * (whole + 1) + ".5", "0." + "0" * (places + 1),
                              "1_000", "+5", ".5", "5.", 10**whole, 0.1 + 0.2]
    if isinstance(field, serializers.IntegerField):
        return ODD_NUMBERS + [field.min_value, field.max_value, (field.min_value or 0) - 1,
                              (field.max_value or 0) + 1]
    return ODD_TEXT + ODD_NUMBERS


def leaves(serializer, body, path=()):
    """(path, field) for every value in `body` the serializer checks."""
    for name, field in serializer.fields.items():
        if name not in body:
            continue
        if isinstance(field, serializers.ListSerializer):
            for i, item in enumerate(body[name]):
                yield from leaves(field.child, item, (*path, name, i))
        elif isinstance(field, serializers.Serializer):
            yield from leaves(field, body[name], (*path, name))
        else:
            yield (*path, name), field


def replaced(body, path, value):
    if len(path) == 1:
        return {**body, path[0]: value} if isinstance(body, dict) else [
            value if i == path[0] else v for i, v in enumerate(body)]
    head = path[0]
    inner = replaced(body[head], path[1:], value)
    return {**body, head: inner} if isinstance(body, dict) else [
        inner if i == head else v for i, v in enumerate(body)]


@pytest.mark.parametrize("serializer_class", list(WELL_FORMED), ids=lambda c: c.__name__)
def test_one_odd_value_anywhere_is_judged_as_the_serializer_judges_it(serializer_class):
    base = WELL_FORMED[serializer_class]
    assert quick(serializer_class, base) is not api_input._UNSURE  # the usual body goes quick
    checked = 0
    for path, field in leaves(serializer_class(), base):
        for value in odd_values(field):
            body = replaced(base, path, value)
            fast = quick(serializer_class, body)
            if fast is api_input._UNSURE:
                continue
            slow, where = by_serializer(serializer_class, body), f"{'.'.join(map(str, path))}={value!r}"
            assert slow is not None, f"{where} accepted, but the serializer refuses it"
            assert comparable(fast) == comparable(slow), where
            checked += 1
    assert checked
