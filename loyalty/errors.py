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


class PointsOutOfRange(DomainError):
    """A balance or lifetime total would pass what its column holds (loyalty.bounds)."""

    code = "points_out_of_range"


class NumberOutOfRange(DomainError):
    """A number past what its column, or a value derived from it, holds (loyalty.bounds)."""

    code = "out_of_range"


class InvalidWebhookEndpoint(DomainError):
    code = "invalid_webhook_endpoint"


class WebhookDeliveryFailed(DomainError):
    """One delivery attempt did not get a 2xx answer; the task retries it."""

    code = "webhook_delivery_failed"
    status = 502
