"""The audiences API (/api/v1/audiences/) as an integration would drive it: the POS API's
keys and error bodies, list / create / count / detail / members / refresh."""

import datetime as dt
from decimal import Decimal

import pytest
from django.test import Client

from audiences.models import Audience, AudienceMember
from audiences.services import audience_save
from loyalty.models import Persona, Source, Transaction
from stores.services import api_key_create, api_key_revoke
from tests.factories import CompanyFactory, PersonaFactory, RetailStoreFactory

API = "/api/v1/audiences/"


def api_client(raw: str, company) -> Client:
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_ACCOUNT_UID=str(company.account_uid))


def group(*children, match="all", negate=False):
    return {"type": "group", "match": match, "negate": negate, "children": list(children)}


def cond(trait, operator, value=None, negate=False):
    return {"type": "condition", "trait": trait, "operator": operator, "value": value, "negate": negate}


TEXTABLE = group(cond("sms_opt_in", "equals", True))


@pytest.fixture
def client_l1(company):
    _, raw = api_key_create(company=company, name="CRM", level=1)
    return api_client(raw, company)


@pytest.fixture
def customers(company):
    """Five customers who take texts, two who do not."""
    texting = [PersonaFactory(company=company, sms_opt_in=True, points_balance=i * 10, lifetime_points=i * 10)
               for i in range(5)]
    quiet = [PersonaFactory(company=company, sms_opt_in=False) for _ in range(2)]
    return texting, quiet


def post(client, path, body, **headers):
    return client.post(API + path, body, content_type="application/json", **headers)


# --- authentication ------------------------------------------------------------------------------

def test_calls_need_a_key_of_level_one(company, client_l1):
    assert Client().get(API).status_code in (401, 403)
    assert post(Client(), "count", {"rules": TEXTABLE}).status_code in (401, 403)
    wrong = Client(HTTP_AUTHORIZATION="Bearer lk_nope", HTTP_X_ACCOUNT_UID=str(company.account_uid))
    response = wrong.get(API)
    assert response.status_code == 401 and response.json()["code"] == "authentication_failed"
    key, raw = api_key_create(company=company, name="Push only", level=0)
    push = api_client(raw, company)
    assert push.get(API).status_code == 403
    assert post(push, "", {"name": "x", "rules": TEXTABLE}).status_code == 403
    other_uid = Client(HTTP_AUTHORIZATION=f"Bearer {raw}",
                       HTTP_X_ACCOUNT_UID=str(CompanyFactory().account_uid))
    assert other_uid.get(API).status_code in (401, 403)
    assert client_l1.get(API).status_code == 200
    key2, raw2 = api_key_create(company=company, name="Revoked", level=2)
    api_key_revoke(api_key=key2)
    assert api_client(raw2, company).get(API).status_code in (401, 403)


# --- create, list, detail ----------------------------------------------------------------------------

def test_create_calculates_and_list_and_detail_show_it(company, client_l1, customers):
    texting, _ = customers
    response = post(client_l1, "", {"name": "Texting", "rules": TEXTABLE})
    assert response.status_code == 201, response.json()
    body = response.json()
    assert (body["name"], body["size"], body["sms_opt_ins"], body["error"]) == ("Texting", 5, 5, "")
    assert body["calculated_at"] and body["rules"]["children"][0]["trait"] == "sms_opt_in"
    assert body["entered"] == 5 and body["average_cltv"] == "0.00"
    audience = Audience.objects.get(pk=body["id"])
    assert audience.company == company and audience.members.count() == 5

    listed = client_l1.get(API).json()["audiences"]
    assert [(a["id"], a["name"], a["size"]) for a in listed] == [(audience.pk, "Texting", 5)]
    assert set(listed[0]) == {"id", "name", "size", "sms_opt_ins", "email_opt_ins", "average_cltv",
                              "calculated_at", "error"}
    detail = client_l1.get(f"{API}{audience.pk}").json()
    assert detail["rules"] == audience.rules and detail["size"] == 5


def test_list_shows_only_the_callers_company(company, client_l1, other_company):
    audience_save(company=company, name="Ours", rules=TEXTABLE)
    audience_save(company=other_company, name="Theirs", rules=TEXTABLE)
    assert [a["name"] for a in client_l1.get(API).json()["audiences"]] == ["Ours"]


def test_create_with_a_duplicate_or_missing_name_is_a_400(company, client_l1):
    assert post(client_l1, "", {"name": "Texting", "rules": TEXTABLE}).status_code == 201
    again = post(client_l1, "", {"name": "Texting", "rules": TEXTABLE})
    assert again.status_code == 400 and "already" in again.json()["detail"]
    missing = post(client_l1, "", {"rules": TEXTABLE})
    assert missing.status_code == 400 and "name" in missing.json()["fields"]


