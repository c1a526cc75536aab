"""Whatever a POS client sends, the API answers with a 4xx it can read, never a 500.

Schemathesis generates requests from the API's own OpenAPI schema, valid and invalid,
and sends them through the real WSGI stack with a valid key (bounded examples)."""

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.core.wsgi import get_wsgi_application
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error

from loyalty.models import Offer
from stores.models import API_BURST_MAX, API_RATE_MAX
from stores.services import api_key_create
from tests.factories import CompanyFactory, PersonaFactory, RetailStoreFactory

schema = schemathesis.openapi.from_wsgi("/api/schema/", get_wsgi_application()).include(
    path_regex=r"^/api/pos/")


@pytest.fixture
def keep_test_connection():
    # The WSGI handler closes the database connection after each request; inside a test
    # transaction that would end the test's own connection (Django's test client does the same).
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def pos_headers(db, keep_test_connection):
    company = CompanyFactory()
    RetailStoreFactory(company=company)
    PersonaFactory(company=company, phone="+13035550150")
    Offer.objects.create(company=company, name="5 off", kind="flat", amount=5, points_cost=10)
    _, raw = api_key_create(company=company, name="Fuzz", level=2,
                            rate_per_second=API_RATE_MAX, burst=API_BURST_MAX)  # limits not binding
    return {"Authorization": f"Bearer {raw}", "X-Account-UID": str(company.account_uid)}


@schema.parametrize()
@settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck))
def test_no_request_produces_a_server_error(case, pos_headers):
    case.call_and_validate(headers=pos_headers, checks=[not_a_server_error])
