"""The HTTP client base of the outside APIs (integrations/providers/http.py) against a local
server: what is tried again and what is not, backoff and Retry-After, the token cache, and
no secret in any message."""

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from integrations.providers.base import ConnectionProblem, ProviderError
from integrations.providers.http import ApiClient, TokenCache, credential_key
from stores.fake_server import ThreadedFakeServer

SECRET = "s3cret-Client-Value"


class ScriptedServer(ThreadedFakeServer):
    """Answers each request with the next scripted (status, headers, body, delay) for its
    method, 200 {"ok": true} once the script is used up; records (method, path, body)."""

    def __init__(self):
        self.script: dict[str, list[tuple[int, dict, dict, float]]] = {"GET": [], "POST": []}
        self.requests: list[tuple[str, str, str]] = []
        self.tokens_issued = 0
        self.token_lifetime = 3600
        self.lock = threading.Lock()

    def then(self, method: str, status: int, *, headers: dict | None = None, body: dict | None = None,
             delay: float = 0.0) -> "ScriptedServer":
        self.script[method].append((status, headers or {}, body if body is not None else {}, delay))
        return self


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        pass  # a client that timed out and hung up


class _Handler(BaseHTTPRequestHandler):
    fake: ScriptedServer
    protocol_version = "HTTP/1.1"
    timeout = 10

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    def _answer(self, method: str) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode() if length else ""
        fake = self.fake
        with fake.lock:
            fake.requests.append((method, self.path, body))
            step = fake.script[method].pop(0) if fake.script[method] else None
            if step is None and self.path == "/token":
                fake.tokens_issued += 1
                step = (200, {}, {"access_token": f"token-{fake.tokens_issued}-abcdef",
                                  "expires_in": fake.token_lifetime}, 0.0)
        status, headers, answer, delay = step or (200, {}, {"ok": True}, 0.0)
        if delay:
            time.sleep(delay)
        data = json.dumps(answer).encode()
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:
            pass

    def do_GET(self):  # noqa: N802 - the stdlib's name
        self._answer("GET")

    def do_POST(self):  # noqa: N802 - the stdlib's name
        self._answer("POST")


ScriptedServer.handler_class = _Handler
ScriptedServer.server_class = _Server


class Client(ApiClient):
    service = "Acme"
    unsure_note = "; the order may or may not have been placed"

    def __init__(self, url: str, **kwargs):
        kwargs.setdefault("timeout", 2.0)
        kwargs.setdefault("max_attempts", 4)
        super().__init__(**kwargs)
        self.url = url
        self.sleeps: list[float] = []
        self._sleep = self.sleeps.append

    def _secrets(self):
        return (SECRET,)

    def token(self) -> str:
        return self._bearer(credential_key(self.url, "client", SECRET), self._fetch_token)

    def _fetch_token(self) -> tuple[str, float]:
        response = self._send("POST", f"{self.url}/token", data={"client_secret": SECRET})
        body = response.json()
        return body["access_token"], body["expires_in"]


@pytest.fixture
def server(outbound_allow):
    with ScriptedServer() as fake:
        outbound_allow(fake.url)
        yield fake


