"""Reads shared by the connection pages, the API and the command line."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db.models import Count, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce
from django.shortcuts import get_object_or_404

from loyalty.models import Transaction

from . import fields as F
from .connectors import connector_classes, connector_keys, report_connectors
from .models import Connection, CovaCredential, ImportedFile, Provider, RowError, StoreMapping, SyncRun
from .providers.cova import CovaLocation
from .reader import FileRejected, PreviewRow
from .services.imports import report_reader


def connection_list(*, company):
    return Connection.objects.filter(company=company).select_related("default_store")


def connection_get(*, company, connection_id) -> Connection:
    """Another company's connection is a 404."""
    return get_object_or_404(Connection.objects.select_related("company", "source", "default_store"),
                             company=company, pk=connection_id)


def sync_run_get(*, company, run_id) -> SyncRun:
    return get_object_or_404(SyncRun.objects.select_related("connection"), company=company, pk=run_id)


def imported_file_get(*, company, file_id) -> ImportedFile:
    return get_object_or_404(ImportedFile.objects.select_related("connection__company"),
                             connection__company=company, pk=file_id)


def sync_runs(*, connection, limit: int = 30):
    return connection.runs.all()[:limit]


@dataclass
class Preview:
    file_name: str
    headers: list[str]
    mapped: dict[int, str]  # column index -> canonical field (saved map, else suggestion)
    suggested: dict[int, str]  # column index -> what the header's name suggests
    missing_required: list[str]
    rows: list[PreviewRow]
    encoding: str
    delimiter: str
    error: str = ""

    @property
    def problem_count(self) -> int:
        return sum(len(r.problems) for r in self.rows)


def report_preview(*, connection: Connection, stream, file_name: str,
                   header_map: dict[str, str] | None = None, limit: int = 20) -> Preview:
    """How the first rows of a sample file would import under `header_map` (default: the
    connection's saved map)."""
    try:
        reader = report_reader(connection, stream, file_name=file_name, header_map=header_map,
                               check_required=False)
    except FileRejected as exc:
        return Preview(file_name, [], {}, {}, [], [], "", "", error=exc.message)
    suggested = {i: F.suggest(h) for i, h in enumerate(reader.headers)}
    try:
        rows = reader.preview(limit)
    except (FileRejected, UnicodeError) as exc:
        return Preview(file_name, reader.headers, reader.columns, suggested, reader.missing_required, [],
                       reader.encoding, reader.delimiter, error=str(exc))
    return Preview(file_name, reader.headers, reader.columns, suggested, reader.missing_required, rows,
                   reader.encoding, reader.delimiter)


# -- the connection pages --------------------------------------------------------------

def connections_overview(*, company):
    """The report connection list (a connector with pages of its own, such as Cova, is not
    on it): each with its number of files and its latest run."""
    latest = SyncRun.objects.filter(connection=OuterRef("pk")).order_by("-created_at", "-id")
    reports = set(report_connectors())
    own_pages = [key for key, cls in connector_classes().items() if cls not in reports]
    return connection_list(company=company).exclude(provider__in=own_pages).annotate(
        file_count=Count("files", filter=Q(files__removed_at__isnull=True), distinct=True),
        last_run_id=Subquery(latest.values("pk")[:1]),
        last_run_state=Subquery(latest.values("state")[:1]),
        last_run_at=Subquery(latest.annotate(
            at=Coalesce("finished_at", "started_at", "created_at")).values("at")[:1]),
    )


def connection_files(*, connection):
    return connection.files.select_related("last_run").order_by("-imported_at", "key")


def sync_run_files(*, run):
    return run.files.order_by("key")


def sync_run_rejected_again(*, run) -> list[ImportedFile]:
    """Files this run found as they were when an earlier run rejected them."""
    if run.started_at is None:
        return []
    return list(run.files.filter(state=ImportedFile.State.REJECTED, imported_at__lt=run.started_at)
                .select_related("connection__company").order_by("key"))


def imported_file_row_errors(*, imported_file):
    return imported_file.row_errors.order_by("row_number", "id")


