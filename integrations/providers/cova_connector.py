"""Cova as a connector: the same interface as the report sources, over Cova's API.

A Cova connection holds several credentials (one per Cova company or market), each with
its own watermarks and nightly schedule, so a Cova run is the run of one credential. The
work is Cova's own: `CovaClient` reaches Cova, and `services.cova.cova_sync` stages the
customers and sales that changed since the credential's watermarks and merges them. This
class only fits them to the interface; the Cova pages manage its connections.
"""

from __future__ import annotations

from ..connectors import FEATURES, Change, Connector, Listing, Location


def _fee() -> tuple[str, str]:
    from ..services.cova import COVA_FEE_PER_LOCATION as fee

    return f"${fee:.0f} per month for each connected location", f"${fee:.0f} / location / month"


class CovaConnector(Connector):
    key = "cova"
    label = "Cova POS"
    listing = Listing(
        "Cova", "Point of sale",
        "Customers, sales and payment methods synced from Cova every night; members who join here "
        "are created in Cova, and rewards are redeemed at the register.",
        "Co", "#0e7c66", frozenset(k for k, _, _ in FEATURES),
        keywords="pos cova covasoft iqmetrix api credential", fee=_fee()[0], fee_short=_fee()[1])
    connect_url_name = "cova_connect"
    page_url_name = "cova_connection"
    runs_per_credential = True

    def _client(self):
        from ..services.cova import cova_client_for

        if self.credential is None:
            raise ValueError("A Cova connector reaches Cova through one of its credentials.")
        return cova_client_for(self.credential)

    def test(self) -> str:
        return self._client().test()

    def locations(self) -> list[Location]:
        """What Cova lists now, for this credential (the pages read the stored copy)."""
        return [Location(loc.id, loc.name, loc.state or "", loc.timezone or "")
                for loc in self._client().locations()]

    def changes(self, run) -> list[Change]:
        """One change: the customers modified since the credential's watermark, and each
        location's sales completed since its own."""
        credential = self.credential
        return [Change("Customers and sales", {"customers_since": credential.customers_since,
                                               "sales_since": dict(credential.sales_since or {})})]

    def stage(self, run, change: Change) -> None:
        """Read what changed into the staging tables, merge it in one transaction and move
        the watermarks; a failure anywhere leaves every watermark where it was."""
        from ..services.cova import cova_sync

        cova_sync(run)

    @classmethod
    def locations_stored(cls, connection) -> list[Location]:
        """The locations its credentials saw when last asked (a test, a sync or "Refresh
        from Cova"), each once."""
        from ..selectors import cova_locations

        return [Location(loc.id, loc.name, loc.state, loc.timezone)
                for loc in cova_locations(connection=connection)]

    @classmethod
    def locations_setup(cls, connection) -> dict | None:
        from django.urls import reverse

        if connection.cova_credentials.exists():
            return None
        return {"text": "No credential yet.", "link": "Add one",
                "url": reverse("cova_credential_create", args=[connection.pk])}

    @classmethod
    def locations_missing(cls, connection) -> str:
        return connection.locations_error or (
            "Cova's locations have not been fetched yet: use “Refresh from Cova” on the connection's page.")

    @classmethod
    def doing(cls, run) -> str:
        return "syncing with Cova"

    @classmethod
    def failure_message(cls, run, exc: Exception) -> str:
        return f"Cova sync failed: {exc}"

    @classmethod
    def run_failed(cls, run, error: str, *, interrupted: bool = False) -> None:
        """The credential's page shows why; a failure (not a lost worker) also marks it
        failing since its first failure."""
        from ..models import CovaCredential
        from ..services.cova import credential_failing

        if run.credential_id is None:
            return
        if interrupted:
            CovaCredential.objects.filter(pk=run.credential_id).update(last_error=error)
        else:
            credential_failing(run.credential_id, error=error, at=run.finished_at)

    @classmethod
    def run_succeeded(cls, run) -> None:
        from ..services.cova import credential_verified

        if run.credential_id is not None:
            credential_verified(run.credential_id, at=run.finished_at)
