"""CSV files people open in a spreadsheet."""

import re

_PHONE_LIKE = re.compile(r"^[+-][\d ().-]*$")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


class Echo:
    """A file-like object whose write returns the line: csv.writer(Echo()) for streaming."""

    def write(self, value):
        return value


def spreadsheet_cell(value):
    """Spreadsheet-safe: text that would start a formula gets a leading quote (a phone
    number such as +1 303... stays as it is)."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in _FORMULA_STARTS and not _PHONE_LIKE.match(value):
        return "'" + value
    return value
