"""CovaClient against a local Cova fake over HTTP: sign-in and token reuse, permissions,
locations, customer paging with watermarks and merge chains, sales paging with and without
payments, customer creation, retries, and every failure mapped to its ConnectionProblem
without a secret in sight."""

import datetime as dt
import logging
import socket
import time
from decimal import Decimal
from urllib.parse import unquote

import pytest

from integrations.providers.base import ConnectionProblem, ProviderError
from integrations.providers.cova import REQUIRED_PERMISSIONS, CovaClient

from . import cova_fake

# pytest finds fixtures by name in the test module (an assignment keeps ruff's F811 quiet).
cova_server = cova_fake.cova_server

OLD = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)


def client_for(fake, **overrides) -> CovaClient:
    """A client for `fake` whose backoff sleeps are recorded in `client.sleeps`, not slept."""
    overrides.setdefault("timeout", 2.0)
    client = CovaClient(**fake.client_kwargs(**overrides))
    client.sleeps = []
    client._sleep = client.sleeps.append
    return client


def problem_of(call) -> ProviderError:
    with pytest.raises(ProviderError) as caught:
        call()
    return caught.value


def all_of(pages) -> list:
    return [item for page in pages for item in page]


# -- sign-in ----------------------------------------------------------------------------


def test_token_is_obtained_once_and_reused(cova_server):
    cova_server.add_location("Downtown")
    client = client_for(cova_server)
    client.locations()
    client.missing_permissions()
    client.locations()
    assert client.token() == client.token()
    assert len(cova_server.token_forms) == 1
    form = cova_server.token_forms[0]
    assert form == {"grant_type": "password", "client_id": cova_server.client_id,
                    "client_secret": cova_server.client_secret, "username": cova_server.username,
                    "password": cova_server.password}
    headers = next(h for _, path, h in cova_server.requests if "/Locations" in unquote(path))
    assert headers["Authorization"] == f"Bearer {client.token()}"


def test_token_is_renewed_before_it_expires(cova_server):
    cova_server.token_ttl = 1  # the client keeps it for half its life
    client = client_for(cova_server)
    client.locations()
    client.locations()
    assert len(cova_server.token_forms) == 1
    time.sleep(0.6)
    client.locations()
    assert len(cova_server.token_forms) == 2
    assert len(cova_server.requests_to("/Locations")) == 3  # never refused


def test_token_that_expires_early_is_replaced_transparently(cova_server):
    cova_server.token_ttl = 0.3
    cova_server.token_expires_in = 3600  # Cova claims an hour, the token lasts 0.3 s
    cova_server.add_location("Downtown")
    client = client_for(cova_server)
    assert len(client.locations()) == 1
    time.sleep(0.4)
    assert len(client.locations()) == 1
    assert len(cova_server.token_forms) == 2
    assert len(cova_server.requests_to("/Locations")) == 3  # the refused one was sent again


def test_bad_client_secret(cova_server):
    error = problem_of(client_for(cova_server, client_secret="wrong-secret-value").test)
    assert error.problem == ConnectionProblem.BAD_CREDENTIALS
    assert "client id 'GREENLEAF.AIQ'" in error.message and "client secret" in error.message
    assert "password" not in error.message
    assert "wrong-secret-value" not in error.message
    assert not error.retryable


def test_bad_password(cova_server):
    error = problem_of(client_for(cova_server, password="wrong-password-value").test)
    assert error.problem == ConnectionProblem.BAD_CREDENTIALS
    assert f"username '{cova_server.username}'" in error.message and "password" in error.message
    assert "client secret" not in error.message
    assert "wrong-password-value" not in error.message


@pytest.mark.parametrize("setting, label", [
    ("client_id", "client id"), ("client_secret", "client secret"), ("username", "username"),
    ("password", "password"), ("company_id", "company id"),
])
def test_missing_setting_is_misconfigured_before_any_request(cova_server, setting, label):
    error = problem_of(client_for(cova_server, **{setting: "  "}).test)
    assert error.problem == ConnectionProblem.MISCONFIGURED
    assert error.message == f"The Cova {label} is missing."
    assert cova_server.requests == []


def test_malformed_settings_are_misconfigured(cova_server):
    error = problem_of(client_for(cova_server, company_id="44x5").locations)
    assert error.problem == ConnectionProblem.MISCONFIGURED and "'44x5' is not a number" in error.message
    error = problem_of(client_for(cova_server, api_url="api.covasoft.net").test)
    assert error.problem == ConnectionProblem.MISCONFIGURED and "not a valid URL" in error.message
    error = problem_of(lambda: list(client_for(cova_server).sales("10;01", None)))
    assert error.problem == ConnectionProblem.MISCONFIGURED


