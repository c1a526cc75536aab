"""Shared steps of the customer page tests: open the page, ask for a code, read it from the
outbox (SentMessage), enter it."""

import html
import re

from django.core.cache import cache

from members.models import LoyaltyPageSettings, SentMessage


def page_on(company, **fields) -> LoyaltyPageSettings:
    settings, _ = LoyaltyPageSettings.objects.update_or_create(company=company,
                                                               defaults={"enabled": True, **fields})
    return settings


def last_code(company, phone: str) -> str:
    message = SentMessage.objects.filter(company=company, to=phone, purpose="sign_in").order_by("-id").first()
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def ask_code(client, company, phone: str, **extra):
    return client.post(f"/c/{company.slug}/sign-in/", {"phone": phone}, **extra)


def enter_code(client, company, code: str):
    return client.post(f"/c/{company.slug}/sign-in/code/", {"code": code})


def sign_in(client, company, phone: str):
    """Ask for a code and enter it; returns the response to the code."""
    response = ask_code(client, company, phone)
    assert response.status_code == 302, text(response)[:2000]
    return enter_code(client, company, last_code(company, phone))


def text(response) -> str:
    """The page as a person reads it (entities decoded)."""
    return html.unescape(response.content.decode())


def send_limits_reset() -> None:
    """Forget the sign-in send limits this test process counted, and nothing else: not
    cache.clear(), which empties the whole Redis database, other test processes' keys and
    the Celery broker's queues with it."""
    client = cache._cache.get_client(None, write=True)
    for key in client.scan_iter(match=cache.make_key("members:send:*")):
        client.delete(key)
