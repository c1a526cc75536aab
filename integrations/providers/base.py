"""What every report source (S3 bucket, OneDrive folder, folder on disk) offers the importer.

A provider is built from a connection's plain settings (bucket, prefix, folder path, base
URL...) and its decrypted credentials. It lists the report files that are there now and
opens one as a binary stream; it never parses CSV and never touches the database.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import BinaryIO, ClassVar


class ConnectionProblem(enum.StrEnum):
    """Why a connection does not work, in words a merchant can act on."""

    UNREACHABLE = "unreachable"
    BAD_CREDENTIALS = "bad_credentials"
    NOT_FOUND = "not_found"  # the bucket, prefix or folder does not exist
    NO_PERMISSION = "no_permission"
    MISCONFIGURED = "misconfigured"  # a required setting is missing or malformed


class ProviderError(Exception):
    """A source could not be listed or read. `problem` says which kind of failure;
    `message` says exactly what, e.g. "Bucket 'reports' does not exist at
    http://s3.local:9000"."""

    def __init__(self, problem: ConnectionProblem, message: str, *, acted_maybe: bool = False):
        super().__init__(message)
        self.problem = problem
        self.message = message
        # The source may have done what it was asked (a create that timed out): doing it
        # again could do it twice.
        self.acted_maybe = acted_maybe

    @property
    def retryable(self) -> bool:
        # Only an unreachable server may come back by itself; a wrong key will not.
        return self.problem == ConnectionProblem.UNREACHABLE and not self.acted_maybe


@dataclass(frozen=True)
class ReportFile:
    key: str  # unique within the connection: S3 object key, OneDrive item path, relative path
    etag: str  # changes whenever the content changes
    size: int
    modified_at: object = None  # aware datetime, when known
    item_id: str = ""  # the source's own id where it has one (OneDrive drive item id)


class ReportProvider:
    kind: ClassVar[str]
    label: ClassVar[str]
    # The columns every file of this source must have, by their header names in the file.
    required_headers: ClassVar[tuple[str, str]]
    # True where a file that disappears takes its data with it (S3 and folder); OneDrive
    # keeps the data of a deleted file until support purges it.
    deletion_removes_data: ClassVar[bool]
    # The settings and credentials the connection form asks for: (name, label, help).
    setting_fields: ClassVar[tuple[tuple[str, str, str], ...]]
    credential_fields: ClassVar[tuple[tuple[str, str, str], ...]]
    # The settings that are URLs the server will call, with how messages name them: each
    # must point at a public address (stores.outbound), checked when the connection is saved.
    url_settings: ClassVar[tuple[tuple[str, str], ...]] = ()

    def __init__(self, *, settings: dict, credentials: dict, company_slug: str = ""):
        self.settings = settings
        self.credentials = credentials
        # The company it reads for: a folder on the server is confined to that company's.
        self.company_slug = company_slug

    @classmethod
    def setting_fields_for(cls, *, company_slug: str) -> tuple[tuple[str, str, str], ...]:
        """`setting_fields` as the company's form shows them (a help text may name the
        company's own place)."""
        return cls.setting_fields

    @classmethod
    def settings_clean(cls, settings: dict, *, company_slug: str) -> dict:
        """The settings as they are saved; a DomainError with extra["field"] refuses one."""
        return settings

    @classmethod
    def settings_rows(cls, settings: dict, *, company_slug: str) -> list[tuple[str, str]]:
        """(label, value) of each setting for the connection's page."""
        return [(label, settings.get(name) or "") for name, label, _ in cls.setting_fields]

    def test(self) -> str:
        """Reach the source with these settings and credentials; a short success message
        ("Bucket 'x' is reachable: 3 CSV files under 'reports/'") or ProviderError."""
        files = self.list_files()
        return f"Connected: {len(files)} report file{'s' if len(files) != 1 else ''} found."

    def list_files(self) -> list[ReportFile]:
        """Every CSV report file there now (name ends with .csv, any case), sorted by key."""
        raise NotImplementedError

    def open(self, file: ReportFile) -> BinaryIO:
        """The file's bytes as a stream with `.read(n)` and `.close()`; never the whole
        file in memory."""
        raise NotImplementedError
