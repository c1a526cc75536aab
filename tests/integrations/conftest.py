import pytest

from integrations.services.connections import connection_create


@pytest.fixture
def reports_dir(tmp_path):
    path = tmp_path / "reports"
    path.mkdir()
    return path


@pytest.fixture
def folder_connection(company, store, reports_dir):
    return connection_create(company=company, name="Nightly reports", provider="folder",
                             settings={"path": str(reports_dir)}, credentials={})
