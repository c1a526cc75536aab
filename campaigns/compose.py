"""Composing campaign messages: merge fields, SMS segments and cost, links, and email
rendering. Pure functions, no database: the compose form validates and previews with them,
the send loop renders every message with them (compile once per campaign, then render per
recipient), and static/campaigns/compose.js counts the same way in the browser.

Merge fields are written `{first_name}`; a literal brace is written doubled (`{{`, `}}`).
A link may not hold a merge field: every recipient's link is the same tracked link."""

from __future__ import annotations

import difflib
import functools
import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from html import escape

from django.template.loader import get_template
from django.utils.safestring import mark_safe

from stores.errors import DomainError

# --- Merge fields -------------------------------------------------------------------------------

MERGE_FIELDS: dict[str, str] = {
    "first_name": "First name",
    "last_name": "Last name",
    "points": "Points balance",
    "tier": "Tier",
    "store": "Home store",
    "reward_code": "Newest reward's code",
    "reward_name": "Newest reward's name",
}

# A typical member: what estimates use when no member is chosen for the preview.
SAMPLE_VALUES: dict[str, str] = {
    "first_name": "Maria",
    "last_name": "Lopez",
    "points": "1,250",
    "tier": "Gold",
    "store": "Downtown",
    "reward_code": "K7Q2M9XH",
    "reward_name": "$5 off your next visit",
}

# The longest a value plausibly is: a text message must still fit with these.
LONGEST_VALUES: dict[str, str] = {
    "first_name": "Maximiliana-Josefina",  # 20 characters
    "last_name": "Vanderschoot-Hemmings",
    "points": "9,999,999",
    "tier": "Platinum Reserve",
    "store": "Downtown Flagship - 5th Avenue",
    "reward_code": "K7Q2M9XH",  # wallet codes are 8 characters
    "reward_name": "Free large drink with any breakfast combo",
}

# What the error messages call each form field.
FIELD_PLACES = {
    "sms_body": "the message",
    "email_subject": "the subject",
    "email_preheader": "the preheader",
    "email_body": "the email text",
    "email_button_text": "the button text",
    "email_button_url": "the button link",
}


class ComposeError(DomainError):
    """A message that cannot be sent as written. `extra["field"]` is the form field."""

    code = "invalid_message"

    def __init__(self, message: str, *, field: str | None = None):
        super().__init__(message, extra={"field": field})
        self.field = field


def _place(field: str | None) -> str:
    return FIELD_PLACES.get(field or "", "the text")


def _fields_list() -> str:
    return ", ".join("{" + key + "}" for key in MERGE_FIELDS)


def _parse(text: str, field: str | None) -> list[str]:
    """[literal, key, literal, key, ..., literal]: always odd length."""
    parts: list[str] = []
    literal: list[str] = []
    i, n = 0, len(text)
    while i < n:
        brace_at = min((p for p in (text.find("{", i), text.find("}", i)) if p != -1), default=-1)
        if brace_at == -1:
            literal.append(text[i:])
            break
        literal.append(text[i:brace_at])
        i = brace_at
        char = text[i]
        if i + 1 < n and text[i + 1] == char:  # {{ or }}: a literal brace
            literal.append(char)
            i += 2
            continue
        if char == "}":
            raise ComposeError(f"A }} in {_place(field)} has no opening {{: write }}}} for a literal brace.",
                               field=field)
        close = text.find("}", i + 1)
        if close == -1 or "{" in text[i + 1:close]:
            raise ComposeError(f"A {{ in {_place(field)} is not closed.", field=field)
        raw = text[i + 1:close]
        key = raw.strip().lower()
        if key not in MERGE_FIELDS:
            close_match = difflib.get_close_matches(key, list(MERGE_FIELDS), n=1)
            hint = f" (did you mean {{{close_match[0]}}}?)" if close_match else ""
            raise ComposeError(
                f"{_place(field).capitalize()} uses {{{raw}}}, which is not a merge field{hint}: "
                f"use one of {_fields_list()}, or write {{{{ and }}}} for literal braces.",
                field=field)
        parts.append("".join(literal))
        parts.append(key)
        literal = []
        i = close + 1
    parts.append("".join(literal))
    return parts


