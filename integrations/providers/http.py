"""One HTTP client for the outside APIs the integrations call (Cova, Microsoft Graph).

`ApiClient` owns what each such client needs and none writes again:

- the guarded session (`stores.outbound.outbound_session`): a URL that is, or redirects
  to, a private or local address is refused before anything is sent to it;
- timeouts: one number for connecting and for waiting for the answer, or a pair;
- retries with exponential backoff (`backoff`, twice that, four times...) up to
  `max_attempts`, a Retry-After in seconds honoured up to MAX_RETRY_AFTER, and only where
  another try cannot do anything twice: a connection that never carried the request, a
  429 (refused before anything was done), and for an idempotent request also a read
  timeout, a dropped connection and a 5xx;
- every failure as a ProviderError naming the service, its host and the attempts made,
  `acted_maybe` when a request that changes something may have been done all the same;
- the client's secrets (and its access tokens) scrubbed out of any text it passes on;
- `TokenCache`: OAuth access tokens per credential key, renewed shortly before they
  expire, fetched by one thread at a time.

A client says how it is named (`service`), which secrets it holds (`_secrets`) and, where
its messages differ, overrides `_problem` / `_unreachable`. Statuses other than 429 and
5xx come back to the client as they are: what a 401, 403 or 404 means is the API's own.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable
from urllib.parse import urlsplit

import requests
import urllib3

from stores.errors import OutboundRefused
from stores.outbound import outbound_session

from .base import ConnectionProblem, ProviderError

logger = logging.getLogger(__name__)

# Longest Retry-After honoured; a server asking for more is treated as unavailable sooner.
MAX_RETRY_AFTER = 30.0
# Renew an access token this long before it expires, so a request in flight never carries
# a token that lapses on the way.
TOKEN_SKEW_SECONDS = 60.0


class TokenCache:
    """Access tokens by credential key (see `credential_key`). `get` answers the cached
    token while it has more than `skew` seconds left, else calls `fetch` -> (token,
    lifetime in seconds) once, other threads asking for the same key waiting for its
    answer. With `skew_at_most_half` a token living less than twice the skew is kept for
    half its life; without, it is not kept at all."""

    def __init__(self, *, skew: float = TOKEN_SKEW_SECONDS, skew_at_most_half: bool = True,
                 clock: Callable[[], float] = time.monotonic):
        self.skew = float(skew)
        self.skew_at_most_half = skew_at_most_half
        self._clock = clock
        self._lock = threading.Lock()
        self._key_locks: dict[str, threading.Lock] = {}
        self._tokens: dict[str, tuple[str, float]] = {}  # key -> (token, renew at)

    def get(self, key: str, fetch: Callable[[], tuple[str, float]]) -> str:
        with self._lock:
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:
            if self.cached(key):
                return self._tokens[key][0]
            with self._lock:
                self._tokens.pop(key, None)
            token, lifetime = fetch()
            lifetime = float(lifetime)
            skew = min(self.skew, lifetime / 2) if self.skew_at_most_half else self.skew
            renew_at = self._clock() + lifetime - skew
            with self._lock:
                self._tokens[key] = (token, renew_at)
            return token

    def cached(self, key: str) -> bool:
        """True while the key's token is there and not due for renewal."""
        with self._lock:
            entry = self._tokens.get(key)
        return entry is not None and self._clock() < entry[1]

    def drop(self, key: str, token: str | None = None) -> None:
        """Forget the key's token (only if it is still `token`, when given: another thread
        may have renewed it already)."""
        with self._lock:
            entry = self._tokens.get(key)
            if entry is not None and (token is None or entry[0] == token):
                del self._tokens[key]

    def tokens(self) -> list[str]:
        with self._lock:
            return [token for token, _ in self._tokens.values()]


def credential_key(*parts) -> str:
    """A cache key for the credential made of `parts` (URLs, ids, secrets): a digest, so
    the key never shows a secret, and a changed secret never finds the old one's token."""
    return hashlib.sha256("\x00".join(str(part) for part in parts).encode()).hexdigest()


