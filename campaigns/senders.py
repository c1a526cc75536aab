"""The providers a campaign's messages go through: Twilio's Messages API for SMS (the same
route as the loyalty page's texts, members.sms.sms_route) and Django's email backend.

A sender sends one message and returns the provider's message id, or raises NotSent with
the provider's code, a reason for the page and whether trying again later may help. Each
thread of the send loop's pool gets its own client (its own HTTP or SMTP connection)."""

from __future__ import annotations

import contextlib
import smtplib
import threading
from urllib.parse import urlsplit

import aiohttp
import requests
from anymail.exceptions import AnymailAPIError, AnymailRecipientsRefused
from django.conf import settings
from django.core.mail import EmailMultiAlternatives, get_connection
from django.core.mail.message import make_msgid
from twilio.base.exceptions import TwilioRestException, TwilioServiceException
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.rest import Client

from members.sms import sms_route
from members.sms_twilio import MESSAGING_SERVICE_SID, TWILIO_API_BASE, twilio_client
from stores.errors import DomainError
from stores.outbound import outbound_aiohttp_session

from . import hooks

# Twilio errors that may pass: too many requests, its own trouble, queue overflow.
TWILIO_RETRYABLE = {"20429", "20500", "20503", "30001", "timeout", "unreachable", "request_failed"}


class NotSent(Exception):
    def __init__(self, code: str, detail: str, *, retryable: bool):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail, self.retryable = str(code)[:32], detail[:300], retryable


class TimedAsyncTwilioHttpClient(AsyncTwilioHttpClient):
    """The library's asyncio client with its timeout applied: it passes timeout=None to
    aiohttp, which means none at all, when the caller gives none."""

    async def request(self, *args, timeout=None, **kwargs):
        return await super().request(*args, timeout=self.timeout if timeout is None else timeout, **kwargs)


class SmsSender:
    def __init__(self, company, *, status_callbacks: bool = True):
        self.company = company
        try:
            self.route = sms_route(company)
            self.unreadable = None
        except DomainError as exc:  # the company's stored token no longer decrypts
            self.route, self.unreadable = None, exc
        self.status_callbacks = status_callbacks
        self._callback_base = hooks.status_callback_url(company) if status_callbacks else ""
        self._local = threading.local()

    def _callback_url(self, recipient_id: int | None) -> str:
        """hooks.status_callback_url, its path reversed once per sender."""
        base = self._callback_base
        return f"{base}?r={hooks.base36(recipient_id)}" if recipient_id else base

    def _client(self):
        client = getattr(self._local, "client", None)
        if client is None:
            route = self.route
            client = self._local.client = twilio_client(
                account_sid=route.account_sid, auth_token=route.auth_token, api_base=route.api_base,
                timeout=settings.SMS_TIMEOUT_SECONDS)
        return client

    def _message_args(self, recipient_id: int | None) -> dict:
        """From, and the status callback naming the recipient (it may come back before the
        sid is stored). Raises NotSent when the account cannot send."""
        route = self.route
        if self.unreadable is not None:
            raise NotSent(self.unreadable.code, self.unreadable.message, retryable=False)
        if not (route.account_sid and route.auth_token and route.sender):
            raise NotSent("not_configured", "The Twilio account SID, auth token or sender is missing.",
                          retryable=False)
        args = ({"messaging_service_sid": route.sender} if MESSAGING_SERVICE_SID.match(route.sender)
                else {"from_": route.sender})
        if self.status_callbacks:
            args["status_callback"] = self._callback_url(recipient_id)
        return args

    def send(self, *, to: str, body: str, recipient_id: int | None = None, **_) -> str:
        if self.route is not None and self.route.provider == "outbox":
            return ""  # the platform records, nothing leaves the machine
        args = self._message_args(recipient_id)
        try:
            return self._client().messages.create(to=to, body=body, **args).sid or ""
        except Exception as exc:
            mapped = _not_sent(exc)
            if mapped is exc:
                raise
            raise mapped from exc

    # -- the asynchronous path: the same library's asyncio client, many messages in flight
    # from one thread (about three times the messages a second of a thread pool)

    @property
    def sends_async(self) -> bool:
        return self.route is not None and self.route.provider == "twilio"

    async def _async_client(self):
        client = getattr(self, "_aclient", None)
        if client is None:
            route = self.route
            http = TimedAsyncTwilioHttpClient(pool_connections=False, timeout=settings.SMS_TIMEOUT_SECONDS)
            # The guarded session (private addresses refused unless allow-listed), kept open.
            http.session = outbound_aiohttp_session(route.api_base or TWILIO_API_BASE,
                                                    timeout=settings.SMS_TIMEOUT_SECONDS)
            client = Client(route.account_sid, route.auth_token, account_sid=route.account_sid,
                            http_client=http)
            client.region = client.edge = None
            client.api.base_url = (route.api_base or TWILIO_API_BASE).rstrip("/")
            self._aclient, self._ahttp = client, http
        return client

    async def send_async(self, *, to: str, body: str, recipient_id: int | None = None, **_) -> str:
        args = self._message_args(recipient_id)
        try:
            client = await self._async_client()
            message = await client.messages.create_async(to=to, body=body, **args)
        except Exception as exc:
            mapped = _not_sent(exc)
            if mapped is exc:
                raise
            raise mapped from exc
        return message.sid or ""

    async def aclose(self) -> None:
        http = getattr(self, "_ahttp", None)
        if http is not None:
            await http.close()
            self._aclient = self._ahttp = None


