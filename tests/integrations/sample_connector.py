"""A sample POS connector, written from docs/integrations.md alone: "Acme POS", a point of
sale that hands out each day's sales as a CSV export of its shop.

The POS itself is faked in memory (`AcmePos`): a shop id, an API key, the shop's stores
and its exports. The connector is a ReportProvider, so it only lists the exports and
opens one; the platform imports them, maps stores, schedules and runs the syncs.
Registered by a test with the registry's one line (see test_sample_connector.py).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from dataclasses import dataclass, field

from integrations.connectors import REPORT_FEATURES, Listing, Location
from integrations.providers.base import ConnectionProblem, ProviderError, ReportFile, ReportProvider


@dataclass
class AcmeShop:
    api_key: str
    stores: dict[str, str] = field(default_factory=dict)  # store code -> name
    exports: dict[str, bytes] = field(default_factory=dict)  # export name -> CSV
    exported_at: dict[str, dt.datetime] = field(default_factory=dict)


class AcmePos:
    """The fake POS: shop id -> shop. Tests add shops, stores and exports."""

    shops: dict[str, AcmeShop] = {}
    reachable = True

    @classmethod
    def reset(cls) -> None:
        cls.shops, cls.reachable = {}, True

    @classmethod
    def export(cls, shop_id: str, name: str, csv_text: str) -> None:
        shop = cls.shops[shop_id]
        shop.exports[name] = csv_text.encode()
        shop.exported_at[name] = dt.datetime.now(dt.UTC)


class AcmeConnector(ReportProvider):
    kind = "acme"
    label = "Acme POS"
    listing = Listing("Acme POS", "Point of sale",
                      "Daily sales exports of your Acme POS shop: customers, sales and payment methods.",
                      "Ac", "#b42318", REPORT_FEATURES, keywords="acme pos export")
    choice_help = "An Acme POS shop: needs the shop id and an API key from Acme's settings page."
    required_headers = ("ReceiptId", "customerId")
    deletion_removes_data = True
    test_at_once = True  # the fake answers at once; a real POS is tested in the background
    setting_fields = (("shop", "Shop id", "Your shop's id in Acme, e.g. 4711."),)
    credential_fields = (("api_key", "API key", "From Acme's settings page, under Integrations."),)

    def _shop(self) -> AcmeShop:
        shop_id = (self.settings.get("shop") or "").strip()
        if not shop_id:
            raise ProviderError(ConnectionProblem.MISCONFIGURED, "Enter the shop id Acme gave you.")
        if not AcmePos.reachable:
            raise ProviderError(ConnectionProblem.UNREACHABLE, "Acme POS did not answer; try again later.")
        shop = AcmePos.shops.get(shop_id)
        if shop is None:
            raise ProviderError(ConnectionProblem.NOT_FOUND, f"Acme has no shop {shop_id}.")
        if self.credentials.get("api_key") != shop.api_key:
            raise ProviderError(ConnectionProblem.BAD_CREDENTIALS,
                                f"Acme refused the API key for shop {shop_id}.")
        return shop

    def test(self) -> str:
        shop = self._shop()
        count = len(shop.exports)
        return f"Acme shop {self.settings['shop']} answers: {count} export{'s' if count != 1 else ''}."

    def locations(self) -> list[Location]:
        return [Location(code, name) for code, name in sorted(self._shop().stores.items())]

    def list_files(self) -> list[ReportFile]:
        shop = self._shop()
        return [ReportFile(key=name, etag=hashlib.sha256(data).hexdigest(), size=len(data),
                           modified_at=shop.exported_at.get(name))
                for name, data in sorted(shop.exports.items())]

    def open(self, file: ReportFile):
        data = self._shop().exports.get(file.key)
        if data is None:
            raise ProviderError(ConnectionProblem.NOT_FOUND, f"Export {file.key} is gone from Acme.")
        return io.BytesIO(data)