def test_create_honours_an_idempotency_key(company, client_l1):
    first = post(client_l1, "", {"name": "Texting", "rules": TEXTABLE}, HTTP_IDEMPOTENCY_KEY="k-1")
    replay = post(client_l1, "", {"name": "Texting", "rules": TEXTABLE}, HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == replay.status_code == 201
    assert replay.json()["id"] == first.json()["id"] and replay["Idempotent-Replayed"] == "true"
    assert Audience.objects.filter(company=company).count() == 1


# --- invalid trees ------------------------------------------------------------------------------------

@pytest.mark.parametrize("rules, path", [
    (group(cond("sms_opt_in", "equals", True), cond("shoe_size", "equals", "9")), "children[1].trait"),
    (group(cond("sms_opt_in", "equals", True), cond("lifetime_spend", "gt", "lots")), "children[1].value"),
    (group(group(cond("sms_opt_in", "contains", "y"))), "children[0].children[0].operator"),
    (group(cond("created_at", "between", ["2026-02-01", "2026-01-01"])), "children[0].value"),
    (group(cond("favourite_store", "in", ["x"])), "children[0].value[0]"),
    ({"type": "folder"}, "type"),
    ("everyone", "rules"),
])
def test_invalid_trees_are_a_400_with_the_path(company, client_l1, rules, path):
    for response in (post(client_l1, "", {"name": "Bad", "rules": rules}),
                     post(client_l1, "count", {"rules": rules})):
        assert response.status_code == 400, response.json()
        body = response.json()
        assert (body["code"], body["path"]) == ("invalid_rules", path), body
        assert body["detail"]
    assert not Audience.objects.filter(company=company).exists()


def test_another_companys_store_is_a_400(company, client_l1, other_company):
    store = RetailStoreFactory(company=other_company)
    response = post(client_l1, "count", {"rules": group(cond("favourite_store", "in", [store.pk]))})
    assert response.status_code == 400 and response.json()["path"] == "children[0].value"


def test_a_cycle_between_audiences_is_a_400(company, client_l1):
    first = post(client_l1, "", {"name": "First", "rules": TEXTABLE}).json()
    second = post(client_l1, "", {"name": "Second",
                                  "rules": group(cond("audience", "member_of", first["id"]))})
    assert second.status_code == 201
    response = client_l1.patch(f"{API}{first['id']}", {"rules": group(
        cond("audience", "not_member_of", second.json()["id"]))}, content_type="application/json")
    assert response.status_code == 400
    assert (response.json()["code"], response.json()["path"]) == ("invalid_rules", "children[0].value")
    assert "itself" in response.json()["detail"]


def test_patch_renames_and_changes_rules_and_recalculates(company, client_l1, customers):
    created = post(client_l1, "", {"name": "Texting", "rules": TEXTABLE}).json()
    response = client_l1.patch(f"{API}{created['id']}", {"name": "Quiet", "rules": group(
        cond("sms_opt_in", "equals", False))}, content_type="application/json")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["name"], body["size"], body["entered"], body["exited"]) == ("Quiet", 2, 2, 5)


# --- count ---------------------------------------------------------------------------------------------

def test_count_counts_without_saving(company, client_l1, customers):
    response = post(client_l1, "count", {"rules": TEXTABLE})
    assert response.status_code == 200 and response.json() == {"count": 5}
    everyone = post(client_l1, "count", {"rules": group()})
    assert everyone.json() == {"count": 7}
    assert not Audience.objects.exists()
    assert post(client_l1, "count", {}).status_code == 400


def test_count_reads_purchases(company, client_l1, store):
    source = Source.objects.create(company=company, kind="cova", name="Cova")
    buyer, _ = PersonaFactory(company=company), PersonaFactory(company=company)
    Transaction.objects.create(company=company, store=store, persona=buyer, source=source, external_id="1",
                               occurred_at=dt.datetime.now(dt.UTC) - dt.timedelta(days=2),
                               fulfillment="delivery", subtotal=Decimal("30"), total=Decimal("30"))
    rules = group(cond("purchase", "performed", {"filters": [
        {"property": "fulfillment", "operator": "contains", "value": "Delivery"}], "within_days": 7}))
    assert post(client_l1, "count", {"rules": rules}).json() == {"count": 1}
    rules = group(cond("stores_purchased_at", "in", [store.pk]))
    assert post(client_l1, "count", {"rules": rules}).json() == {"count": 1}


# --- members -------------------------------------------------------------------------------------------

def test_members_page_by_customer_id(company, client_l1, customers):
    texting, _ = customers
    created = post(client_l1, "", {"name": "Texting", "rules": TEXTABLE}).json()
    audience = Audience.objects.get(pk=created["id"])
    url = f"{API}{audience.pk}/members"
    seen, cursor, pages = [], None, 0
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        body = client_l1.get(url, params).json()
        pages += 1
        seen += [m["id"] for m in body["members"]]
        cursor = body["next_cursor"]
        if cursor is None:
            break
    assert pages == 3 and seen == sorted(p.pk for p in texting)
    first = client_l1.get(url).json()["members"][0]
    persona = Persona.objects.get(pk=first["id"])
    assert first == {"id": persona.pk, "first_name": persona.first_name, "last_name": persona.last_name,
                     "email": persona.email, "phone": persona.phone, "sms_opt_in": True,
                     "email_opt_in": persona.email_opt_in, "is_member": persona.is_member,
                     "points_balance": persona.points_balance}
    exact = client_l1.get(url, {"limit": 5}).json()
    assert len(exact["members"]) == 5 and exact["next_cursor"] is None
    assert len(client_l1.get(url, {"limit": 5000}).json()["members"]) == 5  # capped at 1000, not refused
    after_last = client_l1.get(url, {"cursor": str(max(seen))}).json()
    assert after_last["members"] == [] and after_last["next_cursor"] is None


