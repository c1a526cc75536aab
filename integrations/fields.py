"""The platform's canonical report fields, and how a file's headers are matched to them."""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Field:
    name: str
    label: str
    s3_header: str  # the header in the S3 / folder template
    onedrive_header: str  # the header in the OneDrive template
    aliases: tuple[str, ...] = ()


FIELDS: tuple[Field, ...] = (
    Field("transaction_id", "Transaction id", "ReceiptId", "TransactionID",
          ("receipt", "receipt id", "receipt number", "transaction", "transaction id", "order id",
           "order number", "ticket id", "invoice")),
    Field("customer_id", "Customer id", "customerId", "Patient Number",
          ("customer", "customer id", "customer number", "patient", "patient id", "patient number",
           "member id", "loyalty id", "client id")),
    Field("occurred_at", "Transaction date/time", "TransactionDate", "Transaction Date",
          ("date", "transaction date", "transaction time", "transaction datetime", "sale date",
           "order date", "completed at", "date time", "timestamp", "sold at", "sold on", "sale time")),
    Field("store", "Store / location", "Location", "Location",
          ("store", "store name", "location", "location id", "location name", "shop", "dispensary",
           "store id", "site")),
    Field("first_name", "Customer first name", "FirstName", "First Name",
          ("first name", "first", "given name")),
    Field("last_name", "Customer last name", "LastName", "Last Name",
          ("last name", "last", "surname", "family name")),
    Field("email", "Email", "Email", "Email", ("email", "email address", "e mail", "customer email")),
    Field("phone", "Phone", "Phone", "Phone",
          ("phone", "phone number", "mobile", "cell", "cell phone", "mobile phone", "customer phone")),
    Field("birth_date", "Birth date", "BirthDate", "Birth Date",
          ("birth date", "birthdate", "date of birth", "dob", "birthday")),
    Field("sku", "SKU", "SKU", "SKU", ("sku", "product sku", "item sku", "product id", "barcode")),
    Field("product", "Product", "ProductName", "Product",
          ("product", "product name", "item", "item name", "description")),
    Field("brand", "Brand", "Brand", "Brand", ("brand", "brand name", "vendor", "manufacturer")),
    Field("category", "Category", "Category", "Category",
          ("category", "product category", "product type", "classification")),
    Field("quantity", "Quantity", "Quantity", "Quantity", ("quantity", "qty", "units", "quantity sold")),
    Field("unit_price", "Unit price", "UnitPrice", "Unit Price",
          ("unit price", "price", "price each", "each", "item price", "retail price")),
    Field("discount", "Line discount", "LineDiscount", "Discount",
          ("discount", "line discount", "discount amount", "discounts")),
    Field("tax", "Tax", "LineTax", "Tax", ("tax", "line tax", "tax amount", "taxes", "total tax")),
    Field("line_total", "Line total", "LineTotal", "Total",
          ("total", "line total", "net", "net sales", "amount", "line amount", "subtotal", "net total")),
    Field("payment_method", "Payment method", "PaymentMethod", "Payment Method",
          ("payment", "payment method", "payment type", "tender", "tender type")),
    Field("fulfillment", "Fulfillment type", "FulfillmentType", "Fulfillment",
          ("fulfillment", "fulfillment type", "order type", "sale type", "channel")),
    Field("employee", "Employee", "Employee", "Employee",
          ("employee", "budtender", "cashier", "employee name", "sold by", "staff")),
)

BY_NAME = {f.name: f for f in FIELDS}
REQUIRED = ("transaction_id", "customer_id")
# A row cannot become a sale without these, whatever the file's headers.
REQUIRED_VALUES = ("transaction_id", "customer_id", "occurred_at")


def _normal(header: str) -> str:
    """'Patient_Number ' and 'patientNumber' both read 'patient number'."""
    header = re.sub(r"([a-z])([A-Z])", r"\1 \2", header.strip())
    return re.sub(r"[^a-z0-9]+", " ", header.lower()).strip()


_LOOKUP: dict[str, str] = {}
for _field in FIELDS:
    for _alias in (_field.name, _field.s3_header, _field.onedrive_header, *_field.aliases):
        _LOOKUP.setdefault(_normal(_alias), _field.name)


def template_headers(provider: str) -> list[str]:
    """The exact headers a report for this provider is expected to have."""
    if provider == "onedrive":
        return [f.onedrive_header for f in FIELDS]
    return [f.s3_header for f in FIELDS]


def required_headers(provider: str) -> list[str]:
    return [BY_NAME[name].onedrive_header if provider == "onedrive" else BY_NAME[name].s3_header
            for name in REQUIRED]


def suggest(header: str) -> str:
    """The canonical field a header most likely is, or '' when none fits."""
    return _LOOKUP.get(_normal(header), "")


def likely_headers(field_name: str, headers: list[str], *, limit: int = 3) -> list[str]:
    """The headers of a file that look most like the field (fuzzy, against its names and
    aliases), best first: for a required field nothing matched by name ('Cust #' for
    customer id)."""
    field = BY_NAME[field_name]
    names = {_normal(n) for n in (field.name, field.s3_header, field.onedrive_header, *field.aliases)}
    scored = []
    for header in headers:
        normal = _normal(header)
        close = difflib.get_close_matches(normal, names, n=1, cutoff=0.6) if normal else []
        if close:
            scored.append((-difflib.SequenceMatcher(None, normal, close[0]).ratio(), header))
    return [header for _, header in sorted(scored)[:limit]]


def resolve_headers(headers: list[str], header_map: dict[str, str]) -> dict[int, str]:
    """Column index -> canonical field, by the saved map first and then by name.

    A field claimed by two columns goes to the first; the second is ignored (a report
    sometimes repeats 'Total' for the receipt and the line)."""
    resolved: dict[int, str] = {}
    taken: set[str] = set()
    for index, header in enumerate(headers):
        field = header_map[header] if header in header_map else suggest(header)
        if field and field in BY_NAME and field not in taken:
            resolved[index] = field
            taken.add(field)
    return resolved
