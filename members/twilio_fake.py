"""A local stand-in for Twilio's Messages API, for tests and `make run`.

It speaks the wire format the `twilio` library uses:

    POST /2010-04-01/Accounts/{AccountSid}/Messages.json
         form-encoded To, Body, and From or MessagingServiceSid; HTTP Basic auth SID:token
    -> 201 {"sid": "SM<32 hex>", "status": "queued", "to": ..., "from": ..., "body": ...}
    -> 401 {"code": 20003, "message": "Authenticate", "more_info": ..., "status": 401}
    -> 400 {"code": 21211, "message": "Invalid 'To' Phone Number: ...", ...}
    GET  /2010-04-01/Accounts/{AccountSid}/Messages.json  (the account's messages, newest first)

A message created with a StatusCallback URL gets Twilio's status callbacks, after the 201:
"sent", then "delivered" (or "undelivered" with ErrorCode 30003 for a number in
`undeliverable`, or ending in `undeliverable_suffix`), each a form-encoded POST (MessageSid,
MessageStatus, AccountSid, From, To, SmsSid, SmsStatus, ApiVersion) signed like Twilio's:
X-Twilio-Signature, the HMAC-SHA1 of the URL and the fields with the account's auth token.
No StatusCallback, no callbacks.

And, for tests, the demo and the curious, without auth:

    GET  /fake/messages.json[?to=+13035550100]  -> {"messages": [...]}, newest first
    POST /fake/inbound  form From, To, Body, Url [, AccountSid]
         -> a customer's reply: the inbound-message webhook (MessageSid, AccountSid, From,
            To, Body, NumMedia, NumSegments, ApiVersion), signed, is posted to Url;
            answers {"status": <the webhook's status>, "content_type": ..., "body": ...}

Tests start it on a free port (`FakeTwilio().start()`) and may make it slow
(`delay_seconds`) or refuse the next requests (`fail_next`). Standalone, where a number
ending in 0000 is undeliverable:

    python -m members.twilio_fake --port 8766
"""

from __future__ import annotations

import argparse
import base64
import binascii
import heapq
import http.client
import itertools
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import requests
from twilio.request_validator import RequestValidator

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
API_VERSION = "2010-04-01"
UNDELIVERED_CODE = "30003"  # Unreachable destination handset
# The standalone fake's undeliverable numbers: those ending in this.
DEMO_UNDELIVERABLE_SUFFIX = "0000"
CALLBACK_THREADS = 8


def signature(url: str, params: dict[str, str], auth_token: str) -> str:
    """X-Twilio-Signature: what Twilio sends with each webhook."""
    return RequestValidator(auth_token).compute_signature(url, params)


def signed_post(session: requests.Session, url: str, params: dict[str, str], auth_token: str,
                timeout: float = 10) -> requests.Response:
    """POST `params` form-encoded to `url` as Twilio does, with X-Twilio-Signature."""
    return session.post(url, data=params, timeout=timeout,
                        headers={"X-Twilio-Signature": signature(url, params, auth_token),
                                 "User-Agent": "TwilioProxy/1.1"})


class _Poster:
    """One thread's keep-alive connections for status callbacks: plain http.client, far
    cheaper than a requests session when thousands are posted a second."""

    def __init__(self, timeout: float = 10):
        self.timeout = timeout
        self.connections: dict[tuple[str, str], http.client.HTTPConnection] = {}

    def post(self, url: str, params: dict[str, str], auth_token: str) -> int | str:
        parts = urlsplit(url)
        key = (parts.scheme, parts.netloc)
        body = urlencode(params)
        headers = {"X-Twilio-Signature": signature(url, params, auth_token), "User-Agent": "TwilioProxy/1.1",
                   "Content-Type": "application/x-www-form-urlencoded"}
        target = parts.path + (f"?{parts.query}" if parts.query else "") or "/"
        for attempt in (1, 2):  # a kept-alive connection the server closed: once more on a new one
            connection = self.connections.get(key)
            if connection is None:
                kind = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
                connection = self.connections[key] = kind(parts.netloc, timeout=self.timeout)
            try:
                connection.request("POST", target, body, headers)
                answer = connection.getresponse()
                answer.read()
                if answer.will_close:
                    connection.close()
                    del self.connections[key]
                return answer.status
            except (OSError, http.client.HTTPException) as exc:
                connection.close()
                del self.connections[key]
                if attempt == 2:
                    return f"{type(exc).__name__}: {exc}"[:200]
        return "unreachable"


