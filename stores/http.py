"""Facts about the request that several apps need."""

import ipaddress

from django.conf import settings


def client_address(request) -> str:
    """The client's address. Behind TRUSTED_PROXIES reverse proxies it is the one the
    outermost of them saw, from X-Forwarded-For (each proxy appends the address it got
    the request from); anything before that in the header is the client's own say."""
    hops = settings.TRUSTED_PROXIES
    forwarded = [part.strip() for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",")
                 if part.strip()]
    if hops and len(forwarded) >= hops:
        return forwarded[-hops]
    return request.META.get("REMOTE_ADDR", "")


def valid_ip(value: str) -> str | None:
    """`value` when it is an IPv4 or IPv6 address, else None."""
    try:
        return str(ipaddress.ip_address((value or "").strip()))
    except ValueError:
        return None