UNKNOWN_STORE_REASON = "is not a store we know"


def unknown_store_values(*, connection, limit: int = 50) -> list[dict]:
    """Location values the latest imports of this connection did not know, most rows first,
    leaving out those mapped (or named like a store) since."""
    known = {m.external_location_id.strip().lower() for m in connection.store_mappings.all()}
    known |= {s.name.strip().lower() for s in connection.company.stores.all()}
    values = (RowError.objects
              .filter(imported_file__connection=connection, imported_file__state=ImportedFile.State.IMPORTED,
                      reason__startswith=UNKNOWN_STORE_REASON)
              .exclude(value="")
              .values("value")
              .annotate(rows=Count("id"), files=Count("imported_file", distinct=True))
              .order_by("-rows", "value"))
    return [v for v in values[: limit * 2] if v["value"].strip().lower() not in known][:limit]


# -- the integration catalog and Cova ---------------------------------------------------

class Status:
    NOT_CONNECTED = "not_connected"
    CONNECTED = "connected"
    FROZEN = "frozen"
    FAILING = "failing"
    # It works, but the last run turned rows or files away: someone should look.
    NEEDS_LOOK = "needs_look"

    LABELS = {NOT_CONNECTED: "Not connected", CONNECTED: "Connected", FROZEN: "Frozen", FAILING: "Failing",
              NEEDS_LOOK: "Completed with errors"}


@dataclass
class IntegrationStatus:
    """How one provider of the catalog stands for a company: its connections and the worst of
    their states (failing, then connected, then frozen)."""

    state: str = Status.NOT_CONNECTED
    connections: list = field(default_factory=list)  # Connection rows, each with `.state`
    problem: str = ""  # why it is failing, for the card

    @property
    def label(self) -> str:
        return Status.LABELS[self.state]


def _overall(states: list[str]) -> str:
    if not states:
        return Status.NOT_CONNECTED
    for state in (Status.FAILING, Status.NEEDS_LOOK, Status.CONNECTED, Status.FROZEN):
        if state in states:
            return state
    return Status.NOT_CONNECTED


def _last_run(field: str, value: str = "state"):
    latest = SyncRun.objects.filter(**{field: OuterRef("pk")}).order_by("-created_at", "-id")
    return Subquery(latest.values(value)[:1])


def _last_run_state(field: str):
    return _last_run(field)


def _with_errors_problem(rows_accepted, rows_rejected, files_rejected) -> str:
    run = SyncRun(rows_accepted=rows_accepted or 0, rows_rejected=rows_rejected or 0,
                  files_rejected=files_rejected or 0)
    return f"The last sync completed with errors: {run.rows_summary}."


def integration_statuses(*, company) -> dict[str, IntegrationStatus]:
    """Connector key ("cova", "s3", "onedrive", "folder"...) or "pos_api" -> its status. Failing:
    the last run failed, or a Cova credential is failing. Needs a look: the last run
    completed with errors (rows or files rejected). Three queries."""
    statuses = {key: IntegrationStatus() for key in (*connector_keys(), "pos_api")}
    connections = list(Connection.objects.filter(company=company).order_by("name").annotate(
        last_run_state=_last_run("connection"), last_rows_accepted=_last_run("connection", "rows_accepted"),
        last_rows_rejected=_last_run("connection", "rows_rejected"),
        last_files_rejected=_last_run("connection", "files_rejected")))
    credentials: dict[int, list[CovaCredential]] = {}
    for credential in (CovaCredential.objects.filter(connection__company=company)
                       .annotate(last_run_state=_last_run_state("credential")).order_by("id")):
        credentials.setdefault(credential.connection_id, []).append(credential)
    per_credential = {key: cls.runs_per_credential for key, cls in connector_classes().items()}
    for connection in connections:
        status = statuses.setdefault(connection.provider, IntegrationStatus())
        connection.problem = ""
        if per_credential.get(connection.provider, False):  # Cova: as its credentials stand
            creds = credentials.get(connection.pk, [])
            connection.credential_count = len(creds)
            failing = [c for c in creds if c.failing_since or c.last_run_state == SyncRun.State.FAILED]
            if failing:
                connection.state = Status.FAILING
                connection.problem = failing[0].last_error or "The last sync failed."
            elif creds and all(c.is_frozen for c in creds):
                connection.state = Status.FROZEN
            else:
                connection.state = Status.CONNECTED if creds else Status.NOT_CONNECTED
        elif connection.last_run_state == SyncRun.State.FAILED:
            connection.state, connection.problem = Status.FAILING, "The last sync failed."
        elif connection.last_run_state == SyncRun.State.COMPLETED_WITH_ERRORS:
            connection.state = Status.NEEDS_LOOK
            connection.problem = _with_errors_problem(
                connection.last_rows_accepted, connection.last_rows_rejected, connection.last_files_rejected)
        else:
            connection.state = Status.FROZEN if connection.is_frozen else Status.CONNECTED
        status.connections.append(connection)
    for status in statuses.values():
        status.state = _overall([c.state for c in status.connections])
        status.problem = next((c.problem for c in status.connections if c.problem), "")
    if company.api_keys.filter(revoked_at__isnull=True).exists():
        statuses["pos_api"].state = Status.CONNECTED
    return statuses


