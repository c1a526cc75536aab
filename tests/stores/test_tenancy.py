"""Another company's ids are a 404, never data; each role reaches only its pages."""

import pytest
from django.urls import reverse

from stores.models import Role
from tests.factories import (
    MembershipFactory,
    PersonaFactory,
    RetailStoreFactory,
    UserFactory,
)


@pytest.fixture
def foreign(other_company):
    return {
        "persona": PersonaFactory(company=other_company, first_name="Secret"),
        "store": RetailStoreFactory(company=other_company, name="Secret store"),
    }


@pytest.mark.parametrize(("method", "url_name", "kind"), [
    ("get", "persona_detail", "persona"),
    ("post", "persona_points_adjust", "persona"),
    ("post", "persona_enroll", "persona"),
    ("get", "store_edit", "store"),
    ("post", "store_edit", "store"),
])
def test_another_companys_id_is_404(admin_client, foreign, method, url_name, kind):
    obj = foreign[kind]
    arg = {"persona": "persona_id", "store": "store_id"}[kind]
    response = getattr(admin_client, method)(reverse(url_name, kwargs={arg: obj.pk}),
                                             {"delta": 500, "reason": "x", "token": "t",
                                              "name": "Hijack", "state": "CO"})
    assert response.status_code == 404
    assert b"Secret" not in response.content
    obj.refresh_from_db()
    assert getattr(obj, "points_balance", 0) == 0
    assert getattr(obj, "name", "Secret store") in ("Secret store", "")


def test_missing_id_is_the_same_404(admin_client):
    assert admin_client.get(reverse("persona_detail", kwargs={"persona_id": 999999})
                            ).status_code == 404


def test_lists_show_only_the_current_company(admin_client, company, foreign):
    PersonaFactory(company=company, first_name="Mine")
    RetailStoreFactory(company=company, name="My store")
    personas = admin_client.get(reverse("persona_list")).content.decode()
    stores = admin_client.get(reverse("store_list")).content.decode()
    assert "Mine" in personas and "Secret" not in personas
    assert "My store" in stores and "Secret store" not in stores


@pytest.mark.parametrize(("role", "url_name", "status"), [
    (Role.ADMIN, "persona_list", 200),
    (Role.ADMIN, "store_list", 200),
    (Role.ADMIN, "store_create", 200),
    (Role.MARKETER, "persona_list", 200),
    (Role.MARKETER, "store_list", 403),
    (Role.MARKETER, "store_create", 403),
    (Role.BUDTENDER, "persona_list", 200),
    (Role.BUDTENDER, "store_list", 403),
    (Role.BUDTENDER, "store_create", 403),
])
def test_roles_reach_only_their_pages(client, company, role, url_name, status):
    client.force_login(MembershipFactory(company=company, role=role).user)
    assert client.get(reverse(url_name)).status_code == status


def test_marketer_cannot_adjust_points_budtender_can(client, company):
    persona = PersonaFactory(company=company)
    url = reverse("persona_points_adjust", kwargs={"persona_id": persona.pk})
    client.force_login(MembershipFactory(company=company, role=Role.MARKETER).user)
    assert client.post(url, {"delta": 5, "reason": "x", "token": "a"}).status_code == 403
    client.force_login(MembershipFactory(company=company, role=Role.BUDTENDER).user)
    assert client.post(url, {"delta": 5, "reason": "x", "token": "b"}).status_code == 302
    persona.refresh_from_db()
    assert persona.points_balance == 5


def test_navigation_shows_only_what_the_role_may_use(client, company):
    client.force_login(MembershipFactory(company=company, role=Role.BUDTENDER).user)
    page = client.get(reverse("persona_list")).content.decode()
    assert "Personas" in page and "Retail stores" not in page
    client.force_login(MembershipFactory(company=company, role=Role.ADMIN).user)
    assert "Retail stores" in client.get(reverse("persona_list")).content.decode()


def test_anonymous_is_sent_to_login(client):
    response = client.get(reverse("persona_list"))
    assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_user_without_company_sees_why(client, db):
    client.force_login(UserFactory())
    response = client.get(reverse("persona_list"))
    assert response.status_code == 403
    assert b"not a member of any company" in response.content


def test_switching_company_changes_what_every_page_shows(client, company, other_company):
    user = MembershipFactory(company=company, role=Role.ADMIN).user
    MembershipFactory(company=other_company, user=user, role=Role.MARKETER)
    PersonaFactory(company=company, first_name="Alpha")
    PersonaFactory(company=other_company, first_name="Bravo")
    client.force_login(user)
    first = client.get(reverse("persona_list")).content.decode()
    assert "Alpha" in first and "Bravo" not in first
    assert 'name="company"' in first  # the header's switcher

    response = client.post(reverse("company_switch"),
                           {"company": other_company.pk, "next": "/personas/"})
    assert response.status_code == 302
    second = client.get(reverse("persona_list")).content.decode()
    assert "Bravo" in second and "Alpha" not in second
    # the role follows the company: a marketer there
    assert client.get(reverse("store_list")).status_code == 403


def test_switching_to_a_company_you_are_not_in_is_404(client, company, other_company):
    client.force_login(MembershipFactory(company=company).user)
    response = client.post(reverse("company_switch"), {"company": other_company.pk})
    assert response.status_code == 404
    assert "Other Co" not in client.get(reverse("persona_list")).content.decode()
