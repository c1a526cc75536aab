import re

import phonenumbers

from .errors import InvalidPhone

E164 = re.compile(r"\+[1-9]\d{6,14}")


def phone_looks_stored(raw: str) -> bool:
    """Already in the E.164 form phone_normalize stores (not a check that it is valid)."""
    return bool(E164.fullmatch(raw))


def phone_normalize(raw: str, *, country: str = "US", field: str = "phone") -> str:
    """E.164 for any way a person types a number; '' for blank; InvalidPhone otherwise."""
    raw = (raw or "").strip()
    if not raw:
        return ""
    try:
        number = phonenumbers.parse(raw, country)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhone(f"'{raw}' is not a phone number.", extra={"field": field}) from exc
    if not phonenumbers.is_valid_number(number):
        raise InvalidPhone(f"'{raw}' is not a valid phone number for {country}.",
                           extra={"field": field})
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def phone_normalize_or_blank(raw: str, *, country: str = "US") -> str:
    """E.164, or '' for blank and for a number that cannot be read: what bulk sources
    (report files, POS syncs) keep, where a bad phone loses the phone, not the row."""
    try:
        return phone_normalize(raw, country=country)
    except InvalidPhone:
        return ""


def phone_display(e164: str) -> str:
    if not e164:
        return ""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.NATIONAL)
