"""Twilio's Messages API, through the `twilio` library.

One request per message: POST {api_base}/2010-04-01/Accounts/{AccountSid}/Messages.json,
form-encoded To, Body and From (a phone number) or MessagingServiceSid (MG...), with HTTP
Basic auth (account SID, auth token). Twilio answers 201 with the message (its sid is
"SM" + 32 hex digits), or an error {"code": 20003, "message": ..., "more_info": ...,
"status": 401}.

The request goes through `stores.outbound.outbound_session()`, like every call the server
makes on a merchant's behalf, with a timeout; `api_base` (settings.TWILIO_API_BASE) points
the client at another host, the local fake in tests and `make run`.
"""

from __future__ import annotations

import re

import requests
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http.http_client import TwilioHttpClient
from twilio.rest import Client

from stores.errors import DomainError
from stores.outbound import outbound_session

TWILIO_API_BASE = "https://api.twilio.com"
MESSAGING_SERVICE_SID = re.compile(r"^MG[0-9a-fA-F]{32}$")


class TwilioNotSent(Exception):
    """Twilio refused the message or could not be reached. `code` is Twilio's error code
    (or a short word for a network failure) and `detail` its message, for the operator."""

    def __init__(self, code: str, detail: str):
        super().__init__(f"{code}: {detail}")
        self.code, self.detail = str(code), detail


class GuardedTwilioHttpClient(TwilioHttpClient):
    """twilio's own HTTP client on the project's guarded session (private addresses
    refused unless allow-listed, no proxy variables or .netrc), with a timeout."""

    def __init__(self, *, timeout: float):
        super().__init__(pool_connections=True, timeout=timeout)
        self.session = outbound_session()


def twilio_client(*, account_sid: str, auth_token: str, api_base: str = TWILIO_API_BASE,
                  timeout: float = 5.0) -> Client:
    client = Client(account_sid, auth_token, account_sid=account_sid,
                    http_client=GuardedTwilioHttpClient(timeout=timeout))
    # No TWILIO_REGION / TWILIO_EDGE from this host's variables rewriting the host name:
    # the request goes to api_base and nowhere else.
    client.region = client.edge = None
    client.api.base_url = (api_base or TWILIO_API_BASE).rstrip("/")
    return client


def twilio_message_send(*, account_sid: str, auth_token: str, sender: str, to: str, body: str,
                        api_base: str = TWILIO_API_BASE, timeout: float = 5.0) -> str:
    """Send one text message; its Twilio sid. Raises TwilioNotSent."""
    if not (account_sid and auth_token and sender):
        raise TwilioNotSent("not_configured", "The Twilio account SID, auth token or sender is missing.")
    client = twilio_client(account_sid=account_sid, auth_token=auth_token, api_base=api_base,
                           timeout=timeout)
    sender_kwargs = ({"messaging_service_sid": sender} if MESSAGING_SERVICE_SID.match(sender)
                     else {"from_": sender})
    try:
        message = client.messages.create(to=to, body=body, **sender_kwargs)
    except TwilioRestException as exc:
        # The library's message is "Unable to create record: " + Twilio's own.
        detail = (exc.msg or "").removeprefix("Unable to create record:").strip()
        raise TwilioNotSent(exc.code or f"http_{exc.status}", detail or f"HTTP {exc.status}") from exc
    except TwilioServiceException as exc:  # the newer (RFC 9457) error shape
        raise TwilioNotSent(exc.code or f"http_{exc.status}",
                            exc.detail or exc.title or f"HTTP {exc.status}") from exc
    except requests.Timeout as exc:
        raise TwilioNotSent("timeout", f"Twilio did not answer within {timeout:g} seconds.") from exc
    except requests.ConnectionError as exc:
        raise TwilioNotSent("unreachable", f"Twilio could not be reached at {api_base}.") from exc
    except requests.RequestException as exc:
        raise TwilioNotSent("request_failed", str(exc)[:200]) from exc
    except DomainError as exc:  # OutboundRefused: api_base is a private address
        raise TwilioNotSent(exc.code, exc.message) from exc
    except (TwilioException, ValueError) as exc:  # an answer that is not Twilio's JSON
        raise TwilioNotSent("bad_answer", str(exc)[:200]) from exc
    return message.sid or ""