class MessageTemplate:
    """A message with its merge fields found once; `render` only joins strings."""

    __slots__ = ("parts", "fields", "_slots")

    def __init__(self, parts: list[str]):
        self.parts = parts
        self._slots = tuple((i, parts[i]) for i in range(1, len(parts), 2))
        self.fields = {key for _, key in self._slots}

    def render(self, values: Mapping[str, object]) -> str:
        if not self._slots:
            return self.parts[0]
        out = self.parts.copy()
        get = values.get
        for i, key in self._slots:
            value = get(key)
            out[i] = "" if value is None else str(value)
        return "".join(out)

    def __repr__(self):
        return f"MessageTemplate({self.parts!r})"


def compile_template(text: str, *, field: str | None = None) -> MessageTemplate:
    """Raises ComposeError (with `field`, if given) for an unknown field or a stray brace."""
    return MessageTemplate(_parse(text or "", field))


def merge_fields_check(text: str, *, field: str) -> None:
    _parse(text or "", field)


# --- Links --------------------------------------------------------------------------------------

# http(s) URLs up to whitespace, quotes, angle brackets or a brace (a merge field starts there).
LINK_RE = re.compile(r"https?://[^\s<>\"{}]+", re.IGNORECASE)
TRAILING = ".,;:!?)'"


def _link_trim(url: str) -> str:
    """The URL without the sentence's punctuation after it; a closing parenthesis stays when
    the URL opened one (https://en.wikipedia.org/wiki/Foo_(bar))."""
    while url and url[-1] in TRAILING:
        if url[-1] == ")" and url.count("(") >= url.count(")"):
            break
        url = url[:-1]
    return url


def _links(text: str):
    """(start, end, url) of every link, in order."""
    for match in LINK_RE.finditer(text):
        url = _link_trim(match.group())
        if re.fullmatch(r"https?://", url, re.IGNORECASE):
            continue
        yield match.start(), match.start() + len(url), url


def links_find(text: str) -> list[str]:
    """The http(s) links of a text, each once, in the order they first appear."""
    return list(dict.fromkeys(url for _, _, url in _links(text or "")))


def links_replace(text: str, mapping: Mapping[str, str]) -> str:
    """Every link found as in links_find replaced by mapping[url] (unmapped links stay)."""
    out, last = [], 0
    for start, end, url in _links(text or ""):
        out.append(text[last:start])
        out.append(mapping.get(url, url))
        last = end
    out.append(text[last:])
    return "".join(out)


def _links_check(text: str, *, field: str) -> None:
    """A merge field right after a link would make each member's link different."""
    for _, end, url in _links(text):
        if text.startswith("{", end) and not text.startswith("{{", end):
            raise ComposeError(
                f"{_place(field).capitalize()} has a merge field inside the link {url}: a link must be "
                "the same for everyone (it becomes a tracked link).", field=field)


# --- SMS ----------------------------------------------------------------------------------------

# 3GPP TS 23.038, GSM 7-bit default alphabet: the basic table (one septet each; 0x1B is the
# escape to the extension table, not a character) ...
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅå"
    "Δ_ΦΓΛΩΠΨΣΘΞÆæßÉ"
    " !\"#¤%&'()*+,-./"
    "0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNO"
    "PQRSTUVWXYZÄÖÑÜ§"
    "¿abcdefghijklmno"
    "pqrstuvwxyzäöñüà"
)
# ... and the characters of the extension table (escape + one septet: two each).
GSM_EXTENDED = "\f^{}\\[~]|€"
_GSM_BASIC = frozenset(GSM_BASIC)
_GSM_EXTENDED = frozenset(GSM_EXTENDED)
_GSM = _GSM_BASIC | _GSM_EXTENDED
_NOT_GSM_BASIC = re.compile("[^" + "".join(map(re.escape, GSM_BASIC)) + "]")
_EXTENDED_RE = re.compile("[" + "".join(map(re.escape, GSM_EXTENDED)) + "]")

GSM7, UCS2 = "GSM-7", "UCS-2"
LIMITS = {GSM7: (160, 153), UCS2: (70, 67)}  # (one message, each part of a longer one)
SMS_MAX_SEGMENTS = 10
SMS_MAX_CHARACTERS = 1600


@dataclass(frozen=True)
class SegmentCount:
    encoding: str  # "GSM-7" or "UCS-2"
    characters: int  # Unicode characters (code points)
    units: int  # GSM-7 septets or UTF-16 code units
    segments: int
    per_segment: int  # how many units each segment holds (160/153 or 70/67)


