"""What every report source (S3 bucket, OneDrive folder, folder on disk) offers the importer.

A provider is built from a connection's plain settings (bucket, prefix, folder path, base
URL...) and its decrypted credentials. It lists the report files that are there now and
opens one as a binary stream; it never parses CSV. As a connector (`integrations.connectors`)
its changes are the files listed, and staging one is importing it (`services.sync.sync_file`).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import BinaryIO, ClassVar

from ..connectors import Change, Connector, Location


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


class ReportProvider(Connector):
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

    # Each attempt looks at every file again; what earlier ones imported stays counted.
    run_reset = {"files_seen": 0, "files_skipped": 0}

    def __init__(self, *, settings: dict, credentials: dict, company_slug: str = ""):
        super().__init__(connection=None)
        self.settings = settings
        self.credentials = credentials
        # The company it reads for: a folder on the server is confined to that company's.
        self.company_slug = company_slug

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "kind" in cls.__dict__:
            cls.key = cls.kind  # the connector's key is the provider kind it always had

    @classmethod
    def for_connection(cls, connection, *, credential=None) -> ReportProvider:
        provider = cls(settings=connection.settings, credentials=connection.credentials_plain(),
                       company_slug=connection.company.slug)
        provider.connection = connection
        return provider

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

    # -- as a connector ----------------------------------------------------------------

    def locations(self) -> list[Location]:
        """The store values its reports carry: those mapped, then those waiting for a mapping."""
        from ..selectors import unknown_store_values

        if self.connection is None:
            return []
        mapped = [Location(m.external_location_id, m.location_name)
                  for m in self.connection.store_mappings.all()]
        waiting = [Location(v["value"]) for v in unknown_store_values(connection=self.connection)]
        return mapped + waiting

    def changes(self, run) -> list[Change]:
        """Every file there now: a file already imported as it is now is skipped when staged
        (its etag is the watermark), so the run still counts it as seen."""
        self.listed = self.list_files()
        return [Change(file.key, file) for file in self.listed]

    def stage(self, run, change: Change) -> None:
        from ..services.sync import sync_file

        sync_file(run=run, file=change.item, open_stream=self.open)

    def sync(self, run) -> None:
        from ..services.sync import files_disappeared

        super().sync(run)
        files_disappeared(run, present={f.key for f in self.listed}, removes_data=self.deletion_removes_data)

    @classmethod
    def doing(cls, run) -> str:
        return f"importing {run.current_file or 'the file list'}"

    @classmethod
    def lapse_words(cls, run) -> tuple[str, str]:
        doing = f" while reading {run.current_file}" if run.current_file else ""
        return doing, "nothing of that file was kept" if run.current_file else "no file was in progress"
