"""Report files in a folder on the server's own disk (on-premise use and the demo).

A company's folder connections read only inside its own folder, REPORTS_ROOT/<slug>/
(`stores.folders`). The path is saved relative to it, and the folder, every file listed
and every file opened are resolved and checked again when they are read: a link that
leads to another company's folder, or anywhere else, is never followed.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import posixpath
import stat
from pathlib import Path

from stores.folders import OutsideCompanyFolder, company_folder, path_in_company_folder

from ..connectors import REPORT_FEATURES, Listing
from .base import ConnectionProblem, ProviderError, ReportFile, ReportProvider

log = logging.getLogger(__name__)

# Read only, never through a link as the last step, and never waiting on a FIFO.
OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


def folder_shown(company_slug: str) -> str:
    """The company's folder as the pages show it, with a trailing slash."""
    try:
        return f"{company_folder(company_slug)}/"
    except OutsideCompanyFolder:
        return "(none: the company id cannot name a folder)"


class FolderProvider(ReportProvider):
    kind = "folder"
    label = "Folder on the server"
    required_headers = ("ReceiptId", "customerId")
    deletion_removes_data = True
    test_at_once = True
    choice_help = "A folder on this server's disk, for on-premise installs."
    listing = Listing("Folder reports", "Reports",
                      "CSV reports in a folder on this server's disk, for on-premise installs.",
                      "Fo", "#667085", REPORT_FEATURES, keywords="disk local csv on-premise")
    setting_fields = (
        ("path", "Folder path",
         "A folder inside the company's report folder on the server, e.g. daily; "
         "leave empty for the report folder itself."),
    )
    credential_fields = ()

    def __init__(self, *, settings: dict, credentials: dict, company_slug: str = ""):
        super().__init__(settings=settings, credentials=credentials, company_slug=company_slug)
        # CSV files left out of the last listing because they lead outside the company's folder.
        self.skipped: list[str] = []

    @classmethod
    def setting_fields_for(cls, *, company_slug: str):
        folder = folder_shown(company_slug)
        return (("path", "Folder path",
                 f"Report files go in {folder} on the server. Type a folder inside it, e.g. daily "
                 f"for {folder}daily/, or leave empty for {folder} itself."),)

    @classmethod
    def settings_clean(cls, settings: dict, *, company_slug: str) -> dict:
        """The path, checked, in its relative form; refused when it leads outside."""
        raw = settings.get("path") or ""
        try:
            resolved = path_in_company_folder(slug=company_slug, path=raw)
        except OutsideCompanyFolder as exc:
            raise OutsideCompanyFolder(exc.message, extra={"field": "path"}) from None
        if os.path.isabs(raw):  # the full path, pasted from the page: kept relative
            relative = resolved.relative_to(company_folder(company_slug).resolve()).as_posix()
        else:
            relative = posixpath.normpath(raw)
        return settings | {"path": "" if relative == "." else relative}

    @classmethod
    def settings_rows(cls, settings: dict, *, company_slug: str) -> list[tuple[str, str]]:
        raw = settings.get("path") or ""
        try:
            path_in_company_folder(slug=company_slug, path=raw)
        except OutsideCompanyFolder:
            return [("Folder path", f"{raw} (outside the company's report folder: not read)")]
        if os.path.isabs(raw):
            return [("Folder path", raw)]
        folder = folder_shown(company_slug)
        return [("Folder path", f"{folder}{raw}/" if raw else folder)]

    def _inside(self, path, problem: ConnectionProblem) -> Path:
        try:
            return path_in_company_folder(slug=self.company_slug, path=path)
        except OutsideCompanyFolder as exc:
            raise ProviderError(problem, exc.message) from None

    @property
    def root(self) -> Path:
        return self._inside((self.settings.get("path") or "").strip(), ConnectionProblem.MISCONFIGURED)

    def test(self) -> str:
        files = self.list_files()
        message = f"Folder {self.root} is readable: {len(files)} CSV file{'s' if len(files) != 1 else ''}."
        if self.skipped:
            message += (f" Left out, as they lead outside the company's report folder: "
                        f"{', '.join(sorted(self.skipped))}.")
        return message

    def list_files(self) -> list[ReportFile]:
        root = self.root
        if not root.is_dir():
            raise ProviderError(ConnectionProblem.NOT_FOUND, f"Folder {root} does not exist.")
        if not os.access(root, os.R_OK | os.X_OK):
            raise ProviderError(ConnectionProblem.NO_PERMISSION,
                                f"The server may not read folder {root}.")
        files, self.skipped = [], []
        for path in root.rglob("*"):
            if path.suffix.lower() != ".csv":
                continue
            key = path.relative_to(root).as_posix()
            try:
                target = path_in_company_folder(slug=self.company_slug, path=path)
            except OutsideCompanyFolder:
                log.warning("folder of %s: %s leads outside the company's folder, left out",
                            self.company_slug, path)
                self.skipped.append(key)
                continue
            if not target.is_file():
                continue
            info = target.stat()
            files.append(ReportFile(
                key=key,
                # Size and modification time change with every rewrite of the file.
                etag=f"{info.st_size}-{info.st_mtime_ns}",
                size=info.st_size,
                modified_at=dt.datetime.fromtimestamp(info.st_mtime, tz=dt.UTC),
            ))
        return sorted(files, key=lambda f: f.key)

    def open(self, file: ReportFile):
        # Resolved again now: since it was listed, the file may have become a link elsewhere.
        path = self._inside(self.root / file.key, ConnectionProblem.NO_PERMISSION)
        try:
            fd = os.open(path, OPEN_FLAGS)
        except FileNotFoundError as exc:
            raise ProviderError(ConnectionProblem.NOT_FOUND, f"File {path} is gone.") from exc
        except OSError as exc:  # EACCES, or ELOOP: it became a link after it was resolved
            raise ProviderError(ConnectionProblem.NO_PERMISSION,
                                f"The server may not read {path}.") from exc
        handle = os.fdopen(fd, "rb")
        try:
            self._check_opened(fd, path)
        except ProviderError:
            handle.close()
            raise
        return handle

    def _check_opened(self, fd: int, path: Path) -> None:
        """What was opened is a plain file inside the company's folder, whatever a folder
        on the way became between resolving the path and opening it."""
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ProviderError(ConnectionProblem.NOT_FOUND, f"{path} is not a file.")
        opened = f"/proc/self/fd/{fd}"
        if os.path.islink(opened):  # Linux names the file behind the descriptor
            self._inside(os.readlink(opened), ConnectionProblem.NO_PERMISSION)
