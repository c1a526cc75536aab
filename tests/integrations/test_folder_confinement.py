"""A "Folder on the server" connection reads only inside its company's report folder,
REPORTS_ROOT/<slug>/: company B's admin cannot point one at company A's reports (or at
/etc), not by typing a path, not by a link inside B's folder, not by editing the saved
settings behind the form's back. Checked when saved and again when read."""

import contextlib
import datetime as dt
import importlib

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from integrations.models import Connection, ImportedFile, SyncRun
from integrations.providers import ConnectionProblem, ProviderError, provider_for
from integrations.services.connections import connection_create, connection_test
from integrations.services.sync import SyncFailed, sync_run_create, sync_run_execute
from loyalty.models import Persona
from stores.folders import OutsideCompanyFolder, path_in_company_folder
from stores.models import Role
from tests.factories import MembershipFactory, RetailStoreFactory

SECRET = "A-SECRET-CUSTOMER"


def report(customer: str, location: str, first_name: str = "Alice") -> str:
    day = (timezone.localdate() - dt.timedelta(days=2)).strftime("%m/%d/%Y")
    return ("ReceiptId,customerId,TransactionDate,Location,FirstName,ProductName,Quantity,LineTotal\n"
            f"R1,{customer},{day} 10:15 AM,{location},{first_name},Gummies,2,$20.00\n")


@pytest.fixture
def a_reports(company, store, reports_root):
    """Company A's report folder, with a file naming one of A's customers."""
    folder = reports_root / company.slug / "daily"
    folder.mkdir(parents=True)
    (folder / "day.csv").write_text(report(SECRET, store.name))
    return folder


@pytest.fixture
def b_folder(other_company, reports_root):
    folder = reports_root / other_company.slug
    folder.mkdir()
    return folder


@pytest.fixture
def b_store(other_company):
    return RetailStoreFactory(company=other_company, name="Boulder")


@pytest.fixture
def b_admin(client, other_company):
    user = MembershipFactory(company=other_company, role=Role.ADMIN).user
    client.force_login(user)
    return client


@pytest.fixture
def b_connection(other_company, b_folder, b_store):
    """B's own, legitimate connection: B's report folder itself."""
    return connection_create(company=other_company, name="B reports", provider="folder",
                             settings={"path": ""}, credentials={}, default_store=b_store)


def attacks(root, a_slug) -> dict[str, str]:
    """Paths B's admin might type, by what they aim at."""
    return {
        "traversal to /etc": "../../etc",
        "traversal to another company": f"../{a_slug}",
        "traversal through a subfolder": f"daily/../../{a_slug}/daily",
        "absolute /etc": "/etc",
        "absolute, another company's folder": f"{root}/{a_slug}/daily",
    }


ATTACKS = ["traversal to /etc", "traversal to another company", "traversal through a subfolder",
           "absolute /etc", "absolute, another company's folder"]


def sync(connection) -> SyncRun:
    run = sync_run_create(connection=connection, trigger=SyncRun.Trigger.MANUAL)
    with contextlib.suppress(SyncFailed):  # a failed run is what some tests expect
        sync_run_execute(run_id=run.pk)
    return SyncRun.objects.get(pk=run.pk)


def assert_nothing_of_a_read(other_company, page: str = ""):
    assert SECRET not in page
    assert not Persona.objects.filter(company=other_company, first_name="Alice").exists()
    assert not ImportedFile.objects.filter(connection__company=other_company, key__contains="day.csv",
                                           state="imported").exists()


# -- when saved ------------------------------------------------------------------------------

@pytest.mark.parametrize("attack", ATTACKS)
def test_connection_create_refuses_a_path_outside_the_company_folder(
        b_admin, other_company, company, reports_root, a_reports, b_folder, attack):
    # given: B's admin on the form of a new folder connection
    path = attacks(reports_root, company.slug)[attack]
    data = {"provider": "folder", "name": "Sneaky", "path": path, "sync_time": "02:00"}
    # when: they save a path that leads outside B's report folder
    response = b_admin.post(reverse("connection_create"), data)
    # then: the form says where report files may go, on the path field, and nothing is saved
    page = response.content.decode()
    assert response.status_code == 400
    assert f"Report files must be inside {b_folder}/; &#x27;{path}&#x27; is outside it." in page
    assert 'class="field-error"' in page
    assert not Connection.objects.filter(company=other_company).exists()


