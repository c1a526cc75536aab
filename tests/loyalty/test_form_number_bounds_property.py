"""Whatever number a staff member types into a settings or persona form, the page never
answers 5xx: the value is refused with an error on its field, or it is saved exactly as
typed (never rounded, wrapped around or read as another number). Through the Django test
client, as the browser posts it."""

import itertools
import uuid
from decimal import Decimal, InvalidOperation

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.bounds import MONEY_MAX, POINTS_MAX
from loyalty.models import LoyaltyProgram, Offer, PointsEntry, Tier
from loyalty.services.program import PROGRAM_RANGES
from tests.factories import PersonaFactory

NAMES = itertools.count()
EXAMPLES = settings(max_examples=40, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


def around(*bounds) -> st.SearchStrategy:
    """Numbers at, just inside and just past each bound, and far past them all."""
    near = [b + d for b in bounds for d in (-1, 0, 1)]
    return st.sampled_from(sorted(set(near)) + [2**31 - 1, 2**31, 2**32 + 100, 2**63 - 1, 2**63, 10**30])


def number_text(*bounds, places: int = 0) -> st.SearchStrategy:
    """What may be typed into a number box: integers and decimals around the bounds, their
    negatives, decimals with too many places, exponents, separators, blanks and words."""
    whole = st.one_of(around(*bounds), st.integers(min_value=-(2**64), max_value=2**64))
    decimal = st.decimals(min_value=-MONEY_MAX * 10, max_value=MONEY_MAX * 10, places=places + 1,
                          allow_nan=False, allow_infinity=False)
    return st.one_of(
        whole.map(str), whole.map(lambda n: f"-{abs(n)}"), decimal.map(str), whole.map(lambda n: f"{n}.00"),
        whole.map(lambda n: f" {n} "), whole.map(lambda n: f"{n:,}"), whole.map(lambda n: f"{n}e3"),
        st.sampled_from(["", "1e400", "NaN", "Infinity", "-0", "0.000001", "9" * 40, "12abc", "١٢"]),
    )


def as_number(text: str) -> Decimal | None:
    try:
        return Decimal(text.strip())
    except InvalidOperation:
        return None


def form_of(response):
    for name in ("form", "adjust_form", "add_form"):
        form = response.context.get(name) if response.context else None
        if form is not None and form.is_bound:
            return form
    raise AssertionError(f"no bound form in the {response.status_code} answer")


def refused_on(response, field: str) -> bool:
    """The form came back with an error on `field`."""
    return response.status_code in (200, 400) and field in form_of(response).errors


@pytest.fixture
def program(company):
    program, _ = LoyaltyProgram.objects.get_or_create(company=company)
    return program


@given(typed=number_text(-POINTS_MAX, POINTS_MAX))
@EXAMPLES
def test_points_adjust_saves_exactly_or_refuses_on_the_field(admin_client, company, program, typed):
    persona = PersonaFactory(company=company, is_member=True)
    url = reverse("persona_points_adjust", args=[persona.pk])
    # when: an admin adjusts the points by what was typed
    response = admin_client.post(url, {"delta": typed, "reason": "Goodwill", "token": uuid.uuid4().hex})
    # then: never a server error; refused on the field, or the ledger moved by exactly that
    assert response.status_code < 500
    persona.refresh_from_db()
    moved = sum(PointsEntry.objects.filter(persona=persona).values_list("delta", flat=True))
    if response.status_code == 302:
        assert moved == as_number(typed) and persona.points_balance == moved
        assert abs(moved) <= POINTS_MAX
    else:
        assert refused_on(response, "delta"), response.status_code
        assert moved == 0


PROGRAM_NUMBERS = ["points_per_unit", "lock_ttl_minutes", "signup_bonus", "expiry_months",
                   "budtender_adjustment_limit"]


def program_post(program, **changes) -> dict:
    data = {"points_per_unit": "1", "earn_on": program.earn_on, "members_only": "on",
            "rounding": program.rounding, "discount_applies": program.discount_applies,
            "lock_ttl_minutes": "15", "refund_policy": program.refund_policy, "signup_bonus": "0",
            "expiry_months": "", "budtender_adjustment_limit": "500"}
    return data | changes


@given(field=st.sampled_from(PROGRAM_NUMBERS), data=st.data())
@EXAMPLES
def test_program_settings_save_exactly_or_refuse_on_the_field(admin_client, program, field, data):
    low, high, _ = PROGRAM_RANGES[field]
    typed = data.draw(number_text(low, high, places=2 if field == "points_per_unit" else 0), label=field)
    check_program(admin_client, program, field, typed)


def check_program(admin_client, program, field, typed):
    before = getattr(LoyaltyProgram.objects.get(pk=program.pk), field)
    response = admin_client.post(reverse("loyalty_program"), program_post(program, **{field: typed}))
    assert response.status_code < 500
    stored = getattr(LoyaltyProgram.objects.get(pk=program.pk), field)
    if response.status_code == 302:
        expected = as_number(typed)
        assert (stored is None and typed.strip() == "" and field == "expiry_months") or stored == expected
    else:
        assert refused_on(response, field), response.status_code
        assert stored == before


@given(field=st.sampled_from(["threshold", "earn_multiplier"]), data=st.data())
@EXAMPLES
def test_tier_numbers_save_exactly_or_refuse_on_the_field(admin_client, program, field, data):
    bound = MONEY_MAX if field == "threshold" else Decimal("100")
    typed = data.draw(number_text(0, int(bound), POINTS_MAX, places=2), label=field)
    number = next(NAMES)
    name = f"Tier {number}"
    # Each example's tier starts at its own threshold: two tiers never start at the same one.
    sent = {"tier-name": name, "tier-threshold_kind": Tier.Threshold.choices[0][0],
            "tier-threshold": str(1000 + number), "tier-earn_multiplier": "1"} | {f"tier-{field}": typed}
    response = admin_client.post(reverse("tier_create"), sent)
    assert response.status_code < 500
    tier = Tier.objects.filter(company=program.company, name=name).first()
    if response.status_code == 302:
        assert getattr(tier, field) == as_number(typed)
    else:
        assert refused_on(response, field), response.status_code
        assert tier is None


OFFER_NUMBERS = {"amount": MONEY_MAX, "points_cost": POINTS_MAX, "min_subtotal": MONEY_MAX,
                 "limit_per_persona": 2**31 - 1}


@given(field=st.sampled_from(sorted(OFFER_NUMBERS)), kind=st.sampled_from(["flat", "percent"]),
       data=st.data())
@EXAMPLES
def test_offer_numbers_save_exactly_or_refuse_on_the_field(admin_client, program, field, kind, data):
    places = 2 if field in ("amount", "min_subtotal") else 0
    typed = data.draw(number_text(0, 100, int(OFFER_NUMBERS[field]), places=places), label=field)
    check_offer(admin_client, program, field, kind, typed)


EDGES = ["0", "1", "100", "100.01", "2147483647", "2147483648", "4294967396", str(POINTS_MAX),
         str(POINTS_MAX + 1), "9999999999.99", "10000000000", "9223372036854775807", "9223372036854775808",
         "-1", "1.005", "1e3", "5.00"]


@pytest.mark.parametrize("field", sorted(OFFER_NUMBERS))
def test_offer_number_edges(admin_client, program, field):
    for typed, kind in itertools.product(EDGES, ("flat", "percent")):
        check_offer(admin_client, program, field, kind, typed)


@pytest.mark.parametrize("field", PROGRAM_NUMBERS)
def test_program_number_edges(admin_client, program, field):
    for typed in EDGES:
        check_program(admin_client, program, field, typed)


def check_offer(admin_client, program, field, kind, typed):
    name = f"Offer {next(NAMES)}"
    sent = {"name": name, "kind": kind, "amount": "5", "points_cost": "100", "min_subtotal": "0",
            "limit_per_persona": "", "is_active": "on"} | {field: typed}
    response = admin_client.post(reverse("offer_create"), sent)
    assert response.status_code < 500
    offer = Offer.objects.filter(company=program.company, name=name).first()
    if response.status_code == 302:
        stored = getattr(offer, field)
        assert (stored is None and typed.strip() == "" and field == "limit_per_persona") \
            or stored == as_number(typed)
    else:
        assert refused_on(response, field), response.status_code
        assert offer is None
