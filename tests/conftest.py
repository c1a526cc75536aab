import os
import shutil

import pytest

from stores.models import Role

from .factories import PASSWORD, CompanyFactory, MembershipFactory, RetailStoreFactory

# Playwright's sync API runs an event loop in the test thread; the ORM calls the tests
# make around it are still plain synchronous code.
os.environ.setdefault("DJANGO_ALLOW_ASYNC_UNSAFE", "true")


@pytest.fixture
def company(db):
    return CompanyFactory(name="Green Leaf", timezone="America/Denver")


@pytest.fixture
def other_company(db):
    return CompanyFactory(name="Other Co")


@pytest.fixture
def reports_root(settings, tmp_path):
    """REPORTS_ROOT in a temporary folder: each company's report files go in <root>/<slug>/."""
    root = tmp_path / "reports-root"
    root.mkdir()
    settings.REPORTS_ROOT = root
    return root


@pytest.fixture
def store(company):
    return RetailStoreFactory(company=company, name="Denver", state="CO")


def _member(company, role):
    return MembershipFactory(company=company, role=role).user


@pytest.fixture
def admin_user(company):
    return _member(company, Role.ADMIN)


@pytest.fixture
def marketer_user(company):
    return _member(company, Role.MARKETER)


@pytest.fixture
def budtender_user(company):
    return _member(company, Role.BUDTENDER)


@pytest.fixture
def admin_client(client, admin_user):
    client.force_login(admin_user)
    return client


@pytest.fixture
def login():
    """Log a user in on a test client, by role."""

    def do(client, user):
        client.force_login(user)
        return client

    return do


# --- Browser -------------------------------------------------------------------------

CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium")


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    if not CHROMIUM:
        pytest.skip("Chromium is not installed: apt-get install chromium (see README)")
    return {
        **browser_type_launch_args,
        "executable_path": CHROMIUM,
        "args": ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--disable-dev-shm-usage"],
    }


@pytest.fixture
def password():
    return PASSWORD
