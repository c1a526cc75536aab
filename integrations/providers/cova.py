"""A client for the Cova POS API: sign-in, locations, changed customers, completed sales
and pushing a new customer (a loyalty signup) back to Cova.

Cova gives each integration an OAuth2 client (client id + client secret) and an API user
(username + password); the client signs in with the password grant and sends the bearer
token on every API call. Two hosts are involved, both configurable for tests and demos.

Wire format
-----------
Base URLs: ``accounts_url`` (default https://accounts.iqmetrix.net) and ``api_url``
(default https://api.covasoft.net). Timestamps are ISO-8601 UTC with a trailing ``Z``;
amounts are JSON numbers (read with ``Decimal(str(x))``).

Token (OAuth2 password grant)::

    POST {accounts_url}/v1/oauth2/token      (application/x-www-form-urlencoded)
        grant_type=password&client_id=..&client_secret=..&username=..&password=..
    200 {"access_token": "...", "token_type": "Bearer", "expires_in": 3600, "refresh_token": "..."}
    401 {"error": "invalid_client", "error_description": "..."}   wrong client id / secret
    400 {"error": "invalid_grant", "error_description": "..."}    wrong username / password

Who am I, and what may I do::

    GET {accounts_url}/v1/me                 (Authorization: Bearer <token>)
    200 {"Id": 4521, "UserName": "...", "ParentEntityId": <company id>,
         "Permissions": [{"Name": "View Loyalty Program"}, ...]}

Locations::

    GET {api_url}/v1/Companies({CompanyId})/Locations
    200 {"value": [{"Id": 1001, "Name": "Downtown", "State": "CO", "TimeZone": "America/Denver"}]}
    404 {"Message": "Company 999 not found"}      403 when the user may not read the company

Customers changed since a watermark (no ``$filter`` on a first full sync)::

    GET {api_url}/customers/v1/Companies({CompanyId})/Customers
        ?$filter=LastModifiedDateUtc ge 2026-11-01T00:00:00Z
        &$orderby=LastModifiedDateUtc,Id&$top=500&$skip=0
    200 {"value": [Customer, ...]}
    Customer = {"Id": "<guid>", "FirstName", "LastName", "Email", "Phone" (as typed),
                "DateOfBirth": "1990-05-01" | null, "State": "CO" | null,
                "PricingGroupId": "<string>" | null,
                "MergedIntoCustomerId": null | "<guid of the survivor>",
                "CreatedDateUtc", "LastModifiedDateUtc"}

    GET {api_url}/customers/v1/Companies({CompanyId})/Customers({Id})  -> one Customer

Pages are read with ``$skip += $top`` until a page is shorter than ``$top``. A customer
with ``MergedIntoCustomerId`` is a duplicate merged into another one; the chain
(A -> B -> C) is followed to its end, fetching survivors that are not on the page.

Completed sales of one location since a watermark::

    GET {api_url}/v1/Companies({CompanyId})/Locations({LocationId})/Sales
        ?$filter=CompletedDateUtc ge <iso>&$orderby=CompletedDateUtc,Id&$top=200&$skip=0
        [&$expand=Payments]
    200 {"value": [Sale, ...]}
    Sale = {"Id": "<string>", "LocationId": 1001, "CustomerId": "<guid>" | null (anonymous),
            "CompletedDateUtc", "FulfillmentMethod": "InStore" | "Pickup" | "Delivery",
            "EmployeeName",
            "Items": [{"LineId": "1", "Sku", "ProductName", "Brand", "Category",
                       "Quantity": 1.0, "UnitPrice": 35.0, "Discount": 0.0, "Tax": 5.25,
                       "Total": 35.0}],
            "Payments": [{"Method": "Cash", "Amount": 40.25}]}   only with $expand=Payments

Create a customer (push a signup)::

    POST {api_url}/customers/v1/Companies({CompanyId})/Customers
        {"FirstName", "LastName", "Email", "Phone", "DateOfBirth", "PricingGroupId"}
    201 {"Id": "<guid>", ...customer}          400 {"Message": "..."} on bad input

Failures become ProviderError: connection errors, timeouts, 5xx and 429 are retried with
exponential backoff and end as UNREACHABLE; a 401 on an API call gets a fresh token once.
The client secret, the password and the access token never appear in a message, an
exception or a log line.
"""

