"""Each company's own place on the server's disk: REPORTS_ROOT/<company slug>/.

Whatever a company configures (a folder path, a file in it, a link inside it) is checked
here, when it is saved and again when it is read: resolved with every symlink followed,
then it must still be inside the company's folder.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from django.conf import settings

from .errors import DomainError

SLUG_RE = re.compile(r"[-\w]+", re.ASCII)


class OutsideCompanyFolder(DomainError):
    code = "outside_company_folder"


def company_folder(slug: str) -> Path:
    """REPORTS_ROOT/<slug>, the root resolved (the operator may link it elsewhere)."""
    if not SLUG_RE.fullmatch(slug or ""):
        # A slug is letters, digits, - and _; anything else could name another folder.
        raise OutsideCompanyFolder(f"The company id '{slug}' cannot name a folder.")
    return Path(settings.REPORTS_ROOT).resolve() / slug


def path_in_company_folder(*, slug: str, path: str | Path) -> Path:
    """`path` (relative to the company's folder, or absolute) with every symlink resolved,
    if that is inside the company's folder; else OutsideCompanyFolder saying where files
    may go. The one containment check for saving and for reading."""
    base = company_folder(slug)
    where = f"Report files must be inside {base}/"
    try:
        # An absolute `path` replaces `base` in the join; `..` and links are resolved.
        resolved = (base / path).resolve()
        inside = resolved.is_relative_to(base.resolve())
    except (OSError, RuntimeError, ValueError) as exc:  # a link loop, a NUL byte
        raise OutsideCompanyFolder(f"{where}; '{path}' cannot be resolved ({exc}).") from exc
    if not inside:
        if resolved != Path(os.path.normpath(base / path)):  # through a symlink
            raise OutsideCompanyFolder(f"{where}; '{path}' leads to {resolved}, which is outside it.")
        raise OutsideCompanyFolder(f"{where}; '{path}' is outside it.")
    return resolved