def problem_of(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def host_of(fake) -> str:
    return fake.url.removeprefix("http://")


# -- what is tried again --------------------------------------------------------------------


def test_a_503_then_200_is_retried_after_the_backoff(server):
    server.then("GET", 503)
    client = Client(server.url, backoff=0.25)

    response = client._send("GET", f"{server.url}/orders")

    assert response.status_code == 200 and response.json() == {"ok": True}
    assert [r[:2] for r in server.requests] == [("GET", "/orders"), ("GET", "/orders")]
    assert client.sleeps == [0.25]


def test_backoff_doubles_and_the_last_failure_names_host_status_and_attempts(server):
    for _ in range(4):
        server.then("GET", 502)
    client = Client(server.url, backoff=0.5)

    error = problem_of(lambda: client._send("GET", f"{server.url}/orders"))

    assert client.sleeps == [0.5, 1.0, 2.0]
    assert len(server.requests) == 4
    assert error.problem == ConnectionProblem.UNREACHABLE and error.retryable
    assert error.message == f"Acme answered HTTP 502 at {host_of(server)} (4 attempts)."


def test_a_post_answered_503_is_not_sent_again(server):
    server.then("POST", 503)
    client = Client(server.url)

    response = client._send("POST", f"{server.url}/orders", idempotent=False, json={"n": 1})

    # The server may have placed the order: the caller decides what a 503 means.
    assert response.status_code == 503
    assert len(server.requests) == 1 and client.sleeps == []


def test_a_post_that_timed_out_after_sending_is_not_sent_again(server):
    server.then("POST", 200, delay=1.0)
    client = Client(server.url, timeout=0.2)

    error = problem_of(lambda: client._send("POST", f"{server.url}/orders", idempotent=False,
                                            json={"n": 1}))

    assert len(server.requests) == 1
    assert error.problem == ConnectionProblem.UNREACHABLE
    assert error.acted_maybe and not error.retryable
    assert error.message == (f"Acme did not answer within 0.2 s at {host_of(server)} "
                             "(1 attempt; the order may or may not have been placed).")


def test_a_get_that_timed_out_is_tried_again(server):
    server.then("GET", 200, delay=1.0)
    client = Client(server.url, timeout=0.2, backoff=0)

    assert client._send("GET", f"{server.url}/orders").json() == {"ok": True}
    assert len(server.requests) == 2


def test_a_post_that_could_not_connect_is_tried_again(outbound_allow):
    # given a port nobody listens on: the request was certainly never sent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    outbound_allow(url)
    client = Client(url, max_attempts=3, backoff=0.1)

    error = problem_of(lambda: client._send("POST", f"{url}/orders", idempotent=False, json={}))

    assert client.sleeps == [0.1, 0.2]
    assert error.problem == ConnectionProblem.UNREACHABLE and error.retryable
    assert error.message == f"Could not connect to Acme at 127.0.0.1:{port} (3 attempts)."


def test_answers_that_will_not_change_are_not_tried_again(server):
    server.then("GET", 404).then("GET", 401)
    client = Client(server.url)

    assert client._send("GET", f"{server.url}/a").status_code == 404
    assert client._send("GET", f"{server.url}/b").status_code == 401
    assert len(server.requests) == 2 and client.sleeps == []


# -- Retry-After ----------------------------------------------------------------------------


def test_retry_after_is_honoured_instead_of_the_backoff(server):
    server.then("POST", 429, headers={"Retry-After": "2"})
    client = Client(server.url, backoff=0.5)

    # a 429 was refused before anything was done: even a POST is sent again
    response = client._send("POST", f"{server.url}/orders", idempotent=False, json={})

    assert response.status_code == 200
    assert client.sleeps == [2.0]
    assert len(server.requests) == 2


def test_a_long_retry_after_is_capped(server):
    server.then("GET", 503, headers={"Retry-After": "3600"}).then("GET", 429, headers={"Retry-After": "nan"})
    client = Client(server.url, backoff=0.5, max_retry_after=5)

    assert client._send("GET", f"{server.url}/orders").status_code == 200
    # an hour is capped at 5 s; an unreadable value falls back to the backoff (0.5 * 2)
    assert client.sleeps == [5.0, 1.0]


def test_throttling_that_never_ends_is_unreachable(server):
    for _ in range(2):
        server.then("GET", 429, headers={"Retry-After": "0"})
    client = Client(server.url, max_attempts=2)

    error = problem_of(lambda: client._send("GET", f"{server.url}/orders"))

    assert error.message == (f"Acme kept answering HTTP 429 Too Many Requests at {host_of(server)} "
                             "(2 attempts).")
    assert client.sleeps == []


# -- the token cache ------------------------------------------------------------------------


def test_a_token_is_fetched_once_for_many_calls_from_many_threads(server):
    client = Client(server.url)
    tokens = []

    def call():
        for _ in range(5):
            tokens.append(client.token())

    threads = [threading.Thread(target=call) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(tokens) == 40 and set(tokens) == {"token-1-abcdef"}
    assert server.tokens_issued == 1


def test_a_token_is_fetched_again_shortly_before_it_expires(server):
    client = Client(server.url)
    now = [1000.0]
    client._clock = lambda: now[0]

    assert client.token() == "token-1-abcdef"
    now[0] += 3600 - 61
    assert client.token() == "token-1-abcdef"
    now[0] += 1  # 60 s before it expires
    assert client.token() == "token-2-abcdef"
    assert server.tokens_issued == 2


def test_a_short_lived_token_is_kept_for_half_its_life():
    now = [0.0]
    cache = TokenCache(skew=60, clock=lambda: now[0])
    fetched = []

    def fetch():
        fetched.append(1)
        return f"t{len(fetched)}", 30

    assert cache.get("k", fetch) == "t1"
    now[0] = 14.9
    assert cache.get("k", fetch) == "t1"
    now[0] = 15.0
    assert cache.get("k", fetch) == "t2"
    # each credential has its own token; dropping one keeps the other
    assert cache.get("other", fetch) == "t3"
    cache.drop("k", token="not-this-one")
    assert cache.cached("k")
    cache.drop("k")
    assert not cache.cached("k") and cache.cached("other")


def test_a_credential_key_does_not_show_its_secret():
    key = credential_key("https://login.example.com", "client", SECRET)
    assert SECRET not in key
    assert key != credential_key("https://login.example.com", "client", SECRET + "x")


# -- secrets --------------------------------------------------------------------------------


def test_secrets_and_tokens_never_appear_in_messages(server, outbound_allow):
    client = Client(server.url, max_attempts=1)
    token = client.token()

    # text from the other side that repeats what we sent is scrubbed
    assert client._scrub(f"bad secret {SECRET} for token {token}") == "bad secret *** for token ***"

    messages = []
    # a URL (here with the secret in its query) at a private address is refused unsent
    messages.append(problem_of(lambda: client._send("GET", f"http://10.0.0.1/x?key={SECRET}")).message)
    server.then("GET", 200, delay=1.0)
    messages.append(problem_of(lambda: Client(server.url, timeout=0.2, max_attempts=1)._send(
        "GET", f"{server.url}/x?key={SECRET}")).message)
    server.then("GET", 500)
    messages.append(problem_of(lambda: client._send("GET", f"{server.url}/x?key={SECRET}")).message)

    assert messages[0].startswith("Not calling Acme: The URL http://10.0.0.1/x?key=*** points at a private")
    for message in messages:
        assert SECRET not in message and token not in message
