"""A local stand-in for the Cova API (accounts and API hosts on one listener).

It speaks the wire format documented at the top of integrations/providers/cova.py: the
OAuth2 password grant, /v1/me, locations, customers (OData $filter/$orderby/$top/$skip,
one by id, create) and a location's sales ($expand=Payments). Tests seed and inspect its
state directly and inject faults:

    def test_x(cova_server):
        customer = cova_server.add_customer(FirstName="Ana", Phone="(303) 555-0142")
        cova_server.fail_next(2, status=503, path_contains="/Customers")
        client = cova_client(cova_server)

pytest finds fixtures by name in the test module, so bind the fixture there (an
assignment, not an import, keeps ruff's F811 quiet):

    from . import cova_fake
    cova_server = cova_fake.cova_server

Standalone, for a demo: ``python -m tests.integrations.cova_fake --port 8765 --seed-demo``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import random
import re
import secrets
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest

from stores.fake_server import ThreadedFakeServer

DEFAULT_COMPANY_ID = 4455
DEFAULT_CLIENT_ID = "GREENLEAF.AIQ"
DEFAULT_CLIENT_SECRET = "cS3cr3t-Fake.Cova_9vQ2LmXw"
DEFAULT_USERNAME = "AIQ.COVA.APIUser.GREENLEAF"
DEFAULT_PASSWORD = "Pw-Fake.Cova!7hRk3Zt"
DEFAULT_PERMISSIONS = (
    "Manage Dispensary Specific Elements",
    "View Loyalty Program",
    "Edit Loyalty Program",
    "View Customers",
    "View Sales History",
)
# seed_demo's "now": deterministic data whatever day the tests run.
DEMO_ANCHOR = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)

_COMPANY = r"/Companies\((?P<company>[^)]*)\)"
ROUTES = [
    ("POST", re.compile(r"^/v1/oauth2/token$"), "_token"),
    ("GET", re.compile(r"^/v1/me$"), "_me"),
    ("GET", re.compile(rf"^/v1{_COMPANY}/Locations$"), "_locations"),
    ("GET", re.compile(rf"^/v1{_COMPANY}/Locations\((?P<location>[^)]*)\)/Sales$"), "_sales"),
    ("GET", re.compile(rf"^/customers/v1{_COMPANY}/Customers$"), "_customers"),
    ("GET", re.compile(rf"^/customers/v1{_COMPANY}/Customers\((?P<customer>[^)]*)\)$"), "_customer"),
    ("POST", re.compile(rf"^/customers/v1{_COMPANY}/Customers$"), "_customer_create"),
]
FILTER = re.compile(r"^\s*(?P<field>\w+)\s+(?P<op>ge|gt)\s+(?P<value>\S+)\s*$")

DEMO_LOCATIONS = [
    ("Downtown", "CO", "America/Denver", ("303", "720")),
    ("Capitol Hill", "WA", "America/Los_Angeles", ("206",)),
    ("Mission", "CA", "America/Los_Angeles", ("415",)),
    ("Boulder", "CO", "America/Denver", ("303",)),
    ("Fremont", "WA", "America/Los_Angeles", ("206",)),
    ("Venice", "CA", "America/Los_Angeles", ("310",)),
]
FIRST_NAMES = ["Ana", "Ben", "Carla", "Dev", "Elena", "Femi", "Grace", "Hiro", "Isla", "Jamal", "Kai",
               "Lena", "Marco", "Nia", "Omar", "Priya", "Quinn", "Rosa", "Sam", "Tariq", "Uma", "Vic",
               "Wes", "Ximena", "Yusuf", "Zoe"]
LAST_NAMES = ["Alvarez", "Brooks", "Chen", "Diaz", "Evans", "Fischer", "Garcia", "Hughes", "Ito", "Jensen",
              "Kim", "Lopez", "Murphy", "Nguyen", "Okafor", "Patel", "Reyes", "Schmidt", "Torres", "Walsh"]
PRICING_GROUPS = [None, None, None, None, None, "Medical", "Senior", "Veteran"]
PRODUCTS = [  # (sku, product, brand, category, unit price)
    ("FL-BD-35", "Blue Dream 3.5g", "Green Peak", "Flower", 35.0),
    ("FL-GG-35", "Gorilla Glue #4 3.5g", "Summit Farms", "Flower", 40.0),
    ("FL-OG-7", "OG Kush 7g", "Green Peak", "Flower", 65.0),
    ("VP-SL-05", "Sour Lemon Cart 0.5g", "Cloud Nine", "Vapes", 30.0),
    ("VP-GR-1", "Grape Ape Cart 1g", "Cloud Nine", "Vapes", 50.0),
    ("ED-GM-100", "Watermelon Gummies 100mg", "Sweet Leaf", "Edibles", 18.0),
    ("ED-CH-100", "Dark Chocolate Bar 100mg", "Cocoa Canna", "Edibles", 22.0),
    ("PR-JH-1", "Jack Herer Pre-Roll 1g", "Summit Farms", "Pre-Rolls", 10.0),
    ("PR-5P-35", "Hybrid 5-Pack 3.5g", "Rolling Co", "Pre-Rolls", 32.0),
    ("CN-LR-1", "Live Resin 1g", "Alpine Extracts", "Concentrates", 45.0),
    ("CN-SH-1", "Shatter 1g", "Alpine Extracts", "Concentrates", 35.0),
]
EMPLOYEES = ["Jordan P.", "Alex R.", "Morgan T.", "Casey L.", "Riley S."]


def iso(value: dt.datetime) -> str:
    """Cova's time format: UTC, milliseconds, trailing Z."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def now_iso() -> str:
    return iso(dt.datetime.now(dt.UTC))