# -- permissions, company, test() -------------------------------------------------------


def test_connection_test_succeeds(cova_server):
    cova_server.seed_demo(customers=0, sales_per_location=0, locations=3)
    client = client_for(cova_server)
    assert client.missing_permissions() == []
    assert client.test() == "Connected to Cova company 4455: 3 locations."


def test_missing_permission_is_named(cova_server):
    cova_server.permissions.remove("Edit Loyalty Program")
    client = client_for(cova_server)
    assert client.missing_permissions() == ["Edit Loyalty Program"]
    error = problem_of(client.test)
    assert error.problem == ConnectionProblem.NO_PERMISSION
    assert error.message.startswith(
        "The Cova user AIQ.COVA.APIUser.GREENLEAF lacks the permission 'Edit Loyalty Program'.")


def test_several_missing_permissions_keep_the_required_order(cova_server):
    cova_server.permissions = ["View Customers"]
    client = client_for(cova_server)
    assert client.missing_permissions() == list(REQUIRED_PERMISSIONS)
    error = problem_of(client.test)
    assert error.problem == ConnectionProblem.NO_PERMISSION
    assert ("lacks the permissions 'Manage Dispensary Specific Elements', 'View Loyalty Program' and "
            "'Edit Loyalty Program'") in error.message


def test_unknown_company_is_not_found(cova_server):
    client = client_for(cova_server, company_id=999)
    error = problem_of(client.locations)
    assert error.problem == ConnectionProblem.NOT_FOUND
    assert "Cova company 999 was not found" in error.message
    error = problem_of(client.test)
    assert error.problem == ConnectionProblem.NOT_FOUND
    assert "belongs to company 4455" in error.message
    assert problem_of(lambda: next(client.customers_changed(None))).problem == ConnectionProblem.NOT_FOUND


def test_company_the_user_may_not_read_is_no_permission(cova_server):
    cova_server.foreign_companies.add(5566)
    error = problem_of(client_for(cova_server, company_id=5566).test)
    assert error.problem == ConnectionProblem.NO_PERMISSION
    assert "AIQ.COVA.APIUser.GREENLEAF may not read the locations of Cova company 5566" in error.message


def test_forbidden_locations_make_the_test_fail(cova_server):
    cova_server.fail_always(403, "/Locations")
    error = problem_of(client_for(cova_server).test)
    assert error.problem == ConnectionProblem.NO_PERMISSION


# -- locations and customers ------------------------------------------------------------


def test_locations_are_parsed(cova_server):
    cova_server.add_location("Downtown", "CO", "America/Denver", location_id=1001)
    cova_server.add_location(" Capitol Hill ", "WA", "America/Los_Angeles", location_id=1002)
    locations = client_for(cova_server).locations()
    assert [(loc.id, loc.name, loc.state, loc.timezone) for loc in locations] == [
        ("1001", "Downtown", "CO", "America/Denver"),
        ("1002", "Capitol Hill", "WA", "America/Los_Angeles"),
    ]


def test_customer_fields_are_parsed(cova_server):
    customer_id = cova_server.add_customer(
        FirstName=" Ana ", LastName="Lopez", Email="ana@example.com", Phone="(303) 555-0142",
        DateOfBirth="1990-05-01", State="CO", PricingGroupId="Medical",
        CreatedDateUtc="2026-01-02T03:04:05Z", LastModifiedDateUtc="2026-10-01T12:00:00.250Z")
    bare_id = cova_server.add_customer(LastModifiedDateUtc="2026-10-02T00:00:00Z")
    ana, bare = all_of(client_for(cova_server).customers_changed(None))
    assert ana.id == ana.survivor_id == customer_id
    assert (ana.first_name, ana.last_name, ana.email, ana.phone) == ("Ana", "Lopez", "ana@example.com",
                                                                     "(303) 555-0142")
    assert ana.birth_date == dt.date(1990, 5, 1)
    assert (ana.state, ana.pricing_group_id) == ("CO", "Medical")
    assert ana.created_at == dt.datetime(2026, 1, 2, 3, 4, 5, tzinfo=dt.UTC)
    assert ana.modified_at == dt.datetime(2026, 10, 1, 12, 0, 0, 250000, tzinfo=dt.UTC)
    assert bare.id == bare_id
    assert (bare.first_name, bare.email, bare.phone, bare.state, bare.pricing_group_id) == ("",) * 5
    assert bare.birth_date is None


