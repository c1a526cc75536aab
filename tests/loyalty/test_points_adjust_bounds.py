"""Points typed on the persona card are bounded: by the ledger's columns for everyone, by
the company's budtender limit for budtenders. Out of bounds is a form error in words, never
a 500 and never a different number written."""

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from loyalty.bounds import POINTS_MAX, POINTS_RANGE_MESSAGE
from loyalty.errors import InvalidAdjustment, PointsOutOfRange
from loyalty.locks import persona_lock
from loyalty.models import LoyaltyProgram, PointsEntry
from loyalty.services import points_adjust
from loyalty.services.points import entry_append_locked, personas_save_derived_locked
from stores.models import Role
from tests.factories import MembershipFactory, PersonaFactory

HTMX = {"HTTP_HX_REQUEST": "true"}
BOTH = pytest.mark.parametrize("htmx", [False, True], ids=["post", "htmx"])


@pytest.fixture
def persona(company):
    return PersonaFactory(company=company)


@pytest.fixture
def budtender_client(client, budtender_user):
    client.force_login(budtender_user)
    return client


def adjust(client, persona, delta, *, htmx=False, token=None):
    return client.post(reverse("persona_points_adjust", args=[persona.pk]),
                       {"delta": delta, "reason": "Typed at the counter", "token": token or f"t-{delta}"},
                       **(HTMX if htmx else {}))


def refused(response, message: str, *, htmx: bool) -> bool:
    """The card (or its points block alone, for htmx) came back with `message` under the
    points field."""
    assert response.status_code == (200 if htmx else 400)
    content = response.content.decode()
    assert ("<html" not in content) is htmx
    return f'<div class="field-error" role="alert">{message}</div>' in content


def adjustments(persona) -> int:
    return PointsEntry.objects.filter(persona=persona, kind=PointsEntry.Kind.ADJUST).count()


@BOTH
def test_points_adjust_admin_may_add_the_largest_number_the_column_holds(admin_client, persona, htmx):
    # when an admin adds the most points a balance may hold to an empty balance
    response = adjust(admin_client, persona, str(POINTS_MAX), htmx=htmx)
    # then they are recorded exactly
    assert response.status_code == (200 if htmx else 302)
    persona.refresh_from_db()
    assert (persona.points_balance, persona.lifetime_points) == (POINTS_MAX, POINTS_MAX)
    assert PointsEntry.objects.get(persona=persona).delta == POINTS_MAX
    # and one more point is refused in words, with nothing written
    response = adjust(admin_client, persona, "1", htmx=htmx)
    assert response.status_code == (200 if htmx else 400)
    assert f"past {POINTS_MAX:,} points" in response.content.decode()
    persona.refresh_from_db()
    assert persona.points_balance == POINTS_MAX and adjustments(persona) == 1


@BOTH
@pytest.mark.parametrize("typed", ["2147483648", "4294967396", "3000000000", "1e20", "1.5", "-2147483648",
                                   "1,000", "0x10", "99999999999999999999999999999999999999999"])
def test_points_adjust_out_of_range_or_not_whole_is_a_form_error(admin_client, admin_user, persona,
                                                                   typed, htmx):
    # given a persona with 1,000 points
    points_adjust(company=persona.company, persona_id=persona.pk, delta=1000, staff_user=admin_user,
                  reason="Start")
    # when an admin types a number the ledger cannot hold, or not a whole number
    response = adjust(admin_client, persona, typed, htmx=htmx)
    # then the form says what it takes, and nothing is written
    assert refused(response, POINTS_RANGE_MESSAGE, htmx=htmx)
    persona.refresh_from_db()
    assert persona.points_balance == 1000 and adjustments(persona) == 1


def test_points_adjust_service_refuses_what_the_columns_cannot_hold(company, admin_user, persona):
    # a delta past the column
    for delta in (POINTS_MAX + 1, -POINTS_MAX - 1, 2**32 + 100):
        with pytest.raises(InvalidAdjustment) as exc:
            points_adjust(company=company, persona_id=persona.pk, delta=delta, staff_user=admin_user,
                          reason="x")
        assert exc.value.message == POINTS_RANGE_MESSAGE and exc.value.extra["field"] == "delta"
    # given lifetime points near the top but a small balance (spent on rewards)
    points_adjust(company=company, persona_id=persona.pk, delta=POINTS_MAX - 5, staff_user=admin_user,
                  reason="Start")
    with transaction.atomic():
        locked = persona_lock(company=company, persona_id=persona.pk)
        entry_append_locked(persona=locked, delta=-(POINTS_MAX - 10), kind=PointsEntry.Kind.REDEEM,
                            idempotency_key="spent")
        personas_save_derived_locked([locked])
    # when 100 points are added
    with pytest.raises(PointsOutOfRange) as exc:
        points_adjust(company=company, persona_id=persona.pk, delta=100, staff_user=admin_user,
                      reason="x")
    # then the lifetime total would overflow: refused, nothing written
    assert f"lifetime points past {POINTS_MAX:,}" in exc.value.message
    persona.refresh_from_db()
    assert (persona.points_balance, persona.lifetime_points) == (5, POINTS_MAX - 5)
    assert adjustments(persona) == 1


