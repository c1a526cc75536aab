"""A local stand-in for Twilio's Messages API, for tests and `make run`.

It speaks the wire format the `twilio` library uses:

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json
         form-encoded To, Body, and From or MessagingServiceSid; HTTP Basic auth SID:token
    -> 201 {"sid": "SM<32 hex>", "status": "queued", "to": ..., "from": ..., "body": ...}
    -> 401 {"code": 20003, "message": "Authenticate", "more_info": ..., "status": 401}
    -> 400 {"code": 21211, "message": "Invalid 'To' Phone Number: ...", ...}
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json  (the account's messages, newest first)

and, for tests and the curious, its outbox without auth:

    GET  /fake/messages.json[?to=+13035550100]  -> {"messages": [...]}, newest first

Tests start it on a free port (`FakeTwilio().start()`) and may make it slow
(`delay_seconds`) or refuse the next requests (`fail_next`). Standalone:

    python -m members.twilio_fake --port 8766
"""

from __future__ import annotations

import argparse
import base64
import binascii
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler
from urllib.parse import parse_qs, urlsplit

from stores.fake_server import ThreadedFakeServer

# Made-up credentials for the demo and the tests (the shape of real ones, no real account).
DEFAULT_ACCOUNT_SID = "AC" + "5ea1" * 8
DEFAULT_AUTH_TOKEN = "f4ke7w1l10a07h70ken0000000000000"
DEFAULT_FROM = "+13035550100"
DEFAULT_PORT = 8766

MESSAGES_PATH = re.compile(r"^/2010-04-01/Accounts/(?P<account>[^/]+)/Messages\.json$")
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
MESSAGING_SERVICE = re.compile(r"^MG[0-9a-fA-F]{32}$")
MAX_BODY = 1600


