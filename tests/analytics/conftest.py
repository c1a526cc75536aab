import datetime as dt
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from loyalty.models import Redemption
from loyalty.services import (
    LineItemData,
    TransactionData,
    persona_create,
    source_get_or_create,
    transaction_record,
)
from tests.factories import OfferFactory, PersonaFactory, RetailStoreFactory

DENVER = ZoneInfo("America/Denver")


def local(*args, fold=0) -> dt.datetime:
    """A moment on the shop's wall clock (fold=1: the second 01:30 when clocks go back)."""
    return dt.datetime(*args, tzinfo=DENVER, fold=fold)


def line(category, brand, product, quantity, price, *, discount="0", tax="0", tax_included=False):
    quantity, price, discount, tax = Decimal(quantity), Decimal(price), Decimal(discount), Decimal(tax)
    total = quantity * price - discount + (tax if tax_included else 0)
    return LineItemData(product=product, brand=brand, category=category, quantity=quantity, unit_price=price,
                        discount=discount, tax=tax, tax_included=tax_included, total=total)


def record(company, source, ref, when, lines, *, store=None, persona=None, fulfillment="in_store",
           status="completed", tax="0", discount=None):
    subtotal = sum((item.quantity * item.unit_price for item in lines), Decimal("0"))
    discount = sum((item.discount for item in lines), Decimal("0")) if discount is None else Decimal(discount)
    tax = Decimal(tax)
    txn, _ = transaction_record(company=company, source=source, data=TransactionData(
        external_id=ref, occurred_at=when, store_id=store.pk if store else None,
        persona_id=persona.pk if persona else None, subtotal=subtotal, discount_total=discount, tax_total=tax,
        total=subtotal - discount + tax, fulfillment=fulfillment, status=status, line_items=lines))
    return txn


class Shop:
    """Two stores in Denver time, four customers and a walk-in, sales around midnight and
    both DST changes of 2026, a void, a return, discounts, tax (added and included), points
    and redemptions, a sale not mapped to a store yet; and another company's sales."""

    def __init__(self, company, other_company):
        self.company = company
        self.source = source = source_get_or_create(company=company, kind="pos_api")
        self.denver = RetailStoreFactory(company=company, name="Denver")
        self.boulder = RetailStoreFactory(company=company, name="Boulder")

        def person(first, enrolled_at=None):
            return persona_create(company=company, source=source, first_name=first, last_name="Test",
                                  enrolled_at=enrolled_at)

        self.ana = person("Ana", enrolled_at=local(2025, 6, 1, 9))
        self.ben = person("Ben", enrolled_at=local(2026, 3, 8, 12))  # joins between his two sales
        self.cy = person("Cy")
        self.dee = person("Dee", enrolled_at=local(2026, 1, 10, 9))  # bought once before joining

        def sale(ref, when, lines, **kwargs):
            return record(company, source, ref, when, lines, **kwargs)

        self.sales = {
            "ana-dec": sale("ana-dec", local(2025, 12, 15, 10), [
                line("Flower", "Green Dot", "Blue Dream 3.5g", 2, "20.00", discount="4.00"),
                line("Edibles", "Wana", "Sour Gummies", 1, "15.00")],
                store=self.denver, persona=self.ana, tax="7.65"),
            # 23:30 local on Jan 5 is already Jan 6 in UTC: it belongs to Jan 5.
            "ana-late": sale("ana-late", local(2026, 1, 5, 23, 30), [
                line("Vapes", "Select", "Elite Cart 1g", 1, "40.00", tax="6.00", tax_included=True)],
                store=self.denver, persona=self.ana, fulfillment="pickup", tax="6.00"),
            "cy-early": sale("cy-early", local(2026, 1, 6, 0, 15), [
                line("Flower", "Green Dot", "Blue Dream 3.5g", 1, "30.00", discount="3.00")],
                store=self.boulder, persona=self.cy, tax="4.05"),
            "walk-in": sale("walk-in", local(2026, 1, 6, 12), [
                line("Pre-Rolls", "Lazercat", "Jack Herer 1g", 3, "10.00")],
                store=self.boulder, fulfillment="delivery", tax="4.50"),
            "unmapped": sale("unmapped", local(2026, 1, 7, 11), [
                line("Accessories", "RAW", "Papers", 1, "8.00")], tax="1.20"),
            "cy-void": sale("cy-void", local(2026, 1, 20, 18), [
                line("Flower", "Cookies", "Gary Payton", 1, "100.00")], store=self.boulder, persona=self.cy,
                status="voided"),
            "ana-return": sale("ana-return", local(2026, 1, 21, 14), [
                line("Flower", "Green Dot", "Blue Dream 3.5g", 1, "20.00", discount="2.00")],
                store=self.denver, persona=self.ana, status="refunded"),
            "ana-feb": sale("ana-feb", local(2026, 2, 14, 11), [
                line("", "", "Gift wrap", 1, "5.00")], store=self.boulder, persona=self.ana),
            # Spring forward: 01:30 is before the change, 23:30 on a 23-hour day; Ben joined at noon.
            "ben-night": sale("ben-night", local(2026, 3, 8, 1, 30), [
                line("Edibles", "Kiva", "Camino Gummies", 2, "12.50")], store=self.denver, persona=self.ben),
            "ben-late": sale("ben-late", local(2026, 3, 8, 23, 30), [
                line("Flower", "Cookies", "Gary Payton", 1, "60.00", discount="6.00")],
                store=self.denver, persona=self.ben, fulfillment="pickup", tax="8.10"),
            "dee-dec": sale("dee-dec", local(2025, 12, 20, 15), [
                line("Concentrates", "Soiku", "Live Rosin", 1, "50.00")],
                store=self.boulder, persona=self.dee),
            # Fall back: 01:30 happens twice on Nov 1; both are that day, hour 1.
            "dee-first-130": sale("dee-first-130", local(2026, 11, 1, 1, 30), [
                line("Vapes", "Select", "Elite Cart 1g", 1, "25.00")], store=self.boulder, persona=self.dee,
                fulfillment="delivery"),
            "dee-second-130": sale("dee-second-130", local(2026, 11, 1, 1, 30, fold=1), [
                line("Vapes", "Select", "Elite Cart 1g", 1, "25.00")], store=self.boulder, persona=self.dee,
                fulfillment="delivery"),
        }
        offer = OfferFactory(company=company)
        Redemption.objects.create(company=company, persona=self.ana, offer=offer, cart_id="c1",
                                  transaction=self.sales["ana-late"], state="redeemed", points=100,
                                  discount_amount=Decimal("5"))
        Redemption.objects.create(company=company, persona=self.ben, offer=offer, cart_id="c2",
                                  transaction=self.sales["ben-late"], state="reinstated", points=50,
                                  discount_amount=Decimal("5"))

        # Another company, same day and product names: never in these numbers.
        other_source = source_get_or_create(company=other_company, kind="pos_api")
        self.elsewhere = RetailStoreFactory(company=other_company, name="Elsewhere")
        self.stranger = PersonaFactory(company=other_company, first_name="Stranger")
        record(other_company, other_source, "other-1", local(2026, 1, 6, 12), [
            line("Flower", "Green Dot", "Blue Dream 3.5g", 10, "100.00")], store=self.elsewhere,
            persona=self.stranger)


@pytest.fixture
def shop(company, other_company):
    return Shop(company, other_company)