def test_members_limit_is_capped_at_a_thousand(company, client_l1):
    audience = audience_save(company=company, name="Many", rules=group())
    people = Persona.objects.bulk_create([Persona(company=company, first_name=f"P{i}") for i in range(1005)])
    now = dt.datetime.now(dt.UTC)
    AudienceMember.objects.bulk_create([AudienceMember(audience=audience, persona=p, added_at=now)
                                        for p in people])
    body = client_l1.get(f"{API}{audience.pk}/members", {"limit": 5000}).json()
    assert len(body["members"]) == 1000 and body["next_cursor"] == str(people[999].pk)
    rest = client_l1.get(f"{API}{audience.pk}/members", {"limit": 5000, "cursor": body["next_cursor"]}).json()
    assert [m["id"] for m in rest["members"]] == [p.pk for p in people[1000:]] and rest["next_cursor"] is None


@pytest.mark.parametrize("params", [{"limit": "ten"}, {"cursor": "abc"}, {"cursor": "-4"}, {"limit": "1e3"}])
def test_members_bad_paging_is_a_400(company, client_l1, params):
    audience = audience_save(company=company, name="Texting", rules=TEXTABLE)
    response = client_l1.get(f"{API}{audience.pk}/members", params)
    assert response.status_code == 400 and response.json()["code"] == "invalid"


# --- another company's audience ----------------------------------------------------------------------

def test_another_companys_audience_is_a_404(company, client_l1, other_company):
    theirs = audience_save(company=other_company, name="Theirs", rules=TEXTABLE)
    for response in (client_l1.get(f"{API}{theirs.pk}"), client_l1.get(f"{API}{theirs.pk}/members"),
                     post(client_l1, f"{theirs.pk}/refresh", {}),
                     client_l1.patch(f"{API}{theirs.pk}", {"name": "Mine"}, content_type="application/json"),
                     client_l1.get(f"{API}{10**9}")):
        assert response.status_code == 404 and response.json()["code"] == "not_found"
    theirs.refresh_from_db()
    assert theirs.name == "Theirs" and theirs.calculated_at is None
    referencing = post(client_l1, "count", {"rules": group(cond("audience", "member_of", theirs.pk))})
    assert referencing.status_code == 400 and referencing.json()["path"] == "children[0].value"


# --- refresh -------------------------------------------------------------------------------------------

def test_refresh_recalculates_with_who_entered_and_left(company, client_l1, customers):
    texting, quiet = customers
    created = post(client_l1, "", {"name": "Texting", "rules": TEXTABLE}).json()
    Persona.objects.filter(pk=texting[0].pk).update(sms_opt_in=False)
    Persona.objects.filter(pk__in=[p.pk for p in quiet]).update(sms_opt_in=True)
    response = post(client_l1, f"{created['id']}/refresh", {})
    assert response.status_code == 200, response.json()
    body = response.json()
    assert (body["size"], body["entered"], body["exited"], body["error"]) == (6, 2, 1, "")


def test_refresh_of_an_audience_whose_rules_no_longer_compile_records_the_error(company, client_l1):
    audience = audience_save(company=company, name="Old", rules=TEXTABLE)
    Audience.objects.filter(pk=audience.pk).update(rules=group(cond("retired", "equals", True)))
    response = post(client_l1, f"{audience.pk}/refresh", {})
    assert response.status_code == 400 and response.json()["code"] == "calculation_failed"
    assert "retired" in client_l1.get(f"{API}{audience.pk}").json()["error"]


def test_unsupported_methods_are_a_405(company, client_l1):
    audience = audience_save(company=company, name="Texting", rules=TEXTABLE)
    assert post(client_l1, f"{audience.pk}", {}).status_code == 405
    assert client_l1.delete(f"{API}{audience.pk}").status_code == 405
    assert client_l1.get(f"{API}{audience.pk}/refresh").status_code == 405
    assert client_l1.get(f"{API}count").status_code == 405


# --- docs ------------------------------------------------------------------------------------------------

def test_the_endpoints_are_in_the_api_docs(client):
    schema = client.get("/api/schema/").content.decode()
    for path in ("/api/v1/audiences/", "/api/v1/audiences/count", "/api/v1/audiences/{audience_id}",
                 "/api/v1/audiences/{audience_id}/members", "/api/v1/audiences/{audience_id}/refresh"):
        assert f"{path}:" in schema, path
    assert "AudienceMembers" in schema and "next_cursor" in schema
