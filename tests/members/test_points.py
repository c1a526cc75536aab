"""My points: balance, tier and what is left to the next, the history, what expires."""

import datetime as dt
from decimal import Decimal

import pytest
import time_machine
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from loyalty.models import LoyaltyProgram, PointsEntry, Tier
from loyalty.services import TransactionData, points_adjust, transaction_record
from loyalty.services.personas import source_get_or_create
from loyalty.services.points import points_expire
from loyalty.services.redemptions import offer_purchase
from tests.factories import OfferFactory, PersonaFactory

from .sign_in_helpers import page_on, sign_in, text

pytestmark = pytest.mark.django_db

PHONE = "+13035550142"


def sale(company, store, persona, ext, amount):
    source = source_get_or_create(company=company, kind="pos_api")
    transaction_record(company=company, source=source, data=TransactionData(
        external_id=ext, occurred_at=timezone.now(), subtotal=Decimal(amount), total=Decimal(amount),
        store_id=store.pk, persona_id=persona.pk))


@pytest.fixture
def history(company, store, admin_user):
    """A member who earned at a store, was given points, spent some, lost the rest to expiry
    and earned again."""
    LoyaltyProgram.objects.create(company=company, expiry_months=12)
    Tier.objects.create(company=company, name="Silver", threshold=500)
    Tier.objects.create(company=company, name="VIP", threshold=1000, earn_multiplier=Decimal("1.5"))
    persona = PersonaFactory(company=company, phone=PHONE, first_name="Maya")
    sale(company, store, persona, "S-1", "300.00")
    points_adjust(company=company, persona_id=persona.pk, delta=100, staff_user=admin_user,
                  reason="Goodwill")
    offer = OfferFactory(company=company, points_cost=50)
    offer_purchase(company=company, persona_id=persona.pk, offer_id=offer.pk)
    points_expire(company=company, now=timezone.now() + dt.timedelta(days=400))
    sale(company, store, persona, "S-2", "200.00")
    persona.refresh_from_db()
    return persona


def test_points_page_shows_balance_tier_progress_history_and_expiry(client, company, history):
    # given the member signs in
    page_on(company)
    sign_in(client, company, PHONE)
    page = text(client.get(f"/c/{company.slug}/points/"))
    # then the balance, the tier and what is left to the next one (lifetime 600 of 1,000)
    assert history.points_balance == 200 and history.lifetime_points == 600
    assert 'data-testid="balance">200<' in page
    assert "Silver member" in page and "400 points to VIP" in page
    # the history, newest first, each with what happened, where and when
    history_part = page[page.index("Points history"):]
    shown = [history_part.index(what) for what in ("+200", "−350", "−50", "+100", "+300")]
    assert shown == sorted(shown)
    labels = [history_part.index(what) for what in ("Earned", "Expired", "Spent", "Adjusted")]
    assert labels == sorted(labels)
    assert "Denver · " + timezone.localdate().strftime("%b %-d, %Y") in page
    # the balance runs out 12 months after the last activity
    assert "Your 200 points expire on" in page


def test_expiring_soon_is_called_out(client, company, history):
    page_on(company)
    with time_machine.travel(timezone.now() + dt.timedelta(days=350)):
        sign_in(client, company, PHONE)
        page = text(client.get(f"/c/{company.slug}/points/"))
    assert "Points expiring soon" in page


def test_history_is_paged_twenty_at_a_time(client, company, store, admin_user):
    persona = PersonaFactory(company=company, phone=PHONE)
    for n in range(25):
        points_adjust(company=company, persona_id=persona.pk, delta=n + 1, staff_user=admin_user,
                      reason=f"r{n}")
    page_on(company)
    sign_in(client, company, PHONE)
    first = client.get(f"/c/{company.slug}/points/")
    assert text(first).count('class="m-entry"') == 20 and 'data-testid="older"' in text(first)
    second = text(client.get(f"/c/{company.slug}/points/?page=2"))
    assert second.count('class="m-entry"') == 5 and 'data-testid="older"' not in second
    assert "+1<" in second.replace("</span>", "<")  # the oldest entry is on the last page


def test_points_page_is_a_handful_of_queries(client, company, history):
    page_on(company)
    sign_in(client, company, PHONE)
    client.get(f"/c/{company.slug}/points/")  # the session's last-seen is written at most every 5 min
    with CaptureQueriesContext(connection) as queries:
        assert client.get(f"/c/{company.slug}/points/").status_code == 200
    assert len(queries) <= 7, [q["sql"][:120] for q in queries]


def test_points_page_needs_a_sign_in_of_this_company(client, company, other_company, history):
    page_on(company)
    page_on(other_company)
    response = client.get(f"/c/{company.slug}/points/")
    assert response.status_code == 302 and "/sign-in/" in response["Location"]
    # signed in at the other company (same number, another persona), nothing of ours shows
    PersonaFactory(company=other_company, phone=PHONE, first_name="Elsewhere")
    sign_in(client, other_company, PHONE)
    assert "Elsewhere" in text(client.get(f"/c/{other_company.slug}/points/"))
    response = client.get(f"/c/{company.slug}/points/")
    assert response.status_code == 302
    assert not PointsEntry.objects.filter(persona__company=other_company).exists()