from __future__ import annotations

import datetime as dt
import logging
import time  # noqa: F401  (kept importable: integrations.providers.cova.time.sleep is patched to skip backoff)
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from urllib.parse import quote, urlencode, urlsplit

import requests
from django.conf import settings

from loyalty.bounds import MONEY_MAX, QUANTITY_MAX

from .base import ConnectionProblem, ProviderError
from .http import ApiClient, credential_key, json_or_none

logger = logging.getLogger(__name__)

DEFAULT_ACCOUNTS_URL = "https://accounts.iqmetrix.net"
DEFAULT_API_URL = "https://api.covasoft.net"
REQUIRED_PERMISSIONS = ("Manage Dispensary Specific Elements", "View Loyalty Program", "Edit Loyalty Program")

FULFILLMENT = {"instore": "in_store", "pickup": "pickup", "delivery": "delivery"}
# Longest merge chain (A -> B -> C ...) followed before giving up on finding the survivor.
MAX_MERGE_CHAIN = 10


@dataclass(frozen=True)
class CovaLocation:
    id: str
    name: str
    state: str
    timezone: str


@dataclass(frozen=True)
class CovaCustomer:
    id: str
    first_name: str
    last_name: str
    email: str
    phone: str
    birth_date: dt.date | None
    state: str
    pricing_group_id: str
    created_at: dt.datetime
    modified_at: dt.datetime
    survivor_id: str  # == id unless this customer was merged into another one


@dataclass(frozen=True)
class CovaSaleItem:
    line_id: str
    sku: str
    product: str
    brand: str
    category: str
    quantity: Decimal
    unit_price: Decimal
    discount: Decimal
    tax: Decimal
    total: Decimal


@dataclass(frozen=True)
class CovaPayment:
    method: str
    amount: Decimal


@dataclass(frozen=True)
class CovaSale:
    id: str
    location_id: str
    customer_id: str  # "" when anonymous
    completed_at: dt.datetime
    fulfillment: str  # "in_store" | "pickup" | "delivery"
    employee: str
    items: tuple[CovaSaleItem, ...]
    payments: tuple[CovaPayment, ...]  # empty when payment methods are skipped