def test_customers_are_paged(cova_server):
    ids = {cova_server.add_customer(FirstName=f"C{n}", LastModifiedDateUtc=OLD + dt.timedelta(seconds=n % 7))
           for n in range(1234)}
    pages = list(client_for(cova_server).customers_changed(None, page_size=500))
    # Each page starts a fifth of a page back; what the overlap brings again is left out.
    assert [len(page) for page in pages] == [500, 400, 334]
    seen = [customer.id for customer in all_of(pages)]
    assert len(seen) == len(set(seen)) and set(seen) == ids
    modified = [customer.modified_at for customer in all_of(pages)]
    assert modified == sorted(modified)
    paths = [unquote(path) for path in cova_server.requests_to("/Customers")]
    assert all("$filter" not in path for path in paths)
    assert ["$skip=0" in paths[0], "$skip=400" in paths[1], "$skip=800" in paths[2]] == [True] * 3
    assert all("$top=500" in path and "$orderby=LastModifiedDateUtc,Id" in path for path in paths)


def test_a_customer_changed_while_paging_neither_hides_another_nor_comes_stale(cova_server):
    ids = [cova_server.add_customer(FirstName=f"C{n}", LastModifiedDateUtc=OLD + dt.timedelta(minutes=n))
           for n in range(12)]

    def change_the_first_before_page_two(path, query):
        # The changed customer moves to the end; everyone after it moves one place back.
        later_page = path.endswith("/Customers") and query.get("$skip") not in (None, "0")
        if later_page and cova_server.customers[ids[0]]["LastName"] is None:
            cova_server.touch_customer(ids[0], LastName="Changed")

    cova_server.on_request = change_the_first_before_page_two
    customers = all_of(client_for(cova_server).customers_changed(None, page_size=5))

    assert {c.id for c in customers} == set(ids)
    first = [c for c in customers if c.id == ids[0]]
    assert [c.last_name for c in first] == ["", "Changed"]  # the later one is the newer


def test_an_exactly_full_last_page_ends_with_an_empty_request(cova_server):
    for n in range(4):
        cova_server.add_customer(FirstName=f"C{n}", LastModifiedDateUtc=OLD)
    pages = list(client_for(cova_server).customers_changed(None, page_size=2))
    assert [len(page) for page in pages] == [2, 2]
    assert len(cova_server.requests_to("/Customers")) == 3


def test_watermark_returns_only_changed_customers(cova_server):
    ids = [cova_server.add_customer(FirstName=f"C{n}", LastModifiedDateUtc=OLD) for n in range(10)]
    for customer_id in ids[3:6]:
        cova_server.touch_customer(customer_id, Email="new@example.com")
    since = dt.datetime(2026, 11, 1, 6, 30, 15, 999999, tzinfo=dt.timezone(dt.timedelta(hours=-7)))
    changed = all_of(client_for(cova_server).customers_changed(since))
    assert sorted(c.id for c in changed) == sorted(ids[3:6])
    assert {c.email for c in changed} == {"new@example.com"}
    path = unquote(cova_server.requests_to("/Customers")[0])
    assert "$filter=LastModifiedDateUtc ge 2026-11-01T13:30:15Z" in path


def test_naive_watermark_is_refused(cova_server):
    with pytest.raises(ValueError):
        next(client_for(cova_server).customers_changed(dt.datetime(2026, 11, 1)))