def _fill(widths, per_segment: int) -> int:
    """Segments when no character (an escape pair, a surrogate pair) is split between two."""
    segments, used = 1, 0
    for width in widths:
        if used + width > per_segment:
            segments += 1
            used = 0
        used += width
    return segments


def sms_segments(text: str) -> SegmentCount:
    """How a text message travels: GSM-7 when every character is in the GSM alphabet
    (extension characters take two septets), else UCS-2 (UTF-16: an emoji takes two units)."""
    if not text:
        return SegmentCount(GSM7, 0, 0, 0, LIMITS[GSM7][0])
    characters = len(text)
    if _NOT_GSM_BASIC.search(text) is None or _GSM.issuperset(text):
        extended = sum(map(text.count, GSM_EXTENDED)) if _EXTENDED_RE.search(text) else 0
        units = characters + extended
        single, part = LIMITS[GSM7]
        if units <= single:
            return SegmentCount(GSM7, characters, units, 1, single)
        if not extended:
            return SegmentCount(GSM7, characters, units, -(-units // part), part)
        widths = (2 if char in _GSM_EXTENDED else 1 for char in text)
        return SegmentCount(GSM7, characters, units, _fill(widths, part), part)
    units = len(text.encode("utf-16-le")) // 2
    single, part = LIMITS[UCS2]
    if units <= single:
        return SegmentCount(UCS2, characters, units, 1, single)
    if units == characters:
        return SegmentCount(UCS2, characters, units, -(-units // part), part)
    widths = (2 if ord(char) > 0xFFFF else 1 for char in text)
    return SegmentCount(UCS2, characters, units, _fill(widths, part), part)


def _squash(text: str) -> str:
    return "".join(text.split()).lower()


def sms_text(body: str, opt_out_line: str) -> str:
    """The text as sent: the body (trimmed, with \\n line ends) and the opt-out line on a line
    of its own, unless the body already ends with it. An empty body stays empty."""
    body = body or ""
    if "\r" in body:
        body = body.replace("\r\n", "\n").replace("\r", "\n")
    body = body.strip()
    line, squashed = _opt_out(opt_out_line)
    if not body or not line:
        return body
    # Most messages end with another letter than the line: no need to squash them.
    if body[-1].lower()[-1:] == squashed[-1] and _squash(body).endswith(squashed):
        return body
    return f"{body}\n{line}"


@functools.lru_cache(maxsize=256)
def _opt_out(opt_out_line: str | None) -> tuple[str, str]:
    line = (opt_out_line or "").strip()
    return line, _squash(line)


def sms_check(body: str, opt_out_line: str, *, sample_values: Mapping[str, object]) -> SegmentCount:
    """Refuses (field "sms_body") a message with a bad merge field or link, an empty one, or
    one that with the longest plausible values is over 10 segments or 1,600 characters.
    Returns the count of the message as `sample_values` make it."""
    field = "sms_body"
    template = compile_template(body or "", field=field)
    _links_check(body or "", field=field)
    if not (body or "").strip():
        raise ComposeError("The message is empty.", field=field)
    if not _squash(body).removesuffix(_squash(opt_out_line or "")):
        raise ComposeError("The message has nothing but the opt-out line, which is added by itself.",
                           field=field)
    longest = sms_segments(sms_text(template.render(LONGEST_VALUES), opt_out_line))
    if longest.segments > SMS_MAX_SEGMENTS or longest.characters > SMS_MAX_CHARACTERS:
        raise ComposeError(
            f"The message is too long: with long names and the opt-out line it could take "
            f"{longest.segments} segments ({longest.characters:,} characters); the most is "
            f"{SMS_MAX_SEGMENTS} segments and {SMS_MAX_CHARACTERS:,} characters.", field=field)
    return sms_segments(sms_text(template.render(sample_values), opt_out_line))


def sms_cost(segments: int, recipients: int, price: Decimal) -> Decimal:
    """What sending costs: segments x recipients x the price of a segment, to the cent."""
    total = Decimal(segments) * Decimal(recipients) * Decimal(price)
    return total.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


CURRENCY_SYMBOLS = {"USD": "$", "CAD": "$", "AUD": "$", "EUR": "€", "GBP": "£"}


def _plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def _money(value: Decimal, currency: str) -> str:
    symbol = CURRENCY_SYMBOLS.get(currency, "")
    return f"{symbol}{value:,.2f}" if symbol else f"{value:,.2f} {currency}"


def sms_counter_text(count: SegmentCount, *, recipients: int | None, price: Decimal,
                     currency: str = "USD") -> str:
    """The counter's line under the message box (compose.js writes the same)."""
    text = " · ".join([_plural(count.characters, "character"), count.encoding,
                       _plural(count.segments, "segment")])
    if recipients is not None:
        cost = sms_cost(count.segments, recipients, price)
        text += f" · about {_money(cost, currency)} for {_plural(recipients, 'recipient')}"
    return text


def sms_counter_context(*, body: str, opt_out_line: str, segment_price: Decimal,
                        recipients: int | None, currency: str = "USD",
                        sample_values: Mapping[str, object] | None = None) -> dict:
    """The context campaigns/_sms_counter.html needs, with the count of the current text so
    the counter reads right before the script runs."""
    values = dict(sample_values if sample_values is not None else SAMPLE_VALUES)
    try:
        rendered = compile_template(body or "").render(values)
    except ComposeError:
        rendered = body or ""
    count = sms_segments(sms_text(rendered, opt_out_line))
    return {
        "opt_out_line": opt_out_line,
        "segment_price": segment_price,
        "recipients": recipients,
        "currency": currency,
        "sample_values_json": json.dumps(values),
        "longest_values_json": json.dumps(LONGEST_VALUES),
        "counter_text": sms_counter_text(count, recipients=recipients, price=segment_price,
                                         currency=currency),
        "counter_wide": count.encoding == UCS2,
        "counter_per_segment": count.per_segment,
    }


# --- Email --------------------------------------------------------------------------------------

EMAIL_TEMPLATES: dict[str, str] = {
    "announcement": "Announcement",
    "offer": "Offer with a button",
    "plain": "Plain letter",
}
DEFAULT_ACCENT = "#1f6f4a"
_HEX_COLOR = re.compile(r"#[0-9a-fA-F]{6}")
FONT = "-apple-system,BlinkMacSystemFont,Segoe UI,Roboto,Helvetica,Arial,sans-serif"


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    html: str
    text: str


def email_headers(*, unsubscribe_url: str, unsubscribe_post_url: str) -> dict[str, str]:
    """One-click unsubscribe (RFC 8058): the inbox's button POSTs to `unsubscribe_post_url`."""
    return {
        "List-Unsubscribe": f"<{unsubscribe_post_url or unsubscribe_url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
    }


def _button_url_check(url: str) -> None:
    field = "email_button_url"
    if "{" in url or "}" in url:
        raise ComposeError("The button link can't hold a merge field: it must be the same for everyone "
                           "(it becomes a tracked link).", field=field)
    if not re.fullmatch(r"https?://[^\s<>\"]+", url, re.IGNORECASE) or url.count("/") < 2:
        raise ComposeError(f"The button link {url} is not a web address: write it in full, "
                           "starting with https://.", field=field)


def email_check(*, subject: str, preheader: str, body: str, button_text: str, button_url: str,
                template: str) -> None:
    """Refuses, naming the form field, what would make a broken email."""
    if template not in EMAIL_TEMPLATES:
        raise ComposeError(f"“{template}” is not an email template: choose one of "
                           f"{', '.join(EMAIL_TEMPLATES.values())}.", field="email_template")
    if not (subject or "").strip():
        raise ComposeError("The subject is empty.", field="email_subject")
    merge_fields_check(subject, field="email_subject")
    merge_fields_check(preheader or "", field="email_preheader")
    if not (body or "").strip():
        raise ComposeError("The email text is empty.", field="email_body")
    merge_fields_check(body, field="email_body")
    _links_check(body, field="email_body")
    button_text, button_url = (button_text or "").strip(), (button_url or "").strip()
    merge_fields_check(button_text, field="email_button_text")
    if button_text and not button_url:
        raise ComposeError("The button has text but no link: add the address it opens.",
                           field="email_button_url")
    if button_url and not button_text:
        raise ComposeError("The button has a link but no text: add the words it shows.",
                           field="email_button_text")
    if template == "offer" and not button_text:
        raise ComposeError("The offer template needs a button: add its text and link.",
                           field="email_button_text")
    if button_url:
        _button_url_check(button_url)


def _luminance(color: str) -> float:
    def channel(value: int) -> float:
        c = value / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (int(color[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * channel(r) + 0.7152 * channel(g) + 0.0722 * channel(b)


def _contrast(a: str, b: str) -> float:
    light, dark = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


WHITE, INK = "#ffffff", "#111827"


def _on_color(accent: str) -> str:
    """Text colour for the accent's bar and button: white or near-black, whichever reads better."""
    return WHITE if _contrast(accent, WHITE) >= _contrast(accent, INK) else INK


# The parts of a compiled email. Text is a str; a merge field, a link and a slot filled per
# message are tuples.
_FIELD, _LINK, _SLOT = "field", "link", "slot"
_SLOT_RE = re.compile("\x00([a-z_]+)\x00")


def _slot(name: str) -> str:
    return mark_safe(f"\x00{name}\x00")


def _body_parts(body: str, *, html: bool, link_style: str) -> list:
    """The email text as parts: paragraphs (blank lines between) become <p>, line breaks
    <br>, links <a>; text is escaped once here, merge values when a message is made."""
    body = (body or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    paragraphs = [p.strip() for p in re.split(r"\n[ \t]*\n\s*", body) if p.strip()]
    parts: list = []
    for number, paragraph in enumerate(paragraphs):
        if html:
            parts.append('<p style="margin:0 0 16px 0;">')
        elif number:
            parts.append("\n\n")
        pieces = _parse(paragraph, "email_body")
        for index, piece in enumerate(pieces):
            if index % 2:
                parts.append((_FIELD, piece))
                continue
            last = 0
            for start, end, url in _links(piece):
                parts.append(_literal(piece[last:start], html))
                parts.append((_LINK, url, link_style + escape(url) if html else None))
                last = end
            parts.append(_literal(piece[last:], html))
        if html:
            parts.append("</p>")
    return parts


def _literal(text: str, html: bool) -> str:
    return escape(text).replace("\n", "<br>\n") if html else text


def _join(parts: list) -> list:
    """Neighbouring strings joined, so a message is made from as few pieces as possible."""
    out: list = []
    for part in parts:
        if isinstance(part, str):
            if not part:
                continue
            if out and isinstance(out[-1], str):
                out[-1] += part
                continue
        out.append(part)
    return out


def _escaped_parts(template: MessageTemplate) -> list:
    return [(_FIELD, part) if index % 2 else escape(part) for index, part in enumerate(template.parts)]


def _layout_parts(rendered: str, slots: dict[str, list]) -> list:
    """The template rendered once with a marker per slot, the markers replaced by the slot's
    parts."""
    pieces = _SLOT_RE.split(rendered)
    parts: list = []
    for index, piece in enumerate(pieces):
        parts.extend(slots[piece] if index % 2 else [piece])
    return _join(parts)


class CompiledEmail:
    """One campaign's email, laid out once; `render` fills in one recipient."""

    def __init__(self, *, template: str, subject: str, preheader: str, body: str, button_text: str,
                 button_url: str, company_name: str, accent_color: str, logo_url: str,
                 postal_address: str):
        if template not in EMAIL_TEMPLATES:
            raise ComposeError(f"“{template}” is not an email template.", field="email_template")
        accent = accent_color if accent_color and _HEX_COLOR.fullmatch(accent_color) else DEFAULT_ACCENT
        logo_url = logo_url if logo_url and re.match(r"https?://", logo_url, re.IGNORECASE) else ""
        self.subject = compile_template(subject or "", field="email_subject")
        preheader_template = compile_template(preheader or "", field="email_preheader")
        button_text = (button_text or "").strip()
        button_url = (button_url or "").strip()
        has_button = bool(button_text and button_url)
        button_template = compile_template(button_text, field="email_button_text")
        context = {
            "subject": _slot("subject"),
            "preheader": _slot("preheader"),
            "has_preheader": bool((preheader or "").strip()),
            "body": _slot("body"),
            "has_button": has_button,
            "button_text": _slot("button_text"),
            "button_href": _slot("button_href"),
            "unsubscribe_url": _slot("unsubscribe_url"),
            "company_name": company_name or "",
            "accent": accent,
            "on_accent": _on_color(accent),
            "logo_url": logo_url,
            "postal_address": postal_address or "",
            "font": FONT,
        }
        # Links in the text take the accent when it reads on white (WCAG AA, 4.5:1).
        link_color = accent if _contrast(accent, WHITE) >= 4.5 else "#1f2937"
        link_style = f'" style="color:{link_color};text-decoration:underline;word-break:break-all;">'
        button_link = [(_LINK, button_url, None)] if has_button else []
        html_slots = {
            "subject": [(_SLOT, "subject_html")],
            "preheader": _escaped_parts(preheader_template),
            "body": _body_parts(body, html=True, link_style=link_style),
            "button_text": _escaped_parts(button_template),
            "button_href": button_link,
            "unsubscribe_url": [(_SLOT, "unsubscribe_html")],
        }
        text_slots = {
            "subject": [(_SLOT, "subject")],
            "preheader": [],
            "body": _body_parts(body, html=False, link_style=""),
            "button_text": [(_FIELD, p) if i % 2 else p for i, p in enumerate(button_template.parts)],
            "button_href": button_link,
            "unsubscribe_url": [(_SLOT, "unsubscribe_url")],
        }
        html = get_template(f"campaigns/email/{template}.html").render(context)
        text = get_template("campaigns/email/text.txt").render(context)
        text = re.sub(r"\n{3,}", "\n\n", "\n".join(line.rstrip() for line in text.strip().split("\n")))
        self.html_parts = _layout_parts(html, html_slots)
        self.text_parts = _layout_parts(text + "\n", text_slots)

    @staticmethod
    def _make(parts: list, *, html: bool, values: Mapping, link: Callable[[str], str], slots: dict) -> str:
        out = []
        append = out.append
        for part in parts:
            if part.__class__ is str:
                append(part)
                continue
            kind = part[0]
            if kind == _FIELD:
                value = values.get(part[1])
                if value is not None:
                    append(escape(str(value)) if html else str(value))
            elif kind == _LINK:
                href = link(part[1])
                if part[2] is None:  # the button's href, or a link in the text part
                    append(escape(href) if html else href)
                else:
                    append('<a href="')
                    append(escape(href))
                    append(part[2])
                    append("</a>")
            else:
                append(slots[part[1]])
        return "".join(out)

    def render(self, values: Mapping[str, object], *, unsubscribe_url: str,
               link: Callable[[str], str] = lambda url: url) -> RenderedEmail:
        subject = " ".join(self.subject.render(values).split())
        slots = {"subject": subject, "subject_html": escape(subject), "unsubscribe_url": unsubscribe_url,
                 "unsubscribe_html": escape(unsubscribe_url)}
        return RenderedEmail(
            subject=subject,
            html=self._make(self.html_parts, html=True, values=values, link=link, slots=slots),
            text=self._make(self.text_parts, html=False, values=values, link=link, slots=slots),
        )


@functools.lru_cache(maxsize=64)
def email_compile(*, template: str, subject: str, preheader: str, body: str, button_text: str,
                  button_url: str, company_name: str, accent_color: str, logo_url: str,
                  postal_address: str) -> CompiledEmail:
    """The campaign's email laid out once (cached: the send loop calls email_render per
    message with the same campaign and branding)."""
    return CompiledEmail(template=template, subject=subject, preheader=preheader, body=body,
                         button_text=button_text, button_url=button_url, company_name=company_name,
                         accent_color=accent_color, logo_url=logo_url, postal_address=postal_address)


def email_render(*, template: str, subject: str, preheader: str, body: str, button_text: str,
                 button_url: str, values: Mapping[str, object], company_name: str, accent_color: str,
                 logo_url: str, postal_address: str, unsubscribe_url: str,
                 link: Callable[[str], str] = lambda url: url) -> RenderedEmail:
    """One recipient's email: subject, HTML (inline styles, table layout) and plain text.
    Values are escaped in the HTML; every link's address is `link(url)` (the tracked link)."""
    compiled = email_compile(template=template, subject=subject or "", preheader=preheader or "",
                             body=body or "", button_text=button_text or "", button_url=button_url or "",
                             company_name=company_name or "", accent_color=accent_color or "",
                             logo_url=logo_url or "", postal_address=postal_address or "")
    return compiled.render(values, unsubscribe_url=unsubscribe_url, link=link)
