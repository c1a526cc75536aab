"""Every write to customers, sales and points goes through these functions."""

from .personas import persona_create, persona_enroll, source_get_or_create
from .points import points_adjust
from .transactions import (
    LineItemData,
    PaymentData,
    TransactionData,
    transaction_record,
    transactions_record_batch,
)

__all__ = [
    "LineItemData",
    "PaymentData",
    "TransactionData",
    "persona_create",
    "persona_enroll",
    "points_adjust",
    "source_get_or_create",
    "transaction_record",
    "transactions_record_batch",
]