@BOTH
def test_points_adjust_budtender_up_to_the_limit(budtender_client, admin_user, persona, htmx):
    # given a persona with 2,000 points
    points_adjust(company=persona.company, persona_id=persona.pk, delta=2000, staff_user=admin_user,
                  reason="Start")
    # when a budtender adds 500, then takes back 500
    assert adjust(budtender_client, persona, "500", htmx=htmx).status_code == (200 if htmx else 302)
    assert adjust(budtender_client, persona, "-500", htmx=htmx).status_code == (200 if htmx else 302)
    # then both are recorded
    persona.refresh_from_db()
    assert persona.points_balance == 2000 and adjustments(persona) == 3
    # but 501 either way is refused, naming the limit
    for typed in ("501", "-501"):
        response = adjust(budtender_client, persona, typed, htmx=htmx)
        assert refused(response, "Budtenders may adjust at most 500 points at a time; ask an admin.",
                       htmx=htmx)
    persona.refresh_from_db()
    assert persona.points_balance == 2000 and adjustments(persona) == 3


def test_points_adjust_budtender_limit_is_the_company_setting(admin_client, company, budtender_user,
                                                              client, persona):
    # given an admin sets the limit to 50 on Settings › Loyalty program
    page = admin_client.get(reverse("loyalty_program")).content.decode()
    assert "Largest adjustment a budtender may make" in page
    response = admin_client.post(reverse("loyalty_program"), {
        "points_per_unit": "1", "earn_on": "pre_tax", "members_only": "on", "rounding": "down",
        "discount_applies": "before_tax", "lock_ttl_minutes": "15", "refund_policy": "keep",
        "signup_bonus": "0", "expiry_months": "", "budtender_adjustment_limit": "50"})
    assert response.status_code == 302
    assert LoyaltyProgram.objects.get(company=company).budtender_adjustment_limit == 50
    # when a budtender adds 50, then 51
    client.force_login(budtender_user)
    card = client.get(reverse("persona_detail", args=[persona.pk])).content.decode()
    assert "You may move up to 50 points at a time." in card
    assert adjust(client, persona, "50").status_code == 302
    response = adjust(client, persona, "51")
    # then the 51 is refused, naming the new limit
    assert refused(response, "Budtenders may adjust at most 50 points at a time; ask an admin.", htmx=False)
    persona.refresh_from_db()
    assert persona.points_balance == 50 and adjustments(persona) == 1


def test_points_adjust_service_holds_everyone_but_admins_to_the_limit(company, budtender_user,
                                                                      marketer_user, admin_user, persona):
    # when the service is called directly for a budtender, a marketer, or someone of another company
    outsider = MembershipFactory(role=Role.ADMIN).user
    for user in (budtender_user, marketer_user, outsider):
        with pytest.raises(InvalidAdjustment) as exc:
            points_adjust(company=company, persona_id=persona.pk, delta=501, staff_user=user, reason="x")
        # then it is refused, as on the form
        assert exc.value.message == "Budtenders may adjust at most 500 points at a time; ask an admin."
    assert adjustments(persona) == 0
    # while an admin of the company is not limited
    points_adjust(company=company, persona_id=persona.pk, delta=100_000, staff_user=admin_user, reason="x")
    assert adjustments(persona) == 1


@BOTH
def test_points_adjust_negative_past_the_balance_is_still_refused(admin_client, admin_user, persona, htmx):
    # given 100 points
    points_adjust(company=persona.company, persona_id=persona.pk, delta=100, staff_user=admin_user,
                  reason="Start")
    # when 101 are taken back
    response = adjust(admin_client, persona, "-101", htmx=htmx)
    # then it is refused as before, saying the balance
    assert response.status_code == (200 if htmx else 400)
    assert "below zero: it is 100 points" in response.content.decode()
    persona.refresh_from_db()
    assert persona.points_balance == 100 and adjustments(persona) == 1


def test_loyalty_program_update_budtender_limit_is_bounded(admin_client, company):
    # when the page is sent a negative limit, or one past the column
    for typed in ("-1", "2147483648", "1.5"):
        response = admin_client.post(reverse("loyalty_program"), {
            "points_per_unit": "1", "earn_on": "pre_tax", "members_only": "on", "rounding": "down",
            "discount_applies": "before_tax", "lock_ttl_minutes": "15", "refund_policy": "keep",
            "signup_bonus": "0", "expiry_months": "", "budtender_adjustment_limit": typed})
        # then the field says so
        assert response.status_code == 400
        assert response.context["form"].errors["budtender_adjustment_limit"]
    assert LoyaltyProgram.objects.get(company=company).budtender_adjustment_limit == 500
    # and the database refuses a negative limit by any path
    with pytest.raises(IntegrityError), transaction.atomic():
        LoyaltyProgram.objects.filter(company=company).update(budtender_adjustment_limit=-1)