@pytest.mark.parametrize("attack", ATTACKS)
def test_connection_edit_refuses_a_path_outside_the_company_folder(
        b_admin, b_connection, company, reports_root, a_reports, attack):
    # given: B's saved, legitimate connection
    path = attacks(reports_root, company.slug)[attack]
    data = {"name": "B reports", "path": path, "sync_time": "02:00"}
    # when: B's admin changes its path to lead outside, plain and through htmx
    response = b_admin.post(reverse("connection_edit", args=[b_connection.pk]), data)
    htmx = b_admin.post(reverse("connection_edit", args=[b_connection.pk]), data, HTTP_HX_REQUEST="true")
    # then: refused with the reason, and the saved path is unchanged
    assert response.status_code == 400
    assert "is outside it." in response.content.decode()
    assert htmx.status_code == 200 and "is outside it." in htmx.content.decode()
    b_connection.refresh_from_db()
    assert b_connection.settings == {"path": ""}


def test_connection_create_refuses_a_link_to_another_companys_folder(
        b_admin, other_company, a_reports, b_folder):
    # given: a link inside B's folder that leads to A's report folder
    (b_folder / "shared").symlink_to(a_reports, target_is_directory=True)
    data = {"provider": "folder", "name": "Sneaky", "path": "shared", "sync_time": "02:00"}
    # when: B's admin saves it as the connection's folder
    response = b_admin.post(reverse("connection_create"), data)
    # then: refused, saying where the link leads
    assert response.status_code == 400
    assert (f"&#x27;shared&#x27; leads to {a_reports}, which is outside it."
            in response.content.decode())
    assert not Connection.objects.filter(company=other_company).exists()


def test_connection_create_keeps_a_relative_path_and_makes_a_full_one_relative(
        b_admin, other_company, b_folder):
    # given: B's admin on the form; it says where report files go
    page = b_admin.get(reverse("connection_create") + "?provider=folder").content.decode()
    assert f"Report files go in {b_folder}/ on the server" in page
    # when: one connection is saved with a relative path, another with the full path
    for name, path in (("Relative", "daily/"), ("Full", f"{b_folder}/daily")):
        response = b_admin.post(reverse("connection_create"),
                                {"provider": "folder", "name": name, "path": path, "sync_time": "02:00"})
        assert response.status_code == 302, response.content.decode()
    # then: both are saved relative to B's folder, and the page shows the full folder
    saved = Connection.objects.filter(company=other_company)
    assert [c.settings["path"] for c in saved] == ["daily", "daily"]
    detail = b_admin.get(reverse("connection_detail", args=[saved[0].pk])).content.decode()
    assert f"{b_folder}/daily/" in detail
    edit = b_admin.get(reverse("connection_edit", args=[saved[0].pk])).content.decode()
    assert f"Report files go in {b_folder}/ on the server" in edit and 'value="daily"' in edit


# -- when read -------------------------------------------------------------------------------

@pytest.mark.parametrize("attack", ATTACKS)
def test_sync_refuses_a_saved_path_outside_the_company_folder(
        b_connection, other_company, company, reports_root, a_reports, attack):
    # given: B's connection whose path was changed in the database, past the form
    path = attacks(reports_root, company.slug)[attack]
    Connection.objects.filter(pk=b_connection.pk).update(settings={"path": path})
    b_connection.refresh_from_db()
    # when: it syncs
    run = sync(b_connection)
    # then: the run fails, saying why, and nothing of A's was read
    assert run.state == SyncRun.State.FAILED
    assert "is outside it." in run.error and "Report files must be inside" in run.error
    assert_nothing_of_a_read(other_company)
    # and the task does not retry it: it will not pass by itself
    with pytest.raises(SyncFailed) as caught:
        sync_run_execute(run_id=sync_run_create(connection=b_connection, trigger="manual").pk)
    assert caught.value.retryable is False
    # and Test connection says so too
    ok, message = connection_test(connection=b_connection)
    assert not ok and "is outside it." in message