def test_merge_chains_are_followed_to_the_survivor(cova_server):
    # A -> B -> C, all changed since the watermark (on the page).
    c = cova_server.add_customer(FirstName="C")
    b = cova_server.add_customer(FirstName="B", MergedIntoCustomerId=c)
    a = cova_server.add_customer(FirstName="A", MergedIntoCustomerId=b)
    # D -> E -> F, where E and F did not change since the watermark: fetched by id.
    f = cova_server.add_customer(FirstName="F", LastModifiedDateUtc=OLD)
    e = cova_server.add_customer(FirstName="E", LastModifiedDateUtc=OLD, MergedIntoCustomerId=f)
    d = cova_server.add_customer(FirstName="D")
    cova_server.merge_customer(d, e)
    # X -> Y -> X: a cycle resolves to the same id for both.
    x = cova_server.add_customer(FirstName="X")
    y = cova_server.add_customer(FirstName="Y", MergedIntoCustomerId=x)
    cova_server.touch_customer(x, MergedIntoCustomerId=y)
    # G -> a customer Cova no longer has.
    g = cova_server.add_customer(FirstName="G", MergedIntoCustomerId="00000000-dead-4bad-8bad-000000000000")

    since = OLD + dt.timedelta(days=1)
    customers = {c.first_name: c for c in all_of(client_for(cova_server).customers_changed(since))}
    assert set(customers) == {"A", "B", "C", "D", "X", "Y", "G"}
    assert customers["A"].survivor_id == customers["B"].survivor_id == customers["C"].survivor_id == c
    assert customers["A"].id == a and customers["C"].survivor_id == customers["C"].id
    assert customers["D"].survivor_id == f
    assert customers["X"].survivor_id == customers["Y"].survivor_id == min(x, y)
    assert customers["G"].survivor_id == "00000000-dead-4bad-8bad-000000000000"
    fetched = {unquote(path).rsplit("Customers(", 1)[1].rstrip(")")
               for path in cova_server.requests_to("/Customers(")}
    assert fetched == {e, f, "00000000-dead-4bad-8bad-000000000000"}
    assert g in {customer.id for customer in customers.values()}


def test_survivor_on_a_later_page_is_fetched(cova_server):
    duplicate = cova_server.add_customer(FirstName="Dup", LastModifiedDateUtc=OLD)
    others = [cova_server.add_customer(FirstName=f"O{n}", LastModifiedDateUtc=OLD + dt.timedelta(hours=n + 1))
              for n in range(3)]
    cova_server.customers[duplicate]["MergedIntoCustomerId"] = others[-1]
    pages = list(client_for(cova_server).customers_changed(None, page_size=2))
    assert pages[0][0].id == duplicate and pages[0][0].survivor_id == others[-1]
    assert len(cova_server.requests_to("/Customers(")) == 1


# -- sales ------------------------------------------------------------------------------


def seed_sales(fake):
    downtown = fake.add_location("Downtown", location_id=1001)
    boulder = fake.add_location("Boulder", location_id=1002)
    ana = fake.add_customer(FirstName="Ana")
    for n in range(5):
        fake.add_sale(downtown, ana, completed_at=OLD + dt.timedelta(hours=n),
                      items=[{"Sku": "VP-1", "ProductName": "Sour Lemon Cart", "Brand": "Cloud Nine",
                              "Category": "Vapes", "Quantity": 2.0, "UnitPrice": 30.0, "Discount": 6.0,
                              "Tax": 8.1}],
                      payments=[{"Method": "Debit", "Amount": 62.1}])
    fake.add_sale(boulder, ana, completed_at=OLD)
    return downtown, boulder, ana


def test_sales_are_paged_per_location_with_payments(cova_server):
    downtown, _, ana = seed_sales(cova_server)
    pages = list(client_for(cova_server).sales(str(downtown), None, page_size=2))
    assert [len(page) for page in pages] == [2, 2, 1]
    sales = all_of(pages)
    assert len({sale.id for sale in sales}) == 5
    assert {sale.location_id for sale in sales} == {"1001"}
    sale = sales[0]
    assert sale.customer_id == ana
    assert sale.completed_at == OLD
    assert sale.employee == "Jordan P."
    (item,) = sale.items
    assert (item.line_id, item.sku, item.product, item.brand, item.category) == (
        "1", "VP-1", "Sour Lemon Cart", "Cloud Nine", "Vapes")
    assert (item.quantity, item.unit_price, item.discount, item.tax, item.total) == (
        Decimal("2"), Decimal("30"), Decimal("6"), Decimal("8.1"), Decimal("54"))
    assert str(item.tax) == "8.1"  # Decimal(str(x)), not Decimal(x)
    assert [(p.method, p.amount) for p in sale.payments] == [("Debit", Decimal("62.1"))]
    paths = [unquote(path) for path in cova_server.requests_to("/Sales")]
    assert all("$expand=Payments" in path and "$orderby=CompletedDateUtc,Id" in path for path in paths)
    assert all("/Locations(1001)/Sales" in path for path in paths)


def test_sales_without_payments(cova_server):
    downtown, _, _ = seed_sales(cova_server)
    sales = all_of(client_for(cova_server).sales(downtown, None, payments=False))
    assert len(sales) == 5 and all(sale.payments == () for sale in sales)
    assert all(sale.items for sale in sales)
    assert all("$expand" not in unquote(path) for path in cova_server.requests_to("/Sales"))


