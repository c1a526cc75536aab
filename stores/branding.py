"""A company's branding: its logo and accent colour, on the staff pages and the kiosk.

The accent reaches the pages as two CSS custom properties in a small stylesheet of the
company's own (`--accent` and `--accent-ink`, the text colour that reads on it): the
Content-Security-Policy allows no style attribute or inline style element.
"""

from __future__ import annotations

import hashlib
import struct

from django.http import Http404, HttpResponse

from .errors import DomainError
from .models import LOGO_MAX_BYTES, Company, CompanyLogo

INK_DARK, INK_LIGHT = "#101828", "#ffffff"
# A year: the URLs carry the version, so a new logo or colour is a new URL.
CACHED = "private, max-age=31536000, immutable"


# --- the logo ---------------------------------------------------------------------------------

def _png_size(data: bytes) -> tuple[int, int] | None:
    if data[12:16] != b"IHDR" or len(data) < 24:
        return None
    return struct.unpack(">II", data[16:24])


def logo_content_type(data: bytes) -> str:
    """The image type of an uploaded logo, read from its first bytes (not from its name or
    the browser's word for it); a DomainError says what is wrong with any other file."""
    if len(data) > LOGO_MAX_BYTES:
        raise DomainError(f"The logo is {len(data) // 1024} KB: it can be at most "
                          f"{LOGO_MAX_BYTES // 1024} KB. Save it smaller (a logo needs no more "
                          "than about 400 pixels wide).",
                          code="logo_too_large")
    if not data:
        raise DomainError("The logo file is empty.", code="logo_invalid")
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        size = _png_size(data)
        if not size or not all(size):
            raise DomainError("The logo is not a readable PNG image.", code="logo_invalid")
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    if b"<svg" in data[:1024].lower():
        raise DomainError("SVG logos are not accepted (an SVG can carry scripts): upload a PNG, JPEG or "
                          "WebP image.", code="logo_invalid")
    raise DomainError("The logo must be a PNG, JPEG or WebP image.", code="logo_invalid")


def logo_version(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def logo_response(*, company: Company, version: str = "") -> HttpResponse:
    """The company's logo; its URL carries its version, which is cached for long."""
    if not company.logo_version:
        raise Http404("No logo.")
    logo = CompanyLogo.objects.filter(company=company).first()
    if logo is None:
        raise Http404("No logo.")
    response = HttpResponse(bytes(logo.data), content_type=logo.content_type)
    response["Cache-Control"] = CACHED if version == company.logo_version else "private, no-cache"
    response["ETag"] = f'"{company.logo_version}"'
    # Opened on its own, the file is an image and nothing else.
    response["Content-Security-Policy"] = "default-src 'none'; sandbox"
    return response


# --- the accent colour --------------------------------------------------------------------------

def _luminance(hex_color: str) -> float:
    """WCAG relative luminance of #rrggbb."""
    channels = []
    for i in (1, 3, 5):
        c = int(hex_color[i:i + 2], 16) / 255
        channels.append(c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4)
    red, green, blue = channels
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast_ratio(a: str, b: str) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def accent_ink(accent: str) -> str:
    """The text colour that reads best on `accent`: near-black or white, whichever
    contrasts more."""
    return max((INK_LIGHT, INK_DARK), key=lambda ink: contrast_ratio(accent, ink))


def branding_version(company: Company) -> str:
    """Changes whenever the stylesheet would: for its URL."""
    return company.accent_color.lstrip("#")


def branding_css_response(*, company: Company, version: str = "") -> HttpResponse:
    accent = company.accent_color
    css = f":root {{ --accent: {accent}; --accent-ink: {accent_ink(accent)}; }}\n" if accent else ""
    response = HttpResponse(css, content_type="text/css; charset=utf-8")
    current = version and version == branding_version(company)
    response["Cache-Control"] = CACHED if current else "private, no-cache"
    return response
