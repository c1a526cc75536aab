"""Sign-in records past any use are removed; those still of use stay."""

import datetime as dt

import pytest
from django.utils import timezone

from members.models import CustomerSession, LoginCode
from members.tasks import sign_in_records_purge
from tests.factories import PersonaFactory

pytestmark = pytest.mark.django_db


def test_old_codes_and_sessions_go_recent_ones_stay(company):
    now = timezone.now()
    persona = PersonaFactory(company=company)

    def code(age):
        made = now - age
        return LoginCode.objects.create(company=company, phone="+13035550100", code_hash="x" * 64,
                                        created_at=made, expires_at=made + dt.timedelta(minutes=10))

    def session(token, age, revoked=None):
        made = now - age
        return CustomerSession.objects.create(company=company, persona=persona, token_hash=token * 64,
                                              created_at=made, last_seen_at=made,
                                              expires_at=made + dt.timedelta(days=30), revoked_at=revoked)

    old_code, recent_code = code(dt.timedelta(days=2)), code(dt.timedelta(hours=2))
    expired_long_ago = session("a", dt.timedelta(days=61))
    revoked_long_ago = session("b", dt.timedelta(days=40), revoked=now - dt.timedelta(days=35))
    live, revoked_lately = session("c", dt.timedelta(days=1)), session("d", dt.timedelta(days=5), revoked=now)

    assert sign_in_records_purge() == {"codes": 1, "sessions": 2}
    assert set(LoginCode.objects.values_list("pk", flat=True)) == {recent_code.pk}
    assert set(CustomerSession.objects.values_list("pk", flat=True)) == {live.pk, revoked_lately.pk}
    assert not LoginCode.objects.filter(pk=old_code.pk).exists()
    assert not CustomerSession.objects.filter(pk__in=[expired_long_ago.pk, revoked_long_ago.pk]).exists()