def test_sales_since_a_watermark(cova_server):
    downtown, _, _ = seed_sales(cova_server)
    since = OLD + dt.timedelta(hours=3)
    sales = all_of(client_for(cova_server).sales(str(downtown), since))
    assert [sale.completed_at for sale in sales] == [since, since + dt.timedelta(hours=1)]
    assert "$filter=CompletedDateUtc ge 2026-10-01T03:00:00Z" in unquote(cova_server.requests_to("/Sales")[0])


def test_anonymous_sales_and_fulfillment_methods(cova_server):
    store = cova_server.add_location("Downtown")
    for n, method in enumerate(["InStore", "Pickup", "Delivery", "Curbside", None]):
        cova_server.add_sale(store, None, completed_at=OLD + dt.timedelta(minutes=n), fulfillment=method)
    sales = all_of(client_for(cova_server).sales(str(store), None))
    assert [sale.fulfillment for sale in sales] == ["in_store", "pickup", "delivery", "in_store", "in_store"]
    assert {sale.customer_id for sale in sales} == {""}


def test_unknown_location_is_not_found(cova_server):
    cova_server.add_location("Downtown", location_id=1001)
    error = problem_of(lambda: list(client_for(cova_server).sales("1999", None)))
    assert error.problem == ConnectionProblem.NOT_FOUND
    assert "location 1999" in error.message


# -- creating customers -----------------------------------------------------------------


def test_customer_create(cova_server):
    client = client_for(cova_server)
    new_id = client.customer_create(first_name=" Ana ", last_name="Lopez", email="", phone="(303) 555-0142",
                                    birth_date=dt.date(1990, 5, 1), pricing_group_id="Medical")
    assert new_id in cova_server.customers
    assert cova_server.created_customers == [{
        "FirstName": "Ana", "LastName": "Lopez", "Email": None, "Phone": "(303) 555-0142",
        "DateOfBirth": "1990-05-01", "PricingGroupId": "Medical",
    }]
    stored = cova_server.customers[new_id]
    assert stored["PricingGroupId"] == "Medical"
    (created,) = all_of(client.customers_changed(None))
    assert (created.id, created.first_name, created.pricing_group_id) == (new_id, "Ana", "Medical")


def test_customer_create_refused(cova_server):
    error = problem_of(lambda: client_for(cova_server).customer_create(
        first_name="", last_name="Lopez", email="a@example.com", phone=None, birth_date=None,
        pricing_group_id=None))
    assert error.problem == ConnectionProblem.MISCONFIGURED
    assert error.message == ("Cova refused to create a new customer in Cova company 4455: "
                             "A customer needs a FirstName or a Phone.")


def test_customer_create_is_not_repeated_after_a_server_error(cova_server):
    cova_server.fail_next(1, 500, "/Customers")
    error = problem_of(lambda: client_for(cova_server).customer_create(
        first_name="Ana", last_name="", email="", phone="", birth_date=None, pricing_group_id=None))
    assert error.problem == ConnectionProblem.UNREACHABLE
    assert len(cova_server.requests_to("/Customers", method="POST")) == 1


def test_customer_create_is_retried_after_429(cova_server):
    cova_server.fail_next(1, 429, "/Customers")
    new_id = client_for(cova_server).customer_create(
        first_name="Ana", last_name="", email="", phone="", birth_date=None, pricing_group_id=None)
    assert new_id in cova_server.customers
    assert len(cova_server.requests_to("/Customers", method="POST")) == 2


# -- retries and unreachable Cova -------------------------------------------------------


def test_server_errors_are_retried_with_backoff(cova_server):
    cova_server.add_location("Downtown")
    cova_server.fail_next(2, 500, "/Locations")
    client = client_for(cova_server, backoff=0.5)
    assert len(client.locations()) == 1
    assert len(cova_server.requests_to("/Locations")) == 3
    assert client.sleeps == [0.5, 1.0]


def test_token_endpoint_errors_are_retried(cova_server):
    cova_server.fail_next(1, 503, "/oauth2/token")
    client = client_for(cova_server)
    assert client.token()
    assert len(cova_server.requests_to("/oauth2/token")) == 2