def parse_time(value: str) -> dt.datetime:
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    parsed = dt.datetime.fromisoformat(text)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


@dataclass
class Fault:
    status: int
    path_contains: str = ""
    remaining: int | None = None  # None: every matching request, until clear_faults()


@dataclass
class FakeCova(ThreadedFakeServer):
    """In-memory Cova. Change the public fields (under `lock` while the server runs, or
    through the helper methods) and read what the client sent from `requests`,
    `token_forms` and `created_customers`."""

    company_id: int = DEFAULT_COMPANY_ID
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    user_id: int = 4521
    permissions: list[str] = field(default_factory=lambda: list(DEFAULT_PERMISSIONS))
    locations: list[dict] = field(default_factory=list)
    customers: dict[str, dict] = field(default_factory=dict)  # id -> customer in the wire shape
    sales: list[dict] = field(default_factory=list)  # sales in the wire shape, each with LocationId
    # Companies that exist but this user may not read (403 instead of 404).
    foreign_companies: set[int] = field(default_factory=set)
    token_ttl: float = 3600.0  # how long a token really works (seconds)
    token_expires_in: int | None = None  # what the token answer claims; None: token_ttl
    delay_seconds: float = 0.0  # sleep before answering, to provoke client timeouts
    delay_path_contains: str = ""  # only delay requests whose path contains this
    # What the client sent: (method, path with query as received, headers).
    requests: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)
    token_forms: list[dict[str, str]] = field(default_factory=list)  # token request bodies
    created_customers: list[dict] = field(default_factory=list)  # POST /Customers bodies
    faults: list[Fault] = field(default_factory=list)
    # Called with (path, query) as each request arrives, before it is answered: a test's
    # way to change things while the client is paging.
    on_request: Callable[[str, dict], None] | None = field(default=None, repr=False)
    tokens: dict[str, float] = field(default_factory=dict)  # access token -> expiry (monotonic)
    lock: threading.RLock = field(default_factory=threading.RLock, repr=False)
    _sale_numbers: int = 0

    # -- lifecycle (start, close: ThreadedFakeServer) -----------------------------------

    @property
    def accounts_url(self) -> str:
        return self.url

    @property
    def api_url(self) -> str:
        return self.url

    def client_kwargs(self, **overrides) -> dict:
        """Keyword arguments for a CovaClient that talks to this fake."""
        kwargs = {"client_id": self.client_id, "client_secret": self.client_secret,
                  "username": self.username, "password": self.password, "company_id": self.company_id,
                  "accounts_url": self.url, "api_url": self.url}
        kwargs.update(overrides)
        return kwargs

    # -- faults --------------------------------------------------------------------------

    def fail_next(self, count: int, status: int = 500, path_contains: str = "") -> None:
        """Answer the next `count` requests whose path contains `path_contains` with
        `status` (429 comes with Retry-After: 0)."""
        with self.lock:
            self.faults.append(Fault(status, path_contains, count))

    def fail_always(self, status: int, path_contains: str = "") -> None:
        with self.lock:
            self.faults.append(Fault(status, path_contains, None))

    def clear_faults(self) -> None:
        with self.lock:
            self.faults.clear()
            self.delay_seconds = 0.0

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def requests_to(self, path_contains: str, method: str | None = None) -> list[str]:
        """The paths (with query) of the requests so far that contain `path_contains`."""
        with self.lock:
            return [path for m, path, _ in self.requests
                    if path_contains in unquote(path) and (method is None or m == method)]

    # -- seeding -------------------------------------------------------------------------

    def add_location(self, name: str, state: str = "CO", timezone: str = "America/Denver",
                     location_id: int | None = None) -> int:
        with self.lock:
            if location_id is None:
                location_id = max((loc["Id"] for loc in self.locations), default=1000) + 1
            self.locations.append({"Id": location_id, "Name": name, "State": state, "TimeZone": timezone})
            return location_id

    def add_customer(self, **fields) -> str:
        """A customer from wire-shaped fields (FirstName=..., Phone=...); the rest defaults.
        LastModifiedDateUtc (and CreatedDateUtc) are now unless given."""
        fields = {k: iso(v) if isinstance(v, dt.datetime) else v for k, v in fields.items()}
        stamp = now_iso()
        customer = {
            "Id": str(uuid.uuid4()), "FirstName": None, "LastName": None, "Email": None, "Phone": None,
            "DateOfBirth": None, "State": None, "PricingGroupId": None, "MergedIntoCustomerId": None,
            "CreatedDateUtc": fields.get("LastModifiedDateUtc", stamp), "LastModifiedDateUtc": stamp,
        }
        customer.update(fields)
        with self.lock:
            self.customers[customer["Id"]] = customer
        return customer["Id"]

    def touch_customer(self, customer_id: str, **changes) -> None:
        """Change a customer (wire-shaped fields) and bump its LastModifiedDateUtc."""
        with self.lock:
            customer = self.customers[customer_id]
            customer.update(changes)
            customer["LastModifiedDateUtc"] = now_iso()

    def merge_customer(self, duplicate_id: str, into_id: str) -> None:
        """What Cova's merge does: the duplicate points at the survivor and counts as changed."""
        self.touch_customer(duplicate_id, MergedIntoCustomerId=into_id)

    def add_sale(self, location_id, customer_id: str | None, items: list[dict] | None = None,
                 completed_at: dt.datetime | str | None = None, fulfillment: str = "InStore",
                 payments: list[dict] | None = None, employee: str = "Jordan P.",
                 sale_id: str | None = None) -> str:
        """A completed sale. Items may be partial ({"Sku": ..., "UnitPrice": 20.0}); the
        rest defaults and Total is Quantity * UnitPrice - Discount. Payments default to one
        cash payment of the total plus tax."""
        lines = []
        for number, given in enumerate(items or [{}], start=1):
            line = {"LineId": str(number), "Sku": "FL-BD-35", "ProductName": "Blue Dream 3.5g",
                    "Brand": "Green Peak", "Category": "Flower", "Quantity": 1.0, "UnitPrice": 35.0,
                    "Discount": 0.0}
            line.update(given)
            line.setdefault("Total", round(line["Quantity"] * line["UnitPrice"] - line["Discount"], 2))
            line.setdefault("Tax", round(line["Total"] * 0.15, 2))
            lines.append(line)
        if payments is None:
            payments = [{"Method": "Cash", "Amount": round(sum(x["Total"] + x["Tax"] for x in lines), 2)}]
        if isinstance(completed_at, dt.datetime):
            completed_at = iso(completed_at)
        with self.lock:
            self._sale_numbers += 1
            sale_id = sale_id or f"{int(location_id)}-{self._sale_numbers:07d}"
            self.sales.append({
                "Id": sale_id, "LocationId": int(location_id), "CustomerId": customer_id,
                "CompletedDateUtc": completed_at or now_iso(), "FulfillmentMethod": fulfillment,
                "EmployeeName": employee, "Items": lines, "Payments": payments,
            })
        return sale_id

    def seed_demo(self, customers: int = 200, sales_per_location: int = 50, locations: int = 3,
                  merges: int = 0, anchor: dt.datetime = DEMO_ANCHOR, seed: int = 4455) -> None:
        """Deterministic, realistic data: `locations` stores in CO/WA/CA, `customers` with
        names, phones, birthdays and pricing groups, changed over the 90 days before
        `anchor`, and `sales_per_location` sales per store over the 30 days before it.
        `merges` customers are merged into an earlier one."""
        rng = random.Random(seed)
        location_ids = []
        for index in range(locations):
            name, state, timezone, _ = DEMO_LOCATIONS[index % len(DEMO_LOCATIONS)]
            suffix = f" {index // len(DEMO_LOCATIONS) + 1}" if index >= len(DEMO_LOCATIONS) else ""
            location_ids.append((self.add_location(name + suffix, state, timezone), index))
        customer_ids = []
        for number in range(customers):
            _, state, _, area_codes = DEMO_LOCATIONS[rng.randrange(max(locations, 1)) % len(DEMO_LOCATIONS)]
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            created = anchor - dt.timedelta(days=rng.uniform(30, 720))
            modified = max(created, anchor - dt.timedelta(days=rng.uniform(0, 90)))
            birth = dt.date(rng.randint(1950, 2004), rng.randint(1, 12), rng.randint(1, 28))
            customer_ids.append(self.add_customer(
                Id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                FirstName=first, LastName=last,
                Email=f"{first.lower()}.{last.lower()}{number}@example.com" if rng.random() < 0.8 else None,
                Phone=f"({rng.choice(area_codes)}) 555-01{number % 100:02d}" if rng.random() < 0.9 else None,
                DateOfBirth=birth.isoformat() if rng.random() < 0.85 else None,
                State=state if rng.random() < 0.95 else None,
                PricingGroupId=rng.choice(PRICING_GROUPS),
                CreatedDateUtc=iso(created), LastModifiedDateUtc=iso(modified),
            ))
        for _ in range(min(merges, len(customer_ids) // 2)):
            duplicate, survivor = rng.sample(customer_ids, 2)
            with self.lock:
                if self.customers[duplicate]["MergedIntoCustomerId"] is None:
                    self.customers[duplicate]["MergedIntoCustomerId"] = survivor
        for location_id, _ in location_ids:
            for _ in range(sales_per_location):
                items = []
                for line in range(rng.randint(1, 4)):
                    sku, product, brand, category, price = rng.choice(PRODUCTS)
                    quantity = float(rng.choice([1, 1, 1, 2, 3]))
                    discount = round(price * quantity * 0.1, 2) if rng.random() < 0.2 else 0.0
                    items.append({"LineId": str(line + 1), "Sku": sku, "ProductName": product, "Brand": brand,
                                  "Category": category, "Quantity": quantity, "UnitPrice": price,
                                  "Discount": discount})
                completed = anchor - dt.timedelta(minutes=rng.uniform(0, 30 * 24 * 60))
                customer = rng.choice(customer_ids) if customer_ids and rng.random() < 0.8 else None
                fulfillment = rng.choices(["InStore", "Pickup", "Delivery"], weights=[6, 3, 1])[0]
                total = round(sum(i["Quantity"] * i["UnitPrice"] - i["Discount"] for i in items) * 1.15, 2)
                payments = [{"Method": rng.choice(["Cash", "Cash", "Debit", "Credit"]), "Amount": total}]
                self.add_sale(location_id, customer, items=items, completed_at=completed,
                              fulfillment=fulfillment, payments=payments, employee=rng.choice(EMPLOYEES))


def _sort_key(value, name: str) -> tuple:
    if value is None:
        return (0, "")
    if name.endswith("Utc") and isinstance(value, str):
        return (1, parse_time(value))
    return (1, value)


class _Server(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        # A client that timed out and hung up is expected (delay_seconds); stay quiet.
        pass


class _Handler(BaseHTTPRequestHandler):
    fake: FakeCova
    protocol_version = "HTTP/1.1"
    timeout = 10  # drop idle keep-alive connections

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    # -- plumbing ------------------------------------------------------------------------

    def _json(self, status: int, body, headers: dict | None = None) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _message(self, status: int, message: str, headers: dict | None = None) -> None:
        self._json(status, {"Message": message}, headers)

    def do_GET(self):
        self._dispatch("GET")

    def do_POST(self):
        self._dispatch("POST")

    def _dispatch(self, method: str) -> None:
        fake = self.fake
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        url = urlsplit(self.path)
        path = unquote(url.path)
        with fake.lock:
            fake.requests.append((method, self.path, dict(self.headers)))
            fault = next((f for f in fake.faults if f.path_contains in path), None)
            if fault is not None and fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    fake.faults.remove(fault)
            delay = fake.delay_seconds if fake.delay_path_contains in path else 0.0
        if delay:
            time.sleep(delay)
        if fake.on_request is not None:
            fake.on_request(path, dict(parse_qsl(url.query, keep_blank_values=True)))
        if fault is not None:
            return self._fault(fault.status)
        route = next(((handler, match) for route_method, pattern, handler in ROUTES
                      if route_method == method and (match := pattern.match(path))), None)
        if route is None:
            return self._message(404, f"No HTTP resource was found that matches the request URI '{path}'.")
        handler, match = route
        if handler == "_token":
            return self._token(raw)
        if not self._authorized():
            return self._message(401, "Authorization has been denied for this request.")
        if handler == "_me":
            return self._me()
        params = dict(match.groupdict())
        if not self._company_ok(params.pop("company")):
            return None
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        return getattr(self, handler)(query=query, body=raw, **params)

    def _fault(self, status: int) -> None:
        if status == 429:
            return self._message(429, "Rate limit exceeded. Try again later.", {"Retry-After": "0"})
        if status == 403:
            return self._message(403, "Authorization has been denied for this request.")
        if status >= 500:
            return self._message(status, "An error has occurred.")
        return self._message(status, f"Injected HTTP {status}.")

    def _authorized(self) -> bool:
        token = self.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        with self.fake.lock:
            expires = self.fake.tokens.get(token)
        return expires is not None and time.monotonic() < expires

    def _company_ok(self, company: str) -> bool:
        fake = self.fake
        if company == str(fake.company_id):
            return True
        if company.isdigit() and int(company) in fake.foreign_companies:
            self._message(403, "Authorization has been denied for this request.")
        else:
            self._message(404, f"Company {company} not found")
        return False

    # -- routes --------------------------------------------------------------------------

    def _token(self, raw: str) -> None:
        fake = self.fake
        form = dict(parse_qsl(raw, keep_blank_values=True))
        with fake.lock:
            fake.token_forms.append(form)
        if form.get("grant_type") != "password":
            return self._json(400, {"error": "unsupported_grant_type",
                                    "error_description": "The authorization grant type is not supported."})
        if form.get("client_id") != fake.client_id or form.get("client_secret") != fake.client_secret:
            return self._json(401, {"error": "invalid_client",
                                    "error_description": "The client credentials are invalid."})
        if form.get("username") != fake.username or form.get("password") != fake.password:
            return self._json(400, {"error": "invalid_grant",
                                    "error_description": "The user name or password is incorrect."})
        token = secrets.token_urlsafe(32)
        with fake.lock:
            fake.tokens[token] = time.monotonic() + fake.token_ttl
            expires_in = fake.token_expires_in if fake.token_expires_in is not None else fake.token_ttl
        self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": expires_in,
                         "refresh_token": secrets.token_urlsafe(24)})

    def _me(self) -> None:
        fake = self.fake
        with fake.lock:
            body = {"Id": fake.user_id, "UserName": fake.username, "ParentEntityId": fake.company_id,
                    "Permissions": [{"Name": name} for name in fake.permissions]}
        self._json(200, body)

    def _locations(self, query: dict, body: str) -> None:
        with self.fake.lock:
            self._json(200, {"value": [dict(location) for location in self.fake.locations]})

    def _customers(self, query: dict, body: str) -> None:
        with self.fake.lock:
            records = [dict(customer) for customer in self.fake.customers.values()]
        self._collection(records, query)

    def _customer(self, query: dict, body: str, customer: str) -> None:
        with self.fake.lock:
            found = self.fake.customers.get(customer)
            found = dict(found) if found else None
        if found is None:
            return self._message(404, f"Customer {customer} not found")
        self._json(200, found)

    def _customer_create(self, query: dict, body: str) -> None:
        fake = self.fake
        try:
            payload = json.loads(body or "null")
        except ValueError:
            return self._message(400, "The request is invalid: the body is not JSON.")
        if not isinstance(payload, dict):
            return self._message(400, "The request is invalid: a customer object is required.")
        if not (str(payload.get("FirstName") or "").strip() or str(payload.get("Phone") or "").strip()):
            return self._message(400, "A customer needs a FirstName or a Phone.")
        with fake.lock:
            fake.created_customers.append(payload)
        allowed = ("FirstName", "LastName", "Email", "Phone", "DateOfBirth", "PricingGroupId")
        customer_id = fake.add_customer(**{k: payload.get(k) for k in allowed})
        with fake.lock:
            self._json(201, dict(fake.customers[customer_id]))

    def _sales(self, query: dict, body: str, location: str) -> None:
        fake = self.fake
        with fake.lock:
            if not any(str(loc["Id"]) == location for loc in fake.locations):
                return self._message(404, f"Location {location} not found")
            records = [json.loads(json.dumps(sale)) for sale in fake.sales
                       if str(sale.get("LocationId")) == location]
        if query.get("$expand", "") != "Payments":
            for sale in records:
                sale.pop("Payments", None)
        self._collection(records, query)

    def _collection(self, records: list[dict], query: dict) -> None:
        """OData's $filter (`<Field> ge|gt <iso>` only), $orderby, $skip and $top."""
        if query.get("$filter"):
            match = FILTER.match(query["$filter"])
            if not match:
                return self._message(400, "The query specified in the URI is not valid.")
            try:
                bound = parse_time(match["value"])
            except ValueError:
                return self._message(400, f"'{match['value']}' is not a valid DateTimeOffset.")
            name, op = match["field"], match["op"]

            def keep(record: dict) -> bool:
                if not record.get(name):
                    return False
                value = parse_time(record[name])
                return value >= bound if op == "ge" else value > bound

            records = [record for record in records if keep(record)]
        for clause in reversed([c.strip() for c in query.get("$orderby", "").split(",") if c.strip()]):
            name, _, direction = clause.partition(" ")
            records.sort(key=lambda r, n=name: _sort_key(r.get(n), n),
                         reverse=direction.strip().lower() == "desc")
        try:
            skip = int(query.get("$skip") or 0)
            top = int(query["$top"]) if query.get("$top") else None
        except ValueError:
            return self._message(400, "The query specified in the URI is not valid.")
        records = records[skip:] if top is None else records[skip:skip + top]
        self._json(200, {"value": records})


@pytest.fixture
def cova_server(outbound_allow):
    fake = FakeCova().start()
    outbound_allow(fake.url)  # a local server: let this test's requests reach it
    yield fake
    fake.close()


def serve_forever_main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Run a fake Cova API for demos.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed-demo", action="store_true", help="seed deterministic demo data")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--sales-per-location", type=int, default=50)
    parser.add_argument("--locations", type=int, default=3)
    parser.add_argument("--merges", type=int, default=3)
    args = parser.parse_args(argv)
    fake = FakeCova()
    if args.seed_demo:
        fake.seed_demo(customers=args.customers, sales_per_location=args.sales_per_location,
                       locations=args.locations, merges=args.merges)
    fake.start(args.host, args.port)
    print(f"Fake Cova listening on {fake.url} (accounts URL and API URL)")
    print(f"  company id:    {fake.company_id}")
    print(f"  client id:     {fake.client_id}")
    print(f"  client secret: {fake.client_secret}")
    print(f"  username:      {fake.username}")
    print(f"  password:      {fake.password}")
    stores = ", ".join(f"{loc['Id']} {loc['Name']}" for loc in fake.locations) or "none"
    print(f"  locations:     {stores}")
    print(f"  customers:     {len(fake.customers)}, sales: {len(fake.sales)}")
    print("Ctrl-C to stop.", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        fake.close()


FakeCova.handler_class = _Handler
FakeCova.server_class = _Server


if __name__ == "__main__":
    serve_forever_main()

