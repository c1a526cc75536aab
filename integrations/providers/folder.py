"""Report files in a folder on the server's own disk (on-premise use and the demo)."""

from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from .base import ConnectionProblem, ProviderError, ReportFile, ReportProvider


class FolderProvider(ReportProvider):
    kind = "folder"
    label = "Folder on the server"
    required_headers = ("ReceiptId", "customerId")
    deletion_removes_data = True
    setting_fields = (
        ("path", "Folder path", "An absolute path on the server, e.g. /srv/reports/green-leaf."),
    )
    credential_fields = ()

    @property
    def root(self) -> Path:
        raw = (self.settings.get("path") or "").strip()
        if not raw or not os.path.isabs(raw):
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                f"The folder path must be an absolute path; got '{raw}'.")
        return Path(raw)

    def test(self) -> str:
        files = self.list_files()
        return f"Folder {self.root} is readable: {len(files)} CSV file{'s' if len(files) != 1 else ''}."

    def list_files(self) -> list[ReportFile]:
        root = self.root
        if not root.is_dir():
            raise ProviderError(ConnectionProblem.NOT_FOUND, f"Folder {root} does not exist.")
        if not os.access(root, os.R_OK | os.X_OK):
            raise ProviderError(ConnectionProblem.NO_PERMISSION,
                                f"The server may not read folder {root}.")
        files = []
        for path in root.rglob("*"):
            if not path.is_file() or path.suffix.lower() != ".csv":
                continue
            stat = path.stat()
            files.append(ReportFile(
                key=path.relative_to(root).as_posix(),
                # Size and modification time change with every rewrite of the file.
                etag=f"{stat.st_size}-{stat.st_mtime_ns}",
                size=stat.st_size,
                modified_at=dt.datetime.fromtimestamp(stat.st_mtime, tz=dt.UTC),
            ))
        return sorted(files, key=lambda f: f.key)

    def open(self, file: ReportFile):
        path = self.root / file.key
        try:
            return open(path, "rb")
        except FileNotFoundError as exc:
            raise ProviderError(ConnectionProblem.NOT_FOUND, f"File {path} is gone.") from exc
        except PermissionError as exc:
            raise ProviderError(ConnectionProblem.NO_PERMISSION,
                                f"The server may not read {path}.") from exc