def test_429_is_retried_honouring_retry_after(cova_server):
    cova_server.fail_next(1, 429, "/Locations")
    client = client_for(cova_server, backoff=5)
    assert client.locations() == []
    assert len(cova_server.requests_to("/Locations")) == 2
    assert client.sleeps == []  # Retry-After: 0 instead of 5 s of backoff


def test_persistent_server_error_is_unreachable(cova_server):
    cova_server.fail_always(500, "/Locations")
    client = client_for(cova_server, backoff=0.1)
    error = problem_of(client.locations)
    assert error.problem == ConnectionProblem.UNREACHABLE and error.retryable
    host = cova_server.url.removeprefix("http://")
    assert error.message == f"Cova answered HTTP 500 at {host} (4 attempts)."
    assert len(cova_server.requests_to("/Locations")) == 4
    assert client.sleeps == [0.1, 0.2, 0.4]


def test_slow_server_is_unreachable(cova_server):
    cova_server.delay_seconds = 0.5
    cova_server.delay_path_contains = "/Locations"
    client = client_for(cova_server, timeout=0.2, backoff=0, max_attempts=2)
    started = time.monotonic()
    error = problem_of(client.locations)
    assert time.monotonic() - started < 2
    assert error.problem == ConnectionProblem.UNREACHABLE
    host = cova_server.url.removeprefix("http://")
    assert error.message == f"Cova did not answer within 0.2 s at {host} (2 attempts)."
    assert len(cova_server.requests_to("/Locations")) == 2


def test_closed_port_is_unreachable(outbound_allow):
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    outbound_allow(url)
    client = CovaClient(client_id="X.AIQ", client_secret="s3cret", username="u", password="p4ss",
                        company_id=1, accounts_url=url, api_url=url, timeout=1, max_attempts=2, backoff=0)
    error = problem_of(client.test)
    assert error.problem == ConnectionProblem.UNREACHABLE
    assert error.message == f"Could not connect to Cova at 127.0.0.1:{port} (2 attempts)."


def test_answer_that_is_not_cova_is_misconfigured(cova_server):
    cova_server.fail_next(1, 200, "/Locations")  # {"Message": ...} instead of {"value": [...]}
    error = problem_of(client_for(cova_server).locations)
    assert error.problem == ConnectionProblem.MISCONFIGURED
    assert "did not answer like Cova" in error.message


# -- secrets ----------------------------------------------------------------------------


def test_secrets_never_leak(cova_server, caplog):
    caplog.set_level(logging.DEBUG)
    cova_server.seed_demo(customers=30, sales_per_location=5, locations=2, merges=3)
    client = client_for(cova_server, backoff=0)
    client.test()
    all_of(client.customers_changed(None, page_size=7))
    all_of(client.sales("1001", None))
    client.customer_create(first_name="Ana", last_name="", email="", phone="", birth_date=None,
                           pricing_group_id="Veteran")
    repr_text = repr(client)

    messages = []

    def failing(call, **overrides):
        messages.append(problem_of(lambda: call(client_for(cova_server, backoff=0, **overrides))))

    failing(lambda c: c.test(), client_secret=cova_server.client_secret + "x")
    failing(lambda c: c.test(), password=cova_server.password + "x")
    failing(lambda c: c.test(), company_id=999)
    cova_server.fail_always(500, "/Locations")
    failing(lambda c: c.locations())
    cova_server.clear_faults()
    cova_server.fail_always(403, "/Customers")
    failing(lambda c: list(c.customers_changed(None)))
    cova_server.clear_faults()
    cova_server.fail_next(1, 400, "/Customers")
    failing(lambda c: c.customer_create(first_name="A", last_name="", email="", phone="", birth_date=None,
                                        pricing_group_id=None))
    cova_server.delay_seconds, cova_server.delay_path_contains = 0.3, "/Sales"
    failing(lambda c: list(c.sales("1001", None)), timeout=0.1, max_attempts=1)
    cova_server.clear_faults()

    secrets = [cova_server.client_secret, cova_server.password, *cova_server.tokens]
    assert len(secrets) > 3
    texts = [str(error) for error in messages] + [repr(error) for error in messages] + [
        str(error.__cause__ or "") for error in messages]
    texts += [caplog.text, repr_text]
    for _method, path, headers in cova_server.requests:
        texts.append(path)
        texts.append(unquote(path))
        texts += [f"{name}: {value}" for name, value in headers.items() if name.lower() != "authorization"]
    for text in texts:
        for secret in secrets:
            assert secret not in text
    assert "retrying" in caplog.text  # the log was not empty to begin with