def _not_sent(exc: Exception) -> Exception:
    """Twilio's answer or the network's trouble, from either client, as NotSent: whether
    trying again may help, and the reason for the page. Anything else comes back as is."""
    if isinstance(exc, TwilioRestException):
        code = str(exc.code or f"http_{exc.status}")
        detail = (exc.msg or "").removeprefix("Unable to create record:").strip() or f"HTTP {exc.status}"
        return NotSent(code, detail, retryable=code in TWILIO_RETRYABLE or exc.status >= 500)
    if isinstance(exc, TwilioServiceException):  # the newer (RFC 9457) error shape
        code = str(exc.code or f"http_{exc.status}")
        return NotSent(code, exc.detail or exc.title or f"HTTP {exc.status}",
                       retryable=code in TWILIO_RETRYABLE or (exc.status or 0) >= 500)
    if isinstance(exc, requests.Timeout | TimeoutError):
        return NotSent("timeout", f"Twilio did not answer within {settings.SMS_TIMEOUT_SECONDS:g} seconds.",
                       retryable=True)
    if isinstance(exc, requests.ConnectionError | aiohttp.ClientConnectionError):
        return NotSent("unreachable", "Twilio could not be reached.", retryable=True)
    if isinstance(exc, requests.RequestException | aiohttp.ClientError):
        return NotSent("request_failed", str(exc)[:200], retryable=True)
    if isinstance(exc, DomainError):  # OutboundRefused: the API base is a private address
        return NotSent(exc.code, exc.message, retryable=False)
    return exc


class EmailSender:
    def __init__(self, company, *, from_email: str):
        self.from_email = from_email
        self._local = threading.local()

    def _connection(self):
        connection = getattr(self._local, "connection", None)
        if connection is None:
            connection = self._local.connection = get_connection(fail_silently=False)
        return connection

    def send(self, *, to: str, body: str, subject: str = "", html: str = "", headers=None, **_) -> str:
        message_id = make_msgid(domain=urlsplit(settings.PUBLIC_BASE_URL).hostname or "localhost")
        message = EmailMultiAlternatives(subject=subject, body=body, from_email=self.from_email, to=[to],
                                         headers={**(headers or {}), "Message-ID": message_id},
                                         connection=self._connection())
        if html:
            message.attach_alternative(html, "text/html")
        try:
            message.send()
        except AnymailRecipientsRefused as exc:
            raise NotSent("refused", str(exc)[:300], retryable=False) from exc
        except AnymailAPIError as exc:  # a service's API (EMAIL_BACKEND is one of anymail's)
            status = exc.status_code
            raise NotSent(f"http_{status}" if status else "unreachable", str(exc)[:300],
                          retryable=status is None or status == 429 or status >= 500) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, reason = next(iter(exc.recipients.values()), (550, b"refused"))
            raise NotSent(f"smtp_{code}", _text(reason), retryable=400 <= code < 500) from exc
        except smtplib.SMTPResponseException as exc:
            self._drop()
            raise NotSent(f"smtp_{exc.smtp_code}", _text(exc.smtp_error),
                          retryable=400 <= exc.smtp_code < 500) from exc
        except (TimeoutError, smtplib.SMTPException, OSError) as exc:
            self._drop()
            raise NotSent("smtp_unreachable", f"The mail server could not be reached: {exc}"[:300],
                          retryable=True) from exc
        status = getattr(message, "anymail_status", None)
        if status is not None and status.message_id is not None and not isinstance(status.message_id, set):
            return str(status.message_id)[:64]  # the service's id for the message
        return message_id.strip("<>")[:64]

    def _drop(self):
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with contextlib.suppress(Exception):  # already broken
                connection.close()


def _text(value) -> str:
    return (value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value))[:300]