def _error(code: int, message: str, status: int) -> dict:
    return {"code": code, "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}", "status": status}


@dataclass
class Fault:
    status: int
    code: int
    message: str


class _Server(ThreadingHTTPServer):
    # Many clients connecting at once (a send loop's thread pool) wait in the backlog
    # rather than being refused.
    request_queue_size = 256


@dataclass
class FakeTwilio(ThreadedFakeServer):
    server_class = _Server
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
    # Numbers whose messages end "undelivered" (ErrorCode 30003) in their status callbacks,
    # and a suffix that makes any number so ("" none; the standalone fake's is "0000").
    undeliverable: set[str] = field(default_factory=set)
    undeliverable_suffix: str = ""
    # Seconds after the 201 before the first status callback, and between the two.
    callback_delay_seconds: float = 0.2
    # False: StatusCallback is accepted and ignored (a benchmark measures the sending alone).
    post_callbacks: bool = True
    # Every status callback posted: (url, form fields, the answer's status or an error text).
    callbacks: list[tuple[str, dict[str, str], int | str]] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    # Callbacks not yet posted, soonest first: (due, order, url, message, token, status).
    _queue: list = field(default_factory=list, repr=False)
    _pending: threading.Condition = field(default_factory=threading.Condition, repr=False)
    _order: itertools.count = field(default_factory=itertools.count, repr=False)
    _posters: list = field(default_factory=list, repr=False)
    _closed: bool = False

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

    def callbacks_wait(self, count: int, timeout: float = 10) -> list[tuple[str, dict[str, str], int | str]]:
        """The status callbacks posted, once there are at least `count` (AssertionError
        after `timeout` seconds)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                if len(self.callbacks) >= count:
                    return list(self.callbacks)
            time.sleep(0.02)
        raise AssertionError(f"{len(self.callbacks)} status callbacks posted, not {count}")

    def close(self) -> None:
        super().close()
        with self._pending:
            self._closed = True
            self._pending.notify_all()

    # -- status callbacks --------------------------------------------------------------

    def is_undeliverable(self, to: str) -> bool:
        suffix = self.undeliverable_suffix
        return to in self.undeliverable or bool(suffix and to.endswith(suffix))

    def _callback_due(self, due: float, url: str, message: dict, auth_token: str, status: str) -> None:
        with self._pending:
            if not self._posters:
                self._closed = False
                self._posters = [threading.Thread(target=self._callbacks_post, daemon=True)
                                 for _ in range(CALLBACK_THREADS)]
                for poster in self._posters:
                    poster.start()
            heapq.heappush(self._queue, (due, next(self._order), url, message, auth_token, status))
            self._pending.notify()

    def _callback_next(self):
        with self._pending:
            while not self._closed:
                wait = self._queue[0][0] - time.monotonic() if self._queue else None
                if wait is not None and wait <= 0:
                    return heapq.heappop(self._queue)
                self._pending.wait(wait)
            self._posters = []
            return None

    def _callbacks_post(self) -> None:
        """A poster: each callback when it is due. A message's last status is scheduled
        only once its "sent" was posted, so they arrive in that order."""
        poster = _Poster()
        while (item := self._callback_next()) is not None:
            _, _, url, message, auth_token, status = item
            params = {"MessageSid": message["sid"], "SmsSid": message["sid"],
                      "AccountSid": message["account_sid"], "From": message["from"] or "",
                      "To": message["to"], "MessageStatus": status, "SmsStatus": status,
                      "ApiVersion": API_VERSION}
            if message["messaging_service_sid"]:
                params["MessagingServiceSid"] = message["messaging_service_sid"]
            if status == "undelivered":
                params["ErrorCode"] = UNDELIVERED_CODE
            with self.lock:
                message["status"] = status
                if status == "undelivered":
                    message["error_code"] = int(UNDELIVERED_CODE)
            outcome = poster.post(url, params, auth_token)
            with self.lock:
                self.callbacks.append((url, params, outcome))
            if status == "sent":
                last = "undelivered" if self.is_undeliverable(message["to"]) else "delivered"
                self._callback_due(time.monotonic() + self.callback_delay_seconds, url, message,
                                   auth_token, last)

    # -- a customer's reply --------------------------------------------------------------

    def inbound_post(self, *, url: str, sender: str, to: str, body: str,
                     account_sid: str = "") -> requests.Response:
        """Post the inbound-message webhook Twilio sends when `sender` texts `body` to `to`."""
        account_sid = account_sid or self.account_sid
        token = self._token_of(account_sid)
        if token is None:
            raise ValueError(f"Unknown account {account_sid}")
        params = {"MessageSid": "SM" + secrets.token_hex(16), "SmsMessageSid": "", "AccountSid": account_sid,
                  "From": sender, "To": to, "Body": body, "NumMedia": "0", "NumSegments": "1",
                  "SmsStatus": "received", "ApiVersion": API_VERSION}
        params["SmsMessageSid"] = params["MessageSid"]
        with requests.Session() as session:
            return signed_post(session, url, params, token)

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

    def message_created(self, account_sid: str, form: dict[str, str], message: dict) -> None:
        """After the 201 went out: its status callbacks, when asked for."""
        url = form.get("StatusCallback", "")
        if url and self.post_callbacks:
            self._callback_due(time.monotonic() + self.callback_delay_seconds, url, message,
                               self._token_of(account_sid) or "", "sent")


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTwilio
    # Keep-alive: a pooled client sends many messages on one connection.
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True

    def log_message(self, *args):
        pass

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        # The headers and the body in one write: two small ones would wait on the
        # client's delayed ACK.
        self._headers_buffer.append(b"\r\n")
        self._headers_buffer.append(data)
        self.wfile.write(b"".join(self._headers_buffer))
        self._headers_buffer = []

    def _inbound(self, form: dict[str, str]) -> None:
        missing = [name for name in ("From", "To", "Body", "Url") if not form.get(name)]
        if missing:
            return self._json(400, {"error": f"{', '.join(missing)} required"})
        try:
            answer = self.fake.inbound_post(url=form["Url"], sender=form["From"], to=form["To"],
                                            body=form["Body"], account_sid=form.get("AccountSid", ""))
        except ValueError as exc:
            return self._json(400, {"error": str(exc)})
        except requests.RequestException as exc:
            return self._json(502, {"error": f"{form['Url']} did not answer: {exc}"[:300]})
        return self._json(200, {"status": answer.status_code,
                                "content_type": answer.headers.get("Content-Type", ""), "body": answer.text})

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
        if parts.path == "/fake/inbound" and method == "POST":
            return self._inbound(form)
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
            self._json(status, payload)
            if status == 201:
                fake.message_created(account_sid, form, payload)
            return None
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
    parser.add_argument("--undeliverable-suffix", default=DEMO_UNDELIVERABLE_SUFFIX,
                        help="numbers ending in this are undelivered (ErrorCode 30003); '' none")
    parser.add_argument("--callback-delay", type=float, default=1.0,
                        help="seconds before each status callback")
    parser.add_argument("--no-callbacks", action="store_true", help="post no status callbacks")
    args = parser.parse_args(argv)
    fake = FakeTwilio(account_sid=args.account_sid, auth_token=args.auth_token,
                      undeliverable_suffix=args.undeliverable_suffix,
                      callback_delay_seconds=args.callback_delay,
                      post_callbacks=not args.no_callbacks).start(args.host, args.port)
    print(f"Fake Twilio listening on {fake.url} (TWILIO_API_BASE)", flush=True)
    print(f"  account SID: {fake.account_sid}")
    print(f"  outbox:      {fake.url}/fake/messages.json", flush=True)
    if fake.undeliverable_suffix:
        print(f"  numbers ending in {fake.undeliverable_suffix} are undelivered (30003)")
    print(f"  a reply:     curl -d From=+13035550142 -d To={DEFAULT_FROM} -d Body=STOP "
          f"-d Url=<the inbound webhook URL> {fake.url}/fake/inbound", flush=True)
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

