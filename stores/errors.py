class DomainError(Exception):
    """A business rule said no. `code` is stable for API clients, `message` is for people,
    `extra` carries the details (which field, which limit)."""

    code = "error"
    status = 400

    def __init__(self, message: str, *, code: str | None = None, extra: dict | None = None):
        super().__init__(message)
        self.message = message
        if code:
            self.code = code
        self.extra = extra or {}


class OutboundRefused(DomainError):
    """A request the server would make on a merchant's behalf (webhook, S3, OneDrive, Cova)
    points at a private or local address. `extra` has the `url` and the `address`."""

    code = "outbound_refused"


class CodeRefused(DomainError):
    """A two-factor code was wrong, already used, or came too soon after wrong ones
    (`extra["retry_at"]`)."""

    code = "code_refused"