class ApiClient:
    # How messages name the other side ("Cova"); empty: by its host alone.
    service: str = ""
    # Added to the message when a request that changes something may have been done.
    unsure_note: str = ""
    # When the last try still answers 429 or 5xx: True raises UNREACHABLE naming the status
    # and the attempts; False hands that answer back for the client to word.
    raise_after_retries: bool = True

    def __init__(self, *, timeout: float | tuple[float, float], max_attempts: int = 1,
                 backoff: float = 0.5, max_retry_after: float = MAX_RETRY_AFTER,
                 token_skew: float = TOKEN_SKEW_SECONDS, token_skew_at_most_half: bool = True):
        self.timeout = timeout
        self.max_attempts = max(1, int(max_attempts))
        self.backoff = float(backoff)
        self.max_retry_after = float(max_retry_after)
        self._session = outbound_session()
        self._sleep = time.sleep
        self._clock = time.monotonic
        self.tokens = TokenCache(skew=token_skew, skew_at_most_half=token_skew_at_most_half,
                                 clock=lambda: self._clock())

    # -- what a client says about itself ---------------------------------------------------

    def _secrets(self) -> Iterable[str]:
        """The client's secrets (client secret, password...) that no message may show."""
        return ()

    @staticmethod
    def _host(url: str) -> str:
        return urlsplit(url).netloc or url

    def _scrub(self, text: str) -> str:
        """`text` (e.g. an error description from the other side) without the client's
        secrets or access tokens in it."""
        text = str(text)
        for secret in (*self._secrets(), *self.tokens.tokens()):
            secret = str(secret or "")
            if len(secret) >= 3:
                text = text.replace(secret, "***")
        return text

    @property
    def read_timeout(self) -> float:
        return float(self.timeout[1] if isinstance(self.timeout, tuple) else self.timeout)

    def _problem(self, kind: str, host: str, status: int = 0) -> str:
        """What went wrong on one try, in a few words: `kind` is "timeout", "connect" or
        "status" (a 429 or 5xx answer)."""
        name = self.service
        if kind == "timeout":
            return (f"{name} did not answer within {self.read_timeout:g} s at {host}" if name
                    else f"{host} did not answer in time")
        if kind == "connect":
            return f"Could not connect to {name} at {host}" if name else f"Could not connect to {host}"
        if status == 429:
            return f"{name or host} kept answering HTTP 429 Too Many Requests at {host}"
        return f"{name or host} answered HTTP {status} at {host}"

    def _unreachable(self, problem: str, attempts: int, unsure: bool = False) -> ProviderError:
        note = self.unsure_note if unsure else ""
        tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
        return ProviderError(ConnectionProblem.UNREACHABLE, self._scrub(f"{problem} ({tries}{note})."),
                             acted_maybe=unsure)

    # -- sending ---------------------------------------------------------------------------

    def _send(self, method: str, url: str, *, idempotent: bool = True, **kwargs) -> requests.Response:
        """One request, tried again as the module docstring says; any answer but a 429 or
        5xx that is retried comes back as it is."""
        host = self._host(url)
        where = self.service or host
        problem = ""
        for attempt in range(self.max_attempts):
            delay = self.backoff * 2 ** attempt
            last = attempt + 1 == self.max_attempts
            try:
                response = self._session.request(method, url, timeout=self.timeout, **kwargs)
            except OutboundRefused as exc:
                # Nothing was sent; the URL (or where it redirected) has to change first.
                raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                    self._scrub(f"Not calling {where}: {exc.message}")) from exc
            except requests.Timeout as exc:
                problem = self._problem("timeout", host)
                if not idempotent and not isinstance(exc, requests.ConnectTimeout):
                    raise self._unreachable(problem, attempt + 1, unsure=True) from exc
                if last:
                    raise self._unreachable(problem, attempt + 1) from exc
            except requests.ConnectionError as exc:
                problem = self._problem("connect", host)
                if not idempotent and not never_sent(exc):
                    raise self._unreachable(problem, attempt + 1, unsure=True) from exc
                if last:
                    raise self._unreachable(problem, attempt + 1) from exc
            except requests.RequestException as exc:
                raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                    f"Could not call {self.service + ' at ' if self.service else ''}"
                                    f"{host}: {type(exc).__name__}.") from exc
            else:
                status = response.status_code
                if status != 429 and (status < 500 or not idempotent):
                    return response
                if last and not self.raise_after_retries:
                    return response
                wait = retry_after(response.headers.get("Retry-After"))
                if wait is not None:
                    delay = min(wait, self.max_retry_after)
                problem = self._problem("status", host, status)
                response.close()
                if last:
                    raise self._unreachable(problem, self.max_attempts)
            logger.warning("%s (%s %s, attempt %d of %d); retrying in %.1f s.", problem, method,
                           urlsplit(url).path, attempt + 1, self.max_attempts, delay)
            if delay > 0:
                self._sleep(delay)
        raise AssertionError("unreachable")  # every last attempt returns or raises

    def _bearer(self, key: str, fetch: Callable[[], tuple[str, float]]) -> str:
        """The access token for credential `key`, fetched with `fetch` when there is none
        or it is about to expire."""
        return self.tokens.get(key, fetch)


def json_or_none(response: requests.Response):
    try:
        return response.json()
    except ValueError:
        return None


def retry_after(value) -> float | None:
    """A Retry-After header's seconds; None when absent or an HTTP date (the backoff then)."""
    try:
        seconds = float(str(value).strip())
    except (TypeError, ValueError):
        return None
    if seconds != seconds:  # NaN
        return None
    return max(seconds, 0.0)


def never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection itself failed, so the request never reached the server."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = exc.args[0] if exc.args else None
    reason = getattr(reason, "reason", reason)
    return isinstance(reason, urllib3.exceptions.NewConnectionError)
