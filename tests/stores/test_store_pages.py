import pytest
from django.urls import reverse

from stores.errors import DomainError
from stores.models import RetailStore
from stores.services import store_create, store_update


def test_store_create_page_adds_a_store(admin_client, company):
    response = admin_client.post(reverse("store_create"), {
        "name": "Portland", "state": "or", "timezone": "America/Los_Angeles",
        "opt_in_queue_enabled": "on"})
    assert response.status_code == 302
    store = RetailStore.objects.get(company=company)
    assert (store.name, store.state, store.opt_in_queue_enabled) == ("Portland", "OR", True)


def test_store_form_errors_say_which_field(admin_client, company, store):
    response = admin_client.post(reverse("store_create"), {"name": "", "state": "CO"},
                                 HTTP_HX_REQUEST="true")
    assert response.status_code == 200  # htmx swaps the form back with its errors
    assert b"This field is required" in response.content
    response = admin_client.post(reverse("store_create"),
                                 {"name": "denver", "state": "CO", "timezone": "Mars/Base"})
    assert response.status_code == 400
    content = response.content.decode()
    assert "Another store already has this name" in content
    assert "not a known time zone" in content
    assert RetailStore.objects.filter(company=company).count() == 1


def test_store_edit_page_saves_and_htmx_redirects(admin_client, store):
    url = reverse("store_edit", kwargs={"store_id": store.pk})
    page = admin_client.get(url).content.decode()
    assert "Additional settings" in page and "Opt-in queue" in page
    response = admin_client.post(url, {"name": "Denver Downtown", "state": "co"},
                                 HTTP_HX_REQUEST="true")
    assert response["HX-Redirect"] == reverse("store_list")
    store.refresh_from_db()
    assert (store.name, store.state) == ("Denver Downtown", "CO")


def test_store_services_validate(company, store):
    with pytest.raises(DomainError, match="timezone"):
        store_create(company=company, name="X", state="CO", timezone="Nowhere/City")
    with pytest.raises(DomainError, match="state"):
        store_update(store=store, state="")


def test_store_edit_page_works_with_no_app_providing_store_mappings(admin_client, store, monkeypatch):
    # given no app registered a Store mappings section (stores stands on its own)
    from stores import extensions

    monkeypatch.setattr(extensions, "_store_mappings", None)
    url = reverse("store_edit", kwargs={"store_id": store.pk})
    # then the page renders without the section, and saving still works
    page = admin_client.get(url).content.decode()
    assert "Opt-in queue" in page and 'data-testid="store-mappings"' not in page
    response = admin_client.post(url, {"name": "Denver Downtown", "state": "co"})
    assert response.status_code == 302
    store.refresh_from_db()
    assert store.name == "Denver Downtown"


def test_store_mappings_section_is_registered_by_integrations():
    from integrations.views_cova import StoreMappingsSection
    from stores import extensions

    assert isinstance(extensions._store_mappings, StoreMappingsSection)
