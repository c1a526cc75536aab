"""Every write to customers, sales and points goes through these functions."""

from .personas import (
    persona_create,
    persona_enroll,
    persona_identity_attach,
    source_create,
    source_get_or_create,
    source_rename,
    source_retire,
)
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
    "persona_identity_attach",
    "points_adjust",
    "source_create",
    "source_get_or_create",
    "source_rename",
    "source_retire",
    "transaction_record",
    "transactions_record_batch",
]
