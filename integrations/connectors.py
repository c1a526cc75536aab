"""Every source of customers and sales behind one interface, and the one registry of them.

A connector is one class (see `Connector`) in one module; `CONNECTORS` below names it
once. From that line on, the integrations catalog and grid show it, the connection form
asks for its settings and secrets, the store mapping pages offer its locations, the
nightly schedule and "Sync now" run it, and every run goes through the one sync-run
lifecycle (`services.sync.sync_run_execute`: lease, progress, attempts, failure mapping,
statuses, `sync_completed`). docs/integrations.md walks through adding one.

This module imports no connector at import time: the classes are loaded on first use, so
a connector module may import anything in the app.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from typing import ClassVar

from django.utils.module_loading import import_string

# The registry: one line per connector, in the order the catalog shows them.
CONNECTORS: tuple[str, ...] = (
    "integrations.providers.cova_connector.CovaConnector",
    "integrations.providers.s3.S3Provider",
    "integrations.providers.onedrive.OneDriveProvider",
    "integrations.providers.folder.FolderProvider",
)

# What the catalog features mean, in the order the grid shows them.
FEATURES = (
    ("customers", "Customers", "Customers and their contact details come in."),
    ("sales", "Sales", "Completed sales come in and earn points."),
    ("payment_methods", "Payment methods", "How each sale was paid."),
    ("realtime_loyalty", "Real-time loyalty", "Rewards are redeemed at the register as it happens."),
    ("push_signups", "Push signups", "Members who join here are created in the POS."),
    ("store_mapping", "Store mapping", "The source's locations are mapped to your retail stores."),
    ("waiting_room", "Waiting room", "Budtenders see checked-in customers in the POS queue."),
)
REPORT_FEATURES = frozenset({"customers", "sales", "payment_methods", "store_mapping"})


@dataclass(frozen=True)
class Listing:
    """How the integrations catalog and grid show a connector."""

    name: str  # "Folder reports"
    kind: str  # "Reports", "Point of sale"
    summary: str
    initials: str  # the card's logo: two or three letters on `color`
    color: str
    features: frozenset  # keys of FEATURES
    keywords: str = ""  # more words the catalog search finds it by
    fee: str = ""
    fee_short: str = ""


@dataclass(frozen=True)
class Location:
    """A place the source sells from, offered for mapping to one of our stores."""

    id: str  # the value the source's sales carry (a location id, a store name in the reports)
    name: str = ""
    state: str = ""
    timezone: str = ""


@dataclass(frozen=True)
class Change:
    """One piece of what changed at the source since the last sync: a report file, or the
    customers and sales of an API since its watermarks. `key` names it; `stage` puts what
    it is reading on the run (`run.current_file`), for the run page and a failure message."""

    key: str
    item: object = None  # what the connector needs to stage it (a ReportFile, a window...)


class Connector:
    """What every source offers. A connection's connector is built from the connection
    (and, for a source with several logins such as Cova, the credential a run is for).

    Class attributes describe it to the pages; the four methods do the work:
    `test()`, `locations()`, `changes(run)` and `stage(run, change)`. `sync(run)` strings
    them together and runs inside `sync_run_execute`, which owns the run's state."""

    key: ClassVar[str]  # stored on Connection.provider; short, lowercase
    label: ClassVar[str]  # "Folder on the server"
    listing: ClassVar[Listing | None] = None
    # What "Add a connection" says under its label (default: the listing's summary).
    choice_help: ClassVar[str] = ""
    # The loyalty source kind its customers and sales are recorded under ("Sourced from").
    # "" for the key itself when loyalty has a source kind of that name, else "pos".
    source_kind: ClassVar[str] = ""
    # The settings and secrets the connection form asks for: (name, label, help).
    setting_fields: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    credential_fields: ClassVar[tuple[tuple[str, str, str], ...]] = ()
    # Settings that are URLs the server calls, with how messages name them: each must point
    # at a public address (stores.outbound), checked when the connection is saved.
    url_settings: ClassVar[tuple[tuple[str, str], ...]] = ()
    # The pages that add and manage its connections (URL names; the manage page takes the
    # connection's id). The report pages serve any connector built on ReportProvider.
    connect_url_name: ClassVar[str] = "connection_create"
    page_url_name: ClassVar[str] = "connection_detail"
    # Whether "Test connection" answers inside the request (a source on this server) or
    # in the background (anything reached over the network, which may hang).
    test_at_once: ClassVar[bool] = False
    # Whether a run syncs the whole connection or one of its credentials (Cova).
    runs_per_credential: ClassVar[bool] = False
    # The counters of a run that each attempt starts again from zero.
    run_reset: ClassVar[dict] = {}

    def __init__(self, *, connection, credential=None):
        self.connection = connection
        self.credential = credential

    @classmethod
    def for_connection(cls, connection, *, credential=None) -> Connector:
        return cls(connection=connection, credential=credential)

    # -- the form ---------------------------------------------------------------------

    @classmethod
    def setting_fields_for(cls, *, company_slug: str) -> tuple[tuple[str, str, str], ...]:
        """`setting_fields` as the company's form shows them."""
        return cls.setting_fields

    @classmethod
    def settings_clean(cls, settings: dict, *, company_slug: str) -> dict:
        """The settings as they are saved; a DomainError with extra["field"] refuses one."""
        return settings

    @classmethod
    def settings_rows(cls, settings: dict, *, company_slug: str) -> list[tuple[str, str]]:
        """(label, value) of each setting for the connection's page."""
        return [(label, settings.get(name) or "") for name, label, _ in cls.setting_fields]

    # -- the work ---------------------------------------------------------------------

    def test(self) -> str:
        """Reach the source; a short success message, or raise ProviderError saying what
        failed in words the merchant can act on."""
        raise NotImplementedError

    def locations(self) -> list[Location]:
        """The source's locations, for mapping to our stores."""
        return []

    # -- store mapping on a store's edit page (class methods: read from our database) ----

    @classmethod
    def locations_stored(cls, connection) -> list[Location] | None:
        """The locations a store's edit page offers to pick from, as last fetched and kept
        in our database (a page never waits on the source). None: its location values are
        typed on the connection's own Store mappings page instead (the report sources)."""
        return None

    @classmethod
    def locations_setup(cls, connection) -> dict | None:
        """What the connection lacks before it can have locations, as {"text", "link",
        "url"} for the store page ("No credential yet. Add one"); None when nothing."""
        return None

    @classmethod
    def locations_missing(cls, connection) -> str:
        """Why a set-up connection has no locations to pick from."""
        return "Its locations have not been fetched yet."

    def changes(self, run) -> Iterable[Change]:
        """What may have changed since the source's watermark, in the order to stage it."""
        raise NotImplementedError

    def stage(self, run, change: Change) -> None:
        """Bring one change in: stage its rows and have loyalty merge them, counting what
        came in on the run. One change lands whole or not at all."""
        raise NotImplementedError

    def sync(self, run) -> None:
        """A run's work: stage every change. Raise ProviderError when the source fails;
        any exception fails the run (sync_run_execute records it)."""
        for change in self.changes(run):
            self.stage(run, change)

    # -- what a run's outcome means (class methods: no secrets are read for them) ----------

    @classmethod
    def doing(cls, run) -> str:
        """What the run was doing, for a failure message: "importing day1.csv"."""
        return f"syncing {run.current_file}" if run.current_file else "syncing"

    @classmethod
    def failure_message(cls, run, exc: Exception) -> str:
        """A failed run's error, from an exception that is not a ProviderError."""
        return f"Failed while {cls.doing(run)}: {exc}"

    @classmethod
    def lapse_words(cls, run) -> tuple[str, str]:
        """(what the worker was doing, what was lost) when it stopped mid-run."""
        doing = f" while syncing {run.current_file}" if run.current_file else ""
        return doing, "the records in progress were not kept"

    @classmethod
    def run_failed(cls, run, error: str, *, interrupted: bool = False) -> None:
        """A run of this connector failed (or its worker was lost) with `error`."""

    @classmethod
    def run_succeeded(cls, run) -> None:
        """A run of this connector got to the end."""