@pytest.mark.parametrize("attack", ATTACKS)
def test_header_mapping_cannot_preview_another_companys_file(
        b_admin, b_connection, other_company, company, reports_root, a_reports, attack):
    # given: B's connection pointed at A's folder (or /etc) in the database
    path = attacks(reports_root, company.slug)[attack]
    Connection.objects.filter(pk=b_connection.pk).update(settings={"path": path})
    url = reverse("connection_header_mapping", args=[b_connection.pk])
    # when: B's admin opens Header mapping
    page = b_admin.get(url).content.decode()
    # then: A's files are not offered; the page says why the source cannot be listed
    assert 'id="id_source_file"' in page and "day.csv" not in page
    assert "files cannot be listed" in page and "is outside it." in page
    # when: they ask for A's file by name anyway
    response = b_admin.post(url, {"source_file": "day.csv"})
    # then: refused, and none of A's data is shown or imported
    assert response.status_code == 400 and "is outside it." in response.content.decode()
    assert_nothing_of_a_read(other_company, response.content.decode())


def test_sync_refuses_a_folder_that_became_a_link_to_another_company(
        b_connection, other_company, b_folder, a_reports, b_store):
    # given: B saved "incoming", a real folder then, and it later became a link to A's folder
    (b_folder / "incoming").mkdir()
    Connection.objects.filter(pk=b_connection.pk).update(settings={"path": "incoming"})
    b_connection.refresh_from_db()
    (b_folder / "incoming").rmdir()
    (b_folder / "incoming").symlink_to(a_reports, target_is_directory=True)
    # when: it syncs
    run = sync(b_connection)
    # then: refused, saying where the folder leads
    assert run.state == SyncRun.State.FAILED
    assert f"'incoming' leads to {a_reports}, which is outside it." in run.error
    assert_nothing_of_a_read(other_company)


def test_list_files_leaves_out_links_that_lead_outside(
        b_admin, b_connection, other_company, b_folder, a_reports, b_store):
    # given: B's folder holds its own report, a link to A's report file, a link to A's
    # folder and a link to /etc/passwd named like a report
    (b_folder / "mine.csv").write_text(report("B-1", b_store.name, "Bea"))
    (b_folder / "stolen.csv").symlink_to(a_reports / "day.csv")
    (b_folder / "a-folder").symlink_to(a_reports, target_is_directory=True)
    (b_folder / "passwd.csv").symlink_to("/etc/passwd")
    # when: it syncs
    run = sync(b_connection)
    # then: only B's own report is read
    assert run.state == SyncRun.State.SUCCEEDED, run.error
    assert list(ImportedFile.objects.filter(connection=b_connection).values_list("key", flat=True)) == [
        "mine.csv"]
    assert Persona.objects.filter(company=other_company).count() == 1
    assert_nothing_of_a_read(other_company)
    # and Test connection names the files it left out
    ok, message = connection_test(connection=b_connection)
    assert ok and "1 CSV file." in message
    assert "lead outside the company's report folder: passwd.csv, stolen.csv" in message
    # and Header mapping neither offers nor previews them
    url = reverse("connection_header_mapping", args=[b_connection.pk])
    page = b_admin.get(url).content.decode()
    assert "mine.csv" in page and "stolen.csv" not in page
    for key in ("stolen.csv", "a-folder/day.csv", "../" + a_reports.parent.name + "/daily/day.csv"):
        response = b_admin.post(url, {"source_file": key})
        assert response.status_code == 400 and "is no longer in the source" in response.content.decode()
        assert_nothing_of_a_read(other_company, response.content.decode())