def _error(code: int, message: str, status: int) -> dict:
    return {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


@dataclass
class Fault:
    status: int
    code: int
    message: str


@dataclass
class FakeTwilio(ThreadedFakeServer):
    account_sid: str = DEFAULT_ACCOUNT_SID
    auth_token: str = DEFAULT_AUTH_TOKEN
    delay_seconds: float = 0.0  # sleep before answering, to provoke client timeouts
    # Every message accepted, oldest first (each the JSON Twilio answered with).
    messages: list[dict] = field(default_factory=list)
    # Every request that reached the API: (method, path, form fields, Authorization header).
    requests: list[tuple[str, str, dict[str, str], str]] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    # More accounts it accepts: {account SID: auth token}.
    accounts: dict[str, str] = field(default_factory=dict)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    def add_account(self, account_sid: str, auth_token: str) -> None:
        with self.lock:
            self.accounts[account_sid] = auth_token

    def fail_next(self, count: int = 1, *, status: int = 500, code: int = 20500,
                  message: str = "An internal server error has occurred") -> None:
        with self.lock:
            self.faults.extend(Fault(status, code, message) for _ in range(count))

    def sent_to(self, to: str) -> list[dict]:
        with self.lock:
            return [m for m in self.messages if m["to"] == to]

    # -- the API -----------------------------------------------------------------------

    def _token_of(self, account_sid: str) -> str | None:
        if account_sid == self.account_sid:
            return self.auth_token
        return self.accounts.get(account_sid)

    def authorized(self, account_sid: str, authorization: str) -> bool:
        scheme, _, encoded = (authorization or "").partition(" ")
        if scheme.lower() != "basic":
            return False
        try:
            user, _, password = base64.b64decode(encoded).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return False
        token = self._token_of(account_sid)
        return token is not None and secrets.compare_digest(user, account_sid) \
            and secrets.compare_digest(password.encode(), token.encode())

    def message_create(self, account_sid: str, form: dict[str, str]) -> tuple[int, dict]:
        to, body = form.get("To", ""), form.get("Body", "")
        sender, service = form.get("From", ""), form.get("MessagingServiceSid", "")
        if not to:
            return 400, _error(21604, "A 'To' phone number is required.", 400)
        if not E164.match(to):
            return 400, _error(21211, f"Invalid 'To' Phone Number: {to}", 400)
        if not sender and not service:
            return 400, _error(21603, "A 'From' phone number is required.", 400)
        if service and not MESSAGING_SERVICE.match(service):
            return 400, _error(21701, f"The Messaging Service Sid {service} is invalid.", 400)
        if sender and not E164.match(sender):
            return 400, _error(21212, f"Invalid 'From' Phone Number: {sender}", 400)
        if not body:
            return 400, _error(21602, "Message body is required.", 400)
        if len(body) > MAX_BODY:
            return 400, _error(21617, "The concatenated message body exceeds the 1600 character limit.", 400)
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True)
        message = {
            "account_sid": account_sid, "api_version": "2010-04-01", "body": body,
            "date_created": now, "date_sent": None, "date_updated": now,
            "direction": "outbound-api", "error_code": None, "error_message": None,
            "from": sender or None, "messaging_service_sid": service or None,
            "num_media": "0", "num_segments": str(1 if len(body) <= 160 else -(-len(body) // 153)),
            "price": None, "price_unit": "USD", "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}/Media.json"},
            "to": to, "uri": f"/2010-04-01/Accounts/{account_sid}/Messages/{sid}.json",
        }
        with self.lock:
            self.messages.append(message)
        return 201, message


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict[str, str]:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        return {key: values[-1] for key, values in parse_qs(raw, keep_blank_values=True).items()}

    def _api(self, method: str) -> None:
        fake = self.fake
        parts = urlsplit(self.path)
        form = self._form() if method == "POST" else {}
        if parts.path == "/fake/messages.json" and method == "GET":
            to = parse_qs(parts.query).get("to", [""])[-1]
            with fake.lock:
                found = [m for m in fake.messages if not to or m["to"] == to]
            return self._json(200, {"messages": list(reversed(found))})
        match = MESSAGES_PATH.match(parts.path)
        authorization = self.headers.get("Authorization", "")
        with fake.lock:
            fake.requests.append((method, self.path, form, authorization))
        if fake.delay_seconds:
            time.sleep(fake.delay_seconds)
        if match is None:
            return self._json(404, _error(20404, "The requested resource was not found", 404))
        account_sid = match["account"]
        if not fake.authorized(account_sid, authorization):
            return self._json(401, _error(20003, "Authenticate", 401))
        with fake.lock:
            fault = fake.faults.pop(0) if fake.faults else None
        if fault is not None:
            return self._json(fault.status, _error(fault.code, fault.message, fault.status))
        if method == "POST":
            status, payload = fake.message_create(account_sid, form)
            return self._json(status, payload)
        with fake.lock:
            mine = [m for m in reversed(fake.messages) if m["account_sid"] == account_sid]
        return self._json(200, {"messages": mine, "end": max(0, len(mine) - 1), "start": 0, "page": 0,
                                "page_size": 50, "first_page_uri": parts.path + "?PageSize=50&Page=0",
                                "next_page_uri": None, "previous_page_uri": None, "uri": self.path})

    def do_POST(self):
        self._api("POST")

    def do_GET(self):
        self._api("GET")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake Twilio Messages API for demos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=DEFAULT_PORT)
    parser.add_argument("--account-sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--auth-token", default=DEFAULT_AUTH_TOKEN)
    args = parser.parse_args(argv)
    fake = FakeTwilio(account_sid=args.account_sid, auth_token=args.auth_token).start(args.host, args.port)
    print(f"Fake Twilio listening on {fake.url} (TWILIO_API_BASE)", flush=True)
    print(f"  account SID: {fake.account_sid}")
    print(f"  outbox:      {fake.url}/fake/messages.json", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()


FakeTwilio.handler_class = _Handler


if __name__ == "__main__":
    main()

