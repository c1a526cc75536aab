"""Request bodies checked against the API's serializers without DRF's per-request cost.

A register calls `lookup` with a basket on every scan. Validating that body through DRF
costs about a millisecond (each request deep-copies every serializer's fields, then runs
each field's generic validation machinery), as much as everything else in the lookup put
together. The serializers stay the one declaration of what a body may hold (and what the
OpenAPI schema says); `input_validated` reads those declarations once and checks the
common, well-formed body in plain Python. The moment anything is unusual (a wrong type, a
value out of bounds, a field kind it does not know), it hands the body to the serializer
itself, so every refusal, with its field paths and messages, is still DRF's own. The fast
path only ever accepts what the serializer accepts, with the same values:
tests/loyalty/test_api_input.py holds it to that with random bodies.
"""

from __future__ import annotations

import decimal
import re
from collections.abc import Callable

from django.core import validators as django_validators
from rest_framework import fields as drf_fields
from rest_framework import serializers
from rest_framework.fields import empty

# What the fast path gives back when it cannot vouch for a value: the serializer decides.
_UNSURE = object()

# Validators the field kinds below add for their own arguments (max_length, min_value …),
# whose checks the fast path makes itself. Any other validator means "let DRF do it".
_OWN_VALIDATORS = (
    django_validators.MaxLengthValidator, django_validators.MinLengthValidator,
    django_validators.MaxValueValidator, django_validators.MinValueValidator,
    drf_fields.ProhibitNullCharactersValidator, drf_fields.ProhibitSurrogateCharactersValidator,
)

_checkers: dict[type, Callable] = {}


def input_validated(serializer_class: type[serializers.Serializer], data):
    """The serializer's validated_data for `data`; raises DRF's ValidationError when invalid."""
    checker = _checkers.get(serializer_class)
    if checker is None:
        checker = _checkers[serializer_class] = _serializer_checker(serializer_class())
    value = checker(data)
    if value is not _UNSURE:
        return value
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


def _serializer_checker(serializer: serializers.Serializer) -> Callable:
    if getattr(getattr(serializer, "Meta", None), "validators", None):
        return lambda data: _UNSURE
    declared = [(name, field, _field_checker(field, name, serializer))
                for name, field in serializer.fields.items() if not field.read_only]
    overrides_validate = type(serializer).validate is not serializers.Serializer.validate
    serializer_class = type(serializer)

    def check(data):
        if type(data) is not dict:
            return _UNSURE
        attrs = {}
        for name, field, value_checker in declared:
            raw = data.get(name, empty)
            if raw is empty:
                if field.required:
                    return _UNSURE
                if field.default is not empty:
                    if getattr(field.default, "requires_context", False):
                        return _UNSURE
                    attrs[name] = field.default() if callable(field.default) else field.default
                continue
            if raw is None:
                if not field.allow_null:
                    return _UNSURE
                attrs[name] = None
                continue
            value = value_checker(raw)
            if value is _UNSURE:
                return _UNSURE
            attrs[name] = value
        if overrides_validate:
            try:
                attrs = serializer_class().validate(attrs)
            except Exception:  # the serializer will say what is wrong
                return _UNSURE
        return attrs

    return check


def _field_checker(field, name: str, serializer) -> Callable:
    """A function from a raw JSON value to the field's internal value, or _UNSURE."""
    unsure = lambda raw: _UNSURE  # noqa: E731
    if getattr(serializer, f"validate_{name}", None) is not None:
        return unsure
    if field.source != name or any(not isinstance(v, _OWN_VALIDATORS) for v in field.validators):
        return unsure
    if isinstance(field, serializers.ListSerializer):
        return _list_checker(field)
    if isinstance(field, serializers.Serializer):
        return _serializer_checker(field)
    kind = type(field)
    if kind is serializers.CharField or kind is TextField:
        return _char_checker(field)
    if kind is serializers.IntegerField:
        return _integer_checker(field)
    if kind is serializers.DecimalField:
        return _decimal_checker(field)
    if kind is serializers.ChoiceField:
        return _choice_checker(field)
    return unsure  # emails, dates and the rest: the serializer checks them


def _list_checker(field: serializers.ListSerializer) -> Callable:
    child = _serializer_checker(field.child) if isinstance(field.child, serializers.Serializer) else None
    if child is None:
        return lambda raw: _UNSURE
    min_length, max_length = field.min_length or 0, field.max_length

    def check(raw):
        if type(raw) is not list or len(raw) < min_length or (not raw and not field.allow_empty):
            return _UNSURE
        if max_length is not None and len(raw) > max_length:
            return _UNSURE
        values = []
        for item in raw:
            value = child(item)
            if value is _UNSURE:
                return _UNSURE
            values.append(value)
        return values

    return check


class TextField(serializers.CharField):
    """A CharField that takes only JSON strings: DRF's turns a number into its text, so
    `"cart_id": 0` would pass as "0" where the schema says string."""

    default_error_messages = {"invalid": "Not a valid string."}

    def to_internal_value(self, data):
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


def _char_checker(field: serializers.CharField) -> Callable:
    max_length, min_length = field.max_length, field.min_length or 0

    def check(raw):
        if type(raw) is not str:
            return _UNSURE
        value = raw.strip() if field.trim_whitespace else raw
        if value == "":
            return "" if field.allow_blank else _UNSURE
        if (max_length is not None and len(value) > max_length) or len(value) < min_length:
            return _UNSURE
        if "\x00" in value or not _no_surrogates(value):
            return _UNSURE
        return value

    return check


def _no_surrogates(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _integer_checker(field: serializers.IntegerField) -> Callable:
    low, high = field.min_value, field.max_value

    def check(raw):
        if type(raw) is not int or (low is not None and raw < low) or (high is not None and raw > high):
            return _UNSURE
        return raw

    return check


def _decimal_checker(field: serializers.DecimalField) -> Callable:
    if field.localize or field.decimal_places is None or field.max_digits is None:
        return lambda raw: _UNSURE
    places, whole = field.decimal_places, field.max_whole_digits
    # Plain digits within the field's whole and decimal places: DecimalField's own digit
    # counting accepts these, and quantizing them only pads zeros. Signs, exponents,
    # leading zeros past the limit and the like go to the serializer.
    fraction = rf"(?:\.\d{{1,{places}}})?" if places else ""
    plain = re.compile(rf"-?\d{{1,{whole}}}{fraction}" if whole else rf"-?0?\.\d{{1,{places}}}")
    exponent = decimal.Decimal(".1") ** places
    context = decimal.Context(prec=field.max_digits)  # as DecimalField.quantize
    low, high = field.min_value, field.max_value

    def check(raw):
        if type(raw) not in (str, int, float):
            return _UNSURE
        text = str(raw).strip()
        if not plain.fullmatch(text):
            return _UNSURE
        value = decimal.Decimal(text).quantize(exponent, context=context)
        if (low is not None and value < low) or (high is not None and value > high):
            return _UNSURE
        return value

    return check


def _choice_checker(field: serializers.ChoiceField) -> Callable:
    choices = dict(field.choice_strings_to_values)

    def check(raw):
        if type(raw) is not str or raw not in choices:
            return _UNSURE
        return choices[raw]

    return check
