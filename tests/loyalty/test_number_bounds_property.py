"""Whatever numbers a POS sends in a sale, the API never answers 5xx, and what it accepts
is stored exactly as sent: amounts, quantities, discounts and the points they earn."""

import itertools
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from loyalty.bounds import MONEY_MAX, POINTS_MAX, QUANTITY_MAX
from loyalty.models import LoyaltyProgram, PointsEntry, Transaction
from stores.models import API_BURST_MAX, API_RATE_MAX
from stores.services import api_key_create
from tests.factories import PersonaFactory
from tests.loyalty.test_pos_api import pos_client, post

CENT = Decimal("0.01")
# Around every bound, and far past them: 2**31, 2**32 + 100, the column's last digit.
EDGES = [Decimal(x) for x in ("0", "0.01", "2147483647.00", "2147483648.00", "3000000000.00",
                              "4294967396.00", str(POINTS_MAX), "9999999999.99", "10000000000.00",
                              "99999999999.99")]
money = st.one_of(st.decimals(min_value=0, max_value=MONEY_MAX, places=2), st.sampled_from(EDGES),
                  st.decimals(min_value=0, max_value=Decimal("1e12"), places=2))
quantity = st.one_of(st.decimals(min_value=0, max_value=Decimal("100"), places=3),
                     st.sampled_from([QUANTITY_MAX, QUANTITY_MAX + Decimal("0.001"), Decimal("999999999.999"),
                                      Decimal("5000000000")]),
                     st.decimals(min_value=0, max_value=Decimal("1e10"), places=3))
SALE_NUMBERS = itertools.count()
item = st.fixed_dictionaries({"quantity": quantity, "unit_price": money})
body = st.fixed_dictionaries({
    "subtotal": money, "tax_total": money, "member": st.booleans(),
    "items": st.lists(item, min_size=1, max_size=3),
    "discounts": st.lists(money, max_size=20),
})


@pytest.fixture
def register(company, store):
    LoyaltyProgram.objects.get_or_create(company=company)
    persona = PersonaFactory(company=company, is_member=True)
    _, raw = api_key_create(company=company, name="Register 1", level=1, rate_per_second=API_RATE_MAX,
                                    burst=API_BURST_MAX)  # limits on, not binding
    return pos_client(raw, company), persona


@given(sent=body)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
def test_send_transaction_accepts_exactly_or_refuses_never_a_server_error(register, store, sent):
    # given a sale with any amounts, quantities and discounts, for a member or a walk-in
    client, persona = register
    transaction_id = f"P-{next(SALE_NUMBERS)}"
    request = {"transaction_id": transaction_id, "store_id": store.pk,
               "persona_id": persona.pk if sent["member"] else None,
               "subtotal": str(sent["subtotal"]), "tax_total": str(sent["tax_total"]),
               "items": [{"product": "Gummies", "quantity": str(i["quantity"]),
                          "unit_price": str(i["unit_price"])} for i in sent["items"]],
               "discounts": [{"amount": str(d)} for d in sent["discounts"]]}
    # when the POS sends it
    response = post(client, "send_transaction", request)
    # then it is never a server error
    assert response.status_code < 500, response.content
    stored = Transaction.objects.filter(external_id__endswith=f"/{transaction_id}").first()
    if response.status_code >= 400:
        assert response.status_code == 400, response.content
        assert stored is None  # nothing half-written
        return
    # and what was accepted is what the database holds, to the last digit
    discounts = sum(sent["discounts"], Decimal("0"))
    assert (stored.subtotal, stored.tax_total, stored.discount_total) == (
        sent["subtotal"], sent["tax_total"], discounts)
    assert stored.total == max(Decimal("0"), sent["subtotal"] - discounts) + sent["tax_total"]
    lines = list(stored.line_items.order_by("line_no").values_list("quantity", "unit_price", "total"))
    assert lines == [(i["quantity"], i["unit_price"], (i["quantity"] * i["unit_price"]).quantize(CENT))
                     for i in sent["items"]]
    earned = sum(PointsEntry.objects.filter(transaction=stored).values_list("delta", flat=True))
    assert response.json()["points_earned"] == earned <= POINTS_MAX
    persona.refresh_from_db()
    assert persona.points_balance == sum(PointsEntry.objects.filter(persona=persona)
                                         .values_list("delta", flat=True))
