"""A local mail server for tests and `make run`: it accepts whatever Django's SMTP email
backend sends (aiosmtpd, any login accepted, no TLS) and keeps each message in memory,
parsed, with an HTTP outbox to read them:

    GET /messages.json[?to=ana@example.com]
        -> {"messages": [{"id", "received_at", "from", "to", "subject", "headers", "text",
                          "html"}, ...]}, newest first

`refuse(451)` (or 421) makes it refuse every message with that code, as a mail server that
is down or overloaded does, until `refuse(None)`. Tests use the `smtp_fake` fixture
(tests/campaigns/conftest.py); standalone:

    python -m campaigns.smtp_fake --smtp-port 8025 --http-port 8767
"""

from __future__ import annotations

import argparse
import json
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from stores.fake_server import ThreadedFakeServer

DEFAULT_SMTP_PORT = 8025
DEFAULT_HTTP_PORT = 8767
REFUSALS = {421: "421 4.3.2 Service not available, try again later",
            451: "451 4.3.0 Temporary failure, try again later"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def parse(envelope_from: str, envelope_to: list[str], raw: bytes) -> dict:
    """One received message as the outbox shows it."""
    message = message_from_bytes(raw, policy=policy.default)
    text = message.get_body(preferencelist=("plain",))
    html = message.get_body(preferencelist=("html",))
    return {
        "from": envelope_from, "to": list(envelope_to), "subject": str(message.get("Subject", "")),
        "headers": {name: str(value) for name, value in message.items()},
        "text": text.get_content() if text is not None else "",
        "html": html.get_content() if html is not None else "",
    }


def _any_login(server, session, envelope, mechanism, auth_data) -> AuthResult:
    return AuthResult(success=True)


class _SmtpHandler:
    def __init__(self, fake: SmtpFake):
        self.fake = fake

    async def handle_DATA(self, server, session, envelope) -> str:
        refusal = self.fake.refusing
        if refusal:
            return REFUSALS[refusal]
        raw = envelope.original_content or envelope.content
        self.fake.add(parse(envelope.mail_from, envelope.rcpt_tos, raw))
        return "250 2.0.0 OK: queued"


class _HttpHandler(BaseHTTPRequestHandler):
    fake: SmtpFake
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def do_GET(self):
        parts = urlsplit(self.path)
        if parts.path != "/messages.json":
            status, payload = 404, {"error": "GET /messages.json[?to=...]"}
        else:
            status, payload = 200, {"messages": self.fake.sent_to(parse_qs(parts.query).get("to", [""])[-1])}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@dataclass
class SmtpFake(ThreadedFakeServer):
    """start() listens for SMTP on `smtp_port` and serves the outbox over HTTP (`url`);
    close() stops both."""

    handler_class = _HttpHandler
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 0
    # Every message accepted, oldest first.
    messages: list[dict] = field(default_factory=list)
    refusing: int | None = None
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    _controller: Controller | None = field(default=None, repr=False)

    def start(self, host: str = "127.0.0.1", port: int = 0, *, smtp_port: int = 0):
        self.smtp_host, self.smtp_port = host, smtp_port or free_port(host)
        self._controller = Controller(_SmtpHandler(self), hostname=host, port=self.smtp_port,
                                      authenticator=_any_login, auth_require_tls=False)
        self._controller.start()
        return super().start(host, port)

    def close(self) -> None:
        super().close()
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def refuse(self, code: int | None = 451) -> None:
        """Refuse every message with `code` (421 or 451) from now on; None accepts again."""
        if code is not None and code not in REFUSALS:
            raise ValueError(f"refuse 421 or 451, not {code}")
        self.refusing = code

    def add(self, message: dict) -> None:
        with self.lock:
            message = {"id": len(self.messages) + 1,
                       "received_at": datetime.now(UTC).isoformat(timespec="milliseconds"), **message}
            self.messages.append(message)

    def sent_to(self, to: str = "") -> list[dict]:
        """The messages for `to` (every one when blank), newest first."""
        with self.lock:
            return [m for m in reversed(self.messages)
                    if not to or to.lower() in (r.lower() for r in m["to"])]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a local mail server that keeps what it gets.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--smtp-port", type=int, default=DEFAULT_SMTP_PORT)
    parser.add_argument("--http-port", type=int, default=DEFAULT_HTTP_PORT)
    args = parser.parse_args(argv)
    fake = SmtpFake().start(args.host, args.http_port, smtp_port=args.smtp_port)
    print(f"Fake SMTP server listening on {fake.smtp_host}:{fake.smtp_port} (EMAIL_HOST / EMAIL_PORT)")
    print(f"  outbox: {fake.url}/messages.json", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()


if __name__ == "__main__":
    main()