# -- the registry ------------------------------------------------------------------------

@cache
def _load(paths: tuple[str, ...]) -> dict[str, type[Connector]]:
    found: dict[str, type[Connector]] = {}
    for path in paths:
        cls = import_string(path)
        if cls.key in found:
            raise ValueError(f"Two connectors have the key {cls.key!r}: {found[cls.key]} and {cls}.")
        found[cls.key] = cls
    return found


def connector_classes() -> dict[str, type[Connector]]:
    """Key -> connector class, in the registry's order."""
    return _load(CONNECTORS)


def connector_keys() -> list[str]:
    return list(connector_classes())


def connector_class(key: str) -> type[Connector]:
    """The connector class of a provider key; KeyError for one that is not registered."""
    return connector_classes()[key]


def connector_for(connection, *, credential=None) -> Connector:
    """The connector of a saved connection (of one of its credentials, where it runs per credential)."""
    return connector_class(connection.provider).for_connection(connection, credential=credential)


def connector_class_of(connection) -> type[Connector]:
    """The connection's connector class; the plain Connector for a provider no longer
    registered (its runs can still be swept and shown)."""
    return connector_classes().get(connection.provider, Connector)


def connector_for_run(run) -> Connector:
    return connector_for(run.connection, credential=run.credential if run.credential_id else None)


def report_connectors() -> list[type[Connector]]:
    """The connectors the report connection pages manage (built on ReportProvider)."""
    from .providers.base import ReportProvider

    return [cls for cls in connector_classes().values() if issubclass(cls, ReportProvider)]


def report_choices() -> list[dict]:
    """The report connectors as "Add a connection" offers them: key, label, help."""
    return [{"key": cls.key, "label": cls.label, "help": cls.choice_help or listing_of(cls).summary}
            for cls in report_connectors()]


def listing_of(cls: type[Connector]) -> Listing:
    return cls.listing or Listing(
        name=cls.label, kind="Reports", summary="", initials=cls.key[:2].title(), color="#667085",
        features=frozenset())


def source_kind_of(cls: type[Connector]) -> str:
    """The loyalty source kind a new connection of `cls` records its data under."""
    from loyalty.models import Source

    if cls.source_kind:
        return cls.source_kind
    return cls.key if cls.key in Source.Kind.values else Source.Kind.POS


def label_of(key: str) -> str:
    """The connector's label, or the key itself for one no longer registered."""
    cls = connector_classes().get(key)
    return cls.label if cls is not None else key