class CovaClient(ApiClient):
    service = "Cova"
    unsure_note = "; the customer may or may not have been created"

    def __init__(self, *, client_id, client_secret, username, password, company_id,
                 accounts_url=DEFAULT_ACCOUNTS_URL, api_url=DEFAULT_API_URL,
                 timeout=None, max_attempts=4, backoff=0.5):
        """`timeout`: seconds to connect and again to wait for an answer (settings.
        COVA_TIMEOUT_SECONDS when None)."""
        super().__init__(timeout=float(settings.COVA_TIMEOUT_SECONDS if timeout is None else timeout),
                         max_attempts=max_attempts, backoff=backoff)
        self.client_id = str(client_id or "").strip()
        self._client_secret = str(client_secret or "").strip()
        self.username = str(username or "").strip()
        self._password = str(password or "").strip()
        self.company_id = str(company_id if company_id is not None else "").strip()
        self.accounts_url = str(accounts_url or DEFAULT_ACCOUNTS_URL).strip().rstrip("/")
        self.api_url = str(api_url or DEFAULT_API_URL).strip().rstrip("/")
        self._token_key = credential_key(self.accounts_url, self.client_id, self._client_secret,
                                         self.username, self._password)

    def __repr__(self) -> str:
        return f"<CovaClient company={self.company_id} user={self.username} api={self._host(self.api_url)}>"

    # -- public API ----------------------------------------------------------------------

    def token(self) -> str:
        """A bearer token, cached until shortly before Cova says it expires."""
        return self._bearer(self._token_key, self._fetch_token)

    def missing_permissions(self, me: dict | None = None) -> list[str]:
        """The REQUIRED_PERMISSIONS the API user lacks, in that order."""
        granted = self._granted(me if me is not None else self._me())
        return [name for name in REQUIRED_PERMISSIONS if name.casefold() not in granted]

    def test(self) -> str:
        """Sign in, check the permissions and read the company's locations; a short success
        message, or ProviderError naming exactly what is wrong."""
        me = self._me()
        user = str(me.get("UserName") or self.username)
        missing = self.missing_permissions(me)
        if missing:
            raise ProviderError(ConnectionProblem.NO_PERMISSION, _missing_message(user, missing))
        try:
            locations = self.locations()
        except ProviderError as error:
            parent = str(me.get("ParentEntityId") or "")
            if error.problem == ConnectionProblem.NOT_FOUND and parent and parent != self.company_id:
                raise ProviderError(error.problem, f"{error.message} The Cova user {user} belongs to "
                                    f"company {parent}.") from error
            raise
        self.tested_locations = locations  # kept by the caller, so the pages need not ask again
        count = len(locations)
        return f"Connected to Cova company {self.company_id}: {count} location{'' if count == 1 else 's'}."

    def locations(self) -> list[CovaLocation]:
        url = f"{self.api_url}/v1/Companies({self._company()})/Locations"
        body = self._get_json(url, what=f"the locations of Cova company {self.company_id}")
        return [self._location(raw) for raw in _value(body, url)]

    def customers_changed(self, since: dt.datetime | None,
                          page_size: int = 500) -> Iterator[list[CovaCustomer]]:
        """Pages of the customers created or changed since `since` (all when None), oldest
        change first. Each customer carries `survivor_id`: its own id, or the id of the
        customer it was (transitively) merged into.

        A customer changed while the pages are read moves to the end of the order, and
        every later customer one place back: pages overlap by a fifth so that nobody slips
        between two of them. A customer can therefore come twice; the later one is the
        newer."""
        url = f"{self.api_url}/customers/v1/Companies({self._company()})/Customers"
        fetched: dict[str, dict] = {}  # survivors fetched one by one, for later merge chains
        yielded: dict[str, object] = {}  # id -> the change time already yielded
        for page in self._pages(url, "LastModifiedDateUtc", since, page_size, overlap=page_size // 5,
                                what=f"the customers of Cova company {self.company_id}"):
            raws = [raw for raw in page if isinstance(raw, dict)]
            if len(raws) != len(page):
                raise self._malformed(url, "a customer that is not an object")
            # The overlap brings the same versions again: those are left out.
            raws = [raw for raw in raws if not self._seen_before(raw, yielded)]
            if not raws:
                continue
            if len(fetched) > 10_000:
                fetched.clear()
            known = {**fetched, **{str(raw["Id"]): raw for raw in raws if raw.get("Id")}}
            customers = [self._customer(raw, self._survivor(raw, known, fetched)) for raw in raws]
            yielded.update((str(raw["Id"]), raw.get("LastModifiedDateUtc")) for raw in raws if raw.get("Id"))
            yield customers

    def sales(self, location_id: str, since: dt.datetime | None, *, payments: bool = True,
              page_size: int = 200) -> Iterator[list[CovaSale]]:
        """Pages of the sales of one location completed since `since` (all when None),
        oldest first. Payment methods only when `payments` (one less join for Cova)."""
        location = str(location_id).strip()
        if not location.isdigit():
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                f"Cova location id '{location}' is not a number.")
        url = f"{self.api_url}/v1/Companies({self._company()})/Locations({location})/Sales"
        extra = {"$expand": "Payments"} if payments else {}
        for page in self._pages(url, "CompletedDateUtc", since, page_size, extra=extra,
                                what=f"the sales of Cova location {location} of company {self.company_id}"):
            yield [self._sale(raw, location, payments, url) for raw in page]

    def customer_create(self, *, first_name, last_name, email, phone, birth_date, pricing_group_id) -> str:
        """Create a customer in Cova; the new customer's Cova id."""
        url = f"{self.api_url}/customers/v1/Companies({self._company()})/Customers"
        if isinstance(birth_date, dt.datetime):
            birth_date = birth_date.date()
        birth = birth_date.isoformat() if isinstance(birth_date, dt.date) else _text(birth_date)
        payload = {
            "FirstName": _text(first_name) or None,
            "LastName": _text(last_name) or None,
            "Email": _text(email) or None,
            "Phone": _text(phone) or None,
            "DateOfBirth": birth or None,
            "PricingGroupId": _text(pricing_group_id) or None,
        }
        response = self._api("POST", url, what=f"a new customer in Cova company {self.company_id}",
                             idempotent=False, json=payload)
        body = json_or_none(response)
        if not isinstance(body, dict) or not body.get("Id"):
            raise self._malformed(url, "no Id for the new customer", response.status_code)
        return str(body["Id"])

    # -- settings ------------------------------------------------------------------------

    def _check_settings(self) -> None:
        for value, label in ((self.client_id, "client id"), (self._client_secret, "client secret"),
                             (self.username, "username"), (self._password, "password"),
                             (self.company_id, "company id")):
            if not value:
                raise ProviderError(ConnectionProblem.MISCONFIGURED, f"The Cova {label} is missing.")
        self._company()
        for url in (self.accounts_url, self.api_url):
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.netloc:
                raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                    f"'{url}' is not a valid URL; it must start with https://.")

    def _company(self) -> str:
        if not self.company_id:
            raise ProviderError(ConnectionProblem.MISCONFIGURED, "The Cova company id is missing.")
        if not self.company_id.isdigit():
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                f"Cova company id '{self.company_id}' is not a number.")
        return self.company_id

    # -- HTTP ----------------------------------------------------------------------------

    def _secrets(self) -> tuple[str, ...]:
        return (self._client_secret, self._password)

    def _fetch_token(self) -> tuple[str, float]:
        self._check_settings()
        url = f"{self.accounts_url}/v1/oauth2/token"
        response = self._send("POST", url, data={
            "grant_type": "password",
            "client_id": self.client_id,
            "client_secret": self._client_secret,
            "username": self.username,
            "password": self._password,
        }, headers={"Accept": "application/json"})
        body = json_or_none(response)
        body = body if isinstance(body, dict) else {}
        if response.status_code == 200 and body.get("access_token"):
            try:
                lifetime = float(body.get("expires_in") or 3600)
            except (TypeError, ValueError):
                lifetime = 3600.0
            return str(body["access_token"]), max(lifetime, 0.0)
        raise self._token_error(response, body)

    def _token_error(self, response: requests.Response, body: dict) -> ProviderError:
        status = response.status_code
        error = str(body.get("error") or "")
        detail = self._scrub(str(body.get("error_description") or "").strip())
        detail = f" ({error}: {detail})" if detail else f" ({error})" if error else ""
        if error in ("invalid_client", "unauthorized_client"):
            return ProviderError(ConnectionProblem.BAD_CREDENTIALS,
                                 f"Cova rejected the client id '{self.client_id}' or its client secret"
                                 f"{detail}. Check both against what Cova sent.")
        if error == "invalid_grant":
            return ProviderError(ConnectionProblem.BAD_CREDENTIALS,
                                 f"Cova rejected the username '{self.username}' or its password{detail}. "
                                 "Check both against what Cova sent.")
        if status == 200 or not error:
            return self._malformed(response.url or self.accounts_url, "no access token", status)
        return ProviderError(ConnectionProblem.MISCONFIGURED,
                             f"Cova refused to sign in (HTTP {status}){detail}.")

    def _api(self, method: str, url: str, *, what: str, idempotent: bool = True,
             not_found_ok: bool = False, **kwargs) -> requests.Response | None:
        """A call with the bearer token; a 401 gets a fresh token once. Any other answer
        but 2xx becomes ProviderError (or None for a 404 when `not_found_ok`)."""
        response = None
        for _ in range(2):
            token = self.token()
            headers = {"Authorization": f"Bearer {token}", "Accept": "application/json"}
            response = self._send(method, url, idempotent=idempotent, headers=headers, **kwargs)
            if response.status_code != 401:
                break
            response.close()
            self.tokens.drop(self._token_key, token)  # unless another thread renewed it already
        assert response is not None
        status = response.status_code
        if status < 300:
            return response
        if status == 404 and not_found_ok:
            response.close()
            return None
        raise self._api_error(response, "read" if method == "GET" else "create", what)

    def _api_error(self, response: requests.Response, verb: str, what: str) -> ProviderError:
        status = response.status_code
        body = json_or_none(response)
        message = ""
        if isinstance(body, dict):
            message = self._scrub(str(body.get("Message") or body.get("message") or "").strip()).rstrip(".")
        detail = f": {message}" if message else f" (HTTP {status})"
        response.close()
        if status == 401:
            return ProviderError(ConnectionProblem.BAD_CREDENTIALS,
                                 f"Cova did not accept a fresh access token for the user {self.username} "
                                 f"when asked to {verb} {what}{detail}.")
        if status == 403:
            return ProviderError(ConnectionProblem.NO_PERMISSION,
                                 f"The Cova user {self.username} may not {verb} {what}{detail}.")
        if status == 404:
            if "/Locations(" in response.url:
                return ProviderError(ConnectionProblem.NOT_FOUND, f"Cova could not find {what}{detail}.")
            return ProviderError(ConnectionProblem.NOT_FOUND, f"Cova company {self.company_id} was not "
                                 f"found at {self._host(response.url)}.")
        if status >= 500 or status == 429:
            # Only a call that is not retried gets here: Cova may have acted on it.
            return ProviderError(ConnectionProblem.UNREACHABLE,
                                 f"Cova answered HTTP {status} at {self._host(response.url)} when asked to "
                                 f"{verb} {what}; it may or may not have been done.",
                                 acted_maybe=status >= 500)
        return ProviderError(ConnectionProblem.MISCONFIGURED, f"Cova refused to {verb} {what}{detail}.")

    def _get_json(self, url: str, *, what: str, not_found_ok: bool = False):
        response = self._api("GET", url, what=what, not_found_ok=not_found_ok)
        if response is None:
            return None
        body = json_or_none(response)
        if body is None:
            raise self._malformed(url, "no JSON", response.status_code)
        return body

    def _malformed(self, url: str, what: str, status: int = 200) -> ProviderError:
        return ProviderError(ConnectionProblem.MISCONFIGURED,
                             f"{self._host(url)} did not answer like Cova ({what}, HTTP {status}).")

    @staticmethod
    def _seen_before(raw: dict, yielded: dict[str, object]) -> bool:
        key = str(raw.get("Id") or "")
        return bool(key) and key in yielded and yielded[key] == raw.get("LastModifiedDateUtc")

    def _pages(self, url: str, field: str, since: dt.datetime | None, page_size: int, *,
               what: str, extra: dict | None = None, overlap: int = 0) -> Iterator[list]:
        """The `value` lists of an OData collection, `page_size` at a time by $skip, until a
        page is shorter than `page_size`; each page after the first starts `overlap` rows
        before the end of the one before. Empty pages are not yielded."""
        top = int(page_size)
        if top < 1:
            raise ValueError("page_size must be at least 1")
        if not 0 <= overlap < top:
            raise ValueError("overlap must be at least 0 and less than page_size")
        params: dict[str, str] = {}
        if since is not None:
            params["$filter"] = f"{field} ge {_odata_time(since)}"
        params["$orderby"] = f"{field},Id"
        params["$top"] = str(top)
        skip = 0
        while True:
            query = urlencode({**params, "$skip": str(skip), **(extra or {})}, safe="$:,()", quote_via=quote)
            page = _value(self._get_json(f"{url}?{query}", what=what), url)
            if page:
                yield page
            if len(page) < top:
                return
            skip += top - overlap

    def _me(self) -> dict:
        url = f"{self.accounts_url}/v1/me"
        body = self._get_json(url, what="its own user account")
        if not isinstance(body, dict) or not isinstance(body.get("Permissions", []), list):
            raise self._malformed(url, "no user account")
        return body

    @staticmethod
    def _granted(me: dict) -> set[str]:
        names = set()
        for permission in me.get("Permissions") or []:
            name = permission.get("Name") if isinstance(permission, dict) else permission
            if name:
                names.add(str(name).strip().casefold())
        return names

    # -- parsing -------------------------------------------------------------------------

    def _location(self, raw) -> CovaLocation:
        if not isinstance(raw, dict) or raw.get("Id") in (None, ""):
            raise self._malformed(self.api_url, "a location without an Id")
        return CovaLocation(id=str(raw["Id"]), name=_text(raw.get("Name")), state=_text(raw.get("State")),
                            timezone=_text(raw.get("TimeZone")))

    def _customer(self, raw: dict, survivor_id: str) -> CovaCustomer:
        if not raw.get("Id"):
            raise self._malformed(self.api_url, "a customer without an Id")
        customer_id = str(raw["Id"]).strip()
        return CovaCustomer(
            id=customer_id,
            first_name=_text(raw.get("FirstName")),
            last_name=_text(raw.get("LastName")),
            email=_text(raw.get("Email")),
            phone=_text(raw.get("Phone")),
            birth_date=self._date(raw.get("DateOfBirth"), f"customer {customer_id}"),
            state=_text(raw.get("State")),
            pricing_group_id=_text(raw.get("PricingGroupId")),
            created_at=self._time(raw.get("CreatedDateUtc"), f"customer {customer_id}"),
            modified_at=self._time(raw.get("LastModifiedDateUtc"), f"customer {customer_id}"),
            survivor_id=survivor_id or customer_id,
        )

    def _survivor(self, raw: dict, known: dict[str, dict], fetched: dict[str, dict]) -> str:
        """The id at the end of the merge chain that starts at `raw`. A cycle resolves to
        its smallest id (the same for every member); a chain longer than MAX_MERGE_CHAIN
        or a survivor Cova no longer has ends at the last id reached."""
        current = str(raw.get("Id") or "").strip()
        seen = [current]
        target = _text(raw.get("MergedIntoCustomerId"))
        while target:
            if target in seen:
                cycle = seen[seen.index(target):]
                logger.warning("Cova customers %s are merged into each other in a cycle.", " -> ".join(cycle))
                return min(cycle)
            if len(seen) > MAX_MERGE_CHAIN:
                logger.warning("Cova customer %s has a merge chain longer than %d; stopping at %s.",
                               seen[0], MAX_MERGE_CHAIN, current)
                return current
            seen.append(target)
            current = target
            survivor = known.get(target)
            if survivor is None:
                url = (f"{self.api_url}/customers/v1/Companies({self._company()})"
                       f"/Customers({quote(target, safe='-')})")
                survivor = self._get_json(url, what=f"Cova customer {target}", not_found_ok=True)
                if survivor is None:
                    logger.warning("Cova customer %s was merged into %s, which Cova does not have.",
                                   seen[-2], target)
                    return target
                if not isinstance(survivor, dict):
                    raise self._malformed(url, "a customer that is not an object")
                known[target] = fetched[target] = survivor
            target = _text(survivor.get("MergedIntoCustomerId"))
        return current

    def _sale(self, raw, location: str, payments: bool, url: str) -> CovaSale:
        if not isinstance(raw, dict) or raw.get("Id") in (None, ""):
            raise self._malformed(url, "a sale without an Id")
        sale_id = str(raw["Id"]).strip()
        what = f"sale {sale_id}"
        items = raw.get("Items") or []
        if not isinstance(items, list):
            raise self._malformed(url, f"{what} with Items that are not a list")
        paid = (raw.get("Payments") or []) if payments else []
        if not isinstance(paid, list):
            raise self._malformed(url, f"{what} with Payments that are not a list")
        method = _text(raw.get("FulfillmentMethod")).replace(" ", "").replace("_", "").casefold()
        return CovaSale(
            id=sale_id,
            location_id=_text(raw.get("LocationId")) or location,
            customer_id=_text(raw.get("CustomerId")),
            completed_at=self._time(raw.get("CompletedDateUtc"), what),
            fulfillment=FULFILLMENT.get(method, "in_store"),
            employee=_text(raw.get("EmployeeName")),
            items=tuple(self._item(item, what, url) for item in items),
            payments=tuple(CovaPayment(method=_text(p.get("Method")),
                                       amount=self._amount(p.get("Amount"), what, url, field="Amount"))
                           for p in paid if isinstance(p, dict)),
        )

    def _item(self, raw, what: str, url: str) -> CovaSaleItem:
        if not isinstance(raw, dict):
            raise self._malformed(url, f"{what} with an item that is not an object")
        return CovaSaleItem(
            line_id=_text(raw.get("LineId")),
            sku=_text(raw.get("Sku")),
            product=_text(raw.get("ProductName")),
            brand=_text(raw.get("Brand")),
            category=_text(raw.get("Category")),
            quantity=self._amount(raw.get("Quantity"), what, url, field="Quantity"),
            unit_price=self._amount(raw.get("UnitPrice"), what, url, field="UnitPrice"),
            discount=self._amount(raw.get("Discount"), what, url, field="Discount"),
            tax=self._amount(raw.get("Tax"), what, url, field="Tax"),
            total=self._amount(raw.get("Total"), what, url, field="Total"),
        )

    def _amount(self, value, what: str, url: str, *, field: str) -> Decimal:
        if value is None or value == "":
            return Decimal("0")
        if isinstance(value, bool):
            raise self._malformed(url, f"{what} with an amount that is not a number")
        try:
            amount = Decimal(str(value))
        except InvalidOperation:
            amount = None
        if amount is None or not amount.is_finite():
            raise self._malformed(url, f"{what} with an amount that is not a number")
        # Past what our columns hold the sync stops, saying which sale and field, rather
        # than failing in the database or storing another number.
        most = QUANTITY_MAX if field == "Quantity" else MONEY_MAX
        if abs(amount) > most:
            raise self._malformed(url, f"{what} with {field} {value}, more than {most:,}")
        return amount

    def _time(self, value, what: str) -> dt.datetime:
        parsed = _parse_time(value)
        if parsed is None:
            raise self._malformed(self.api_url, f"{what} with a missing or invalid time")
        return parsed

    def _date(self, value, what: str) -> dt.date | None:
        if value in (None, ""):
            return None
        text = str(value).strip()
        try:
            # Some Cova records carry a midnight time with the birth date.
            return dt.date.fromisoformat(text[:10])
        except ValueError:
            logger.warning("Cova %s has an unreadable DateOfBirth; ignoring it.", what)
            return None