def test_open_refuses_a_file_swapped_for_a_link_after_listing(b_connection, b_folder, a_reports, b_store):
    # given: B's folder listed with a real report, and one in a subfolder
    (b_folder / "day.csv").write_text(report("B-1", b_store.name, "Bea"))
    (b_folder / "sub").mkdir()
    (b_folder / "sub" / "day.csv").write_text(report("B-2", b_store.name, "Bea"))
    provider = provider_for(b_connection)
    listed = {f.key: f for f in provider.list_files()}
    assert set(listed) == {"day.csv", "sub/day.csv"}
    # when: before they are opened, the file becomes a link to A's report, and the
    # subfolder a link to A's folder
    (b_folder / "day.csv").unlink()
    (b_folder / "day.csv").symlink_to(a_reports / "day.csv")
    (b_folder / "sub" / "day.csv").unlink()
    (b_folder / "sub").rmdir()
    (b_folder / "sub").symlink_to(a_reports, target_is_directory=True)
    # then: opening either is refused, and A's bytes are never returned
    for key in ("day.csv", "sub/day.csv"):
        with pytest.raises(ProviderError) as caught:
            provider.open(listed[key])
        assert caught.value.problem == ConnectionProblem.NO_PERMISSION
        assert "is outside it." in caught.value.message


def test_sync_imports_a_file_from_a_relative_path(b_admin, other_company, b_folder, b_store):
    # given: a report in B's folder, under "daily"
    (b_folder / "daily").mkdir()
    (b_folder / "daily" / "day.csv").write_text(report("B-7", b_store.name, "Bea"))
    # when: B's admin adds the connection on the page with the relative path and syncs it
    response = b_admin.post(reverse("connection_create"), {
        "provider": "folder", "name": "B daily", "path": "daily", "sync_time": "02:00"})
    assert response.status_code == 302
    connection = Connection.objects.get(company=other_company, name="B daily")
    run = sync(connection)
    # then: the file is imported and its customer is B's
    assert run.state == SyncRun.State.SUCCEEDED, run.error
    assert (run.files_imported, run.rows_accepted) == (1, 1)
    assert Persona.objects.get(company=other_company).identities.get().external_id == "B-7"


# -- connections saved before the confinement -------------------------------------------------

def test_folder_paths_confined_migration_freezes_paths_outside(
        b_admin, other_company, reports_root, b_folder, a_reports, company):
    # given: B's folder connections as saved before: outside its folder, or absolute inside
    outside = [connection_create(company=other_company, name=f"Old {i}", provider="folder",
                                 settings={}, credentials={}) for i in range(3)]
    for connection, path in zip(outside, ["/etc", str(a_reports), "../../etc"], strict=True):
        Connection.objects.filter(pk=connection.pk).update(settings={"path": path})
    (b_folder / "daily").mkdir()
    inside = connection_create(company=other_company, name="Inside", provider="folder",
                               settings={}, credentials={})
    Connection.objects.filter(pk=inside.pk).update(settings={"path": f"{b_folder}/daily"})
    # when: the migration runs
    migration = importlib.import_module("integrations.migrations.0003_folder_paths_confined")
    migration.confine_folder_paths(apps, None)
    # then: those outside are frozen, off the nightly schedule, with a notice saying why
    for connection, path in zip(outside, ["/etc", str(a_reports), "../../etc"], strict=True):
        connection.refresh_from_db()
        assert connection.is_frozen and not connection.periodic_task.enabled
        assert connection.notice == (
            f"This folder connection pointed outside the company's report folder ({path}) and was "
            f"frozen; move the files under {b_folder}/ and save a path relative to it.")
    # and the one inside is kept, in its relative form
    inside.refresh_from_db()
    assert not inside.is_frozen and inside.settings == {"path": "daily"} and inside.notice == ""
    # and the connection's page shows the notice, until a path inside is saved
    url = reverse("connection_detail", args=[outside[0].pk])
    assert 'data-testid="connection-notice"' in b_admin.get(url).content.decode()
    response = b_admin.post(reverse("connection_edit", args=[outside[0].pk]),
                            {"name": "Old 0", "path": "daily", "sync_time": "02:00"})
    assert response.status_code == 302
    page = b_admin.get(url).content.decode()
    assert 'data-testid="connection-notice"' not in page and "Frozen" in page


def test_path_in_company_folder_refuses_a_slug_that_names_another_folder(reports_root):
    # given / when / then: a slug that could name another folder names none
    for slug in ("", "..", "a/b", "."):
        with pytest.raises(OutsideCompanyFolder):
            path_in_company_folder(slug=slug, path="")
    # and a path that wanders but stays inside is the folder it ends in
    assert path_in_company_folder(slug="green-leaf", path="x/../y") == reports_root.resolve() / "green-leaf/y"
