"""Byte streams that misbehave the way network downloads do."""


class BreaksOff:
    """A byte stream that delivers `limit` bytes of `inner` and then fails, as a dropped
    connection does."""

    def __init__(self, inner, limit: int):
        self.inner, self.limit, self.delivered = inner, limit, 0

    def read(self, n=-1):
        if self.delivered >= self.limit:
            raise ConnectionResetError(104, "Connection reset by peer")
        room = self.limit - self.delivered
        chunk = self.inner.read(room if n is None or n < 0 else min(n, room))
        self.delivered += len(chunk)
        return chunk

    def close(self):
        self.inner.close()