def _missing_message(user: str, missing: list[str]) -> str:
    names = [f"'{name}'" for name in missing]
    if len(names) == 1:
        return f"The Cova user {user} lacks the permission {names[0]}. Ask Cova support to grant it."
    listed = ", ".join(names[:-1]) + f" and {names[-1]}"
    return f"The Cova user {user} lacks the permissions {listed}. Ask Cova support to grant them."


def _text(value) -> str:
    return "" if value is None else str(value).strip()


def _value(body, url: str) -> list:
    if not isinstance(body, dict) or not isinstance(body.get("value"), list):
        raise ProviderError(ConnectionProblem.MISCONFIGURED,
                            f"{urlsplit(url).netloc or url} did not answer like Cova (no 'value' list).")
    return body["value"]


def _parse_time(value) -> dt.datetime | None:
    if not value or not isinstance(value, str):
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    # "...Utc" fields without an offset are UTC all the same.
    return parsed.replace(tzinfo=dt.UTC) if parsed.tzinfo is None else parsed.astimezone(dt.UTC)


def _odata_time(value: dt.datetime) -> str:
    """A watermark as Cova's filter wants it: UTC, whole seconds (rounded down, so the
    filter `ge` never skips a change), trailing Z."""
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        raise ValueError("since must be a timezone-aware datetime")
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
