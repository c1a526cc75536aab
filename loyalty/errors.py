from stores.errors import DomainError


class InvalidPhone(DomainError):
    code = "invalid_phone"


class InvalidTransaction(DomainError):
    code = "invalid_transaction"


class InsufficientPoints(DomainError):
    code = "insufficient_points"
    status = 409


class InvalidAdjustment(DomainError):
    code = "invalid_adjustment"
