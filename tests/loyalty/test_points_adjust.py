import threading

import pytest
from django.db import connection
from django.db.models import Sum
from django.http import Http404

from loyalty.errors import InsufficientPoints, InvalidAdjustment
from loyalty.models import Persona, PointsEntry
from loyalty.services import points_adjust
from tests.factories import MembershipFactory, PersonaFactory


def ledger_sum(persona):
    return PointsEntry.objects.filter(persona=persona).aggregate(s=Sum("delta"))["s"] or 0


def test_points_adjust_adds_and_removes_with_staff_and_reason(company, admin_user):
    persona = PersonaFactory(company=company)
    points_adjust(company=company, persona_id=persona.pk, delta=200, staff_user=admin_user,
                  reason="Welcome gift")
    entry = points_adjust(company=company, persona_id=persona.pk, delta=-50,
                          staff_user=admin_user, reason="Returned pre-roll")
    persona.refresh_from_db()
    assert persona.points_balance == 150 == ledger_sum(persona)
    assert (entry.kind, entry.balance_after, entry.staff_user, entry.reason) == (
        "adjust", 150, admin_user, "Returned pre-roll")


def test_points_adjust_refuses_to_go_below_zero_with_a_clear_message(company, admin_user):
    persona = PersonaFactory(company=company)
    points_adjust(company=company, persona_id=persona.pk, delta=30, staff_user=admin_user,
                  reason="gift")
    with pytest.raises(InsufficientPoints) as exc:
        points_adjust(company=company, persona_id=persona.pk, delta=-31, staff_user=admin_user,
                      reason="return")
    assert "30 points" in exc.value.message and "31" in exc.value.message
    persona.refresh_from_db()
    assert persona.points_balance == 30 and PointsEntry.objects.count() == 1


@pytest.mark.parametrize(("delta", "reason", "field"), [(0, "x", "delta"), (5, "  ", "reason")])
def test_points_adjust_needs_points_and_a_reason(company, admin_user, delta, reason, field):
    persona = PersonaFactory(company=company)
    with pytest.raises(InvalidAdjustment) as exc:
        points_adjust(company=company, persona_id=persona.pk, delta=delta,
                      staff_user=admin_user, reason=reason)
    assert exc.value.extra["field"] == field


def test_points_adjust_same_form_token_twice_counts_once(company, admin_user):
    persona = PersonaFactory(company=company)
    for _ in range(2):
        points_adjust(company=company, persona_id=persona.pk, delta=10, staff_user=admin_user,
                      reason="double click", idempotency_key="token-1")
    persona.refresh_from_db()
    assert persona.points_balance == 10 and PointsEntry.objects.count() == 1


def test_points_adjust_another_companys_persona_is_not_found(company, other_company,
                                                             admin_user):
    foreign = PersonaFactory(company=other_company)
    with pytest.raises(Http404):
        points_adjust(company=company, persona_id=foreign.pk, delta=10, staff_user=admin_user,
                      reason="x")
    foreign.refresh_from_db()
    assert foreign.points_balance == 0


@pytest.mark.django_db(transaction=True)
def test_points_adjust_20_concurrent_threads_keep_ledger_and_balance_equal():
    # given a persona with 100 points
    membership = MembershipFactory()
    company, staff = membership.company, membership.user
    persona = PersonaFactory(company=company)
    points_adjust(company=company, persona_id=persona.pk, delta=100, staff_user=staff,
                  reason="start")
    # when 20 threads at once each add 7 or take 15 (more is taken than the balance allows)
    start = threading.Barrier(20)
    outcomes = []

    def worker(i):
        try:
            start.wait()
            delta = 7 if i % 2 else -15
            points_adjust(company=company, persona_id=persona.pk, delta=delta,
                          staff_user=staff, reason=f"thread {i}")
            outcomes.append(delta)
        except InsufficientPoints:
            outcomes.append("refused")
        finally:
            connection.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # then every applied change is in the ledger, the balance equals the ledger, never < 0
    persona.refresh_from_db()
    applied = [o for o in outcomes if o != "refused"]
    assert len(outcomes) == 20
    assert persona.points_balance == 100 + sum(applied) == ledger_sum(persona)
    assert persona.points_balance >= 0
    balances = list(PointsEntry.objects.filter(persona=persona).order_by("id")
                    .values_list("balance_after", flat=True))
    assert min(balances) >= 0 and balances[-1] == persona.points_balance
    assert Persona.objects.get(pk=persona.pk).lifetime_points >= persona.points_balance