def cova_connections(*, company):
    return Connection.objects.filter(company=company, provider=Provider.COVA).order_by("name")


def cova_connection_get(*, company, connection_id) -> Connection:
    """A Cova connection of the company; anything else is a 404."""
    return get_object_or_404(Connection.objects.select_related("company", "source"),
                             company=company, provider=Provider.COVA, pk=connection_id)


def cova_credential_get(*, company, credential_id) -> CovaCredential:
    """Another company's credential is a 404."""
    return get_object_or_404(CovaCredential.objects.select_related("connection__company"),
                             connection__company=company, pk=credential_id)


def cova_credentials(*, connection):
    return connection.cova_credentials.annotate(last_run_state=_last_run_state("credential")).order_by("id")


def cova_locations(*, connection) -> list[CovaLocation]:
    """The connection's Cova locations as last fetched (stored, never asked of Cova here),
    each once even when two credentials see it, by name."""
    found: dict[str, CovaLocation] = {}
    for row in connection.cova_locations.order_by("name", "location_id", "credential_id"):
        found.setdefault(row.location_id, CovaLocation(row.location_id, row.name, row.state, row.timezone))
    return sorted(found.values(), key=lambda loc: (loc.name.lower(), loc.id))


def cova_runs(*, connection, limit: int = 10):
    return connection.runs.select_related("credential").order_by("-created_at", "-id")[:limit]


def store_mappings_of_store(*, store):
    """Every mapping onto this store, of any connection, with its connection."""
    return (StoreMapping.objects.filter(store=store, connection__company_id=store.company_id)
            .select_related("connection").order_by("connection__name", "external_location_id"))


# --- locations waiting for a store --------------------------------------------------------

def _waiting_sales(company):
    return Transaction.objects.filter(company=company, store__isnull=True).exclude(source_location="")


def unmapped_locations(*, company, connection: Connection | None = None) -> list[dict]:
    """Locations whose sales wait for a store mapping: connection, location id, sales.
    With `connection`, only that connection's."""
    sales = _waiting_sales(company)
    if connection is not None:
        sales = sales.filter(source_id=connection.source_id)
    rows = list(sales.values("source_id", "source_location").annotate(sales=Count("id"))
                .order_by("source_id", "source_location"))
    if not rows:
        return []
    connections = {c.source_id: c for c in Connection.objects.filter(
        company=company, source_id__in={r["source_id"] for r in rows})}
    return [{"connection": connections.get(r["source_id"]), "location_id": r["source_location"],
             "sales": r["sales"]} for r in rows]


def unmapped_location_count(*, company) -> int:
    """How many locations wait for a store mapping, for the notice on every page."""
    return _waiting_sales(company).values("source_id", "source_location").distinct().count()
