"""The audience pages: list and templates, the builder's live count, saving, export, access."""

import csv
import datetime as dt
import html
import io
import json
import re
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.urls import reverse
from django.utils import timezone

from audiences.models import Audience, AudienceMember
from audiences.services import audience_refresh, audience_save, persona_facts_refresh
from audiences.templates import templates_for
from loyalty.models import Persona
from loyalty.services import (
    LineItemData,
    TransactionData,
    persona_create,
    source_get_or_create,
    transaction_record,
)
from stores.models import Role
from tests.factories import MembershipFactory, PersonaFactory, RetailStoreFactory


def sale(company, source, persona, ref, *, category, total, fulfillment="in_store", days_ago=1, store=None,
         status="completed"):
    transaction_record(company=company, source=source, data=TransactionData(
        external_id=ref, occurred_at=timezone.now() - dt.timedelta(days=days_ago), persona_id=persona.pk,
        store_id=store.pk if store else None, subtotal=Decimal(total), total=Decimal(total),
        fulfillment=fulfillment, status=status,
        line_items=[LineItemData(product=f"{category} thing", brand="Brandy", category=category,
                                 quantity=Decimal("1"), unit_price=Decimal(total), total=Decimal(total))]))


@pytest.fixture
def shop(company):
    """Four customers: Ana (member, both opt-ins, Medical, delivery Flower, birthday this month),
    Bob (SMS only, Recreational, Edibles in store), Cy (member, Medical, Flower pickup 120 days
    ago), Dee (nothing, first seen 70 days ago)."""
    cova = source_get_or_create(company=company, kind="cova")
    denver = RetailStoreFactory(company=company, name="Denver")
    boulder = RetailStoreFactory(company=company, name="Boulder")
    now = timezone.now()
    today = timezone.now().astimezone(ZoneInfo(company.timezone)).date()  # "this month" is the shop's
    people = {
        "ana": persona_create(company=company, source=cova, first_name="Ana", last_name="Alpha",
                              phone="3035550101", email="ana@example.com", sms_opt_in=True, email_opt_in=True,
                              enrolled_at=now, favourite_store=denver, market="CO",
                              birth_date=dt.date(1990, today.month, min(today.day, 28)),
                              custom_traits={"CovaPricingGroup": "Medical"}),
        "bob": persona_create(company=company, source=cova, first_name="Bob", last_name="Bravo",
                              phone="3035550102", email="bob@example.com", sms_opt_in=True,
                              favourite_store=boulder, custom_traits={"CovaPricingGroup": "Recreational"}),
        "cy": persona_create(company=company, source=cova, first_name="Cy", last_name="Charlie",
                             phone="", email="cy@example.com", enrolled_at=now,
                             custom_traits={"CovaPricingGroup": "Medical"}),
        "dee": persona_create(company=company, source=cova, first_name="Dee", last_name="Delta",
                              created_at=now - dt.timedelta(days=70)),
    }
    sale(company, cova, people["ana"], "S1", category="Flower", total="100", fulfillment="delivery",
         store=denver)
    sale(company, cova, people["bob"], "S2", category="Edibles", total="40", store=boulder)
    sale(company, cova, people["cy"], "S3", category="Flower", total="20", fulfillment="pickup", days_ago=120)
    # A delivery that was voided does not make Dee a delivery customer.
    sale(company, cova, people["dee"], "S4", category="Vapes", total="10", fulfillment="delivery",
         status="voided")
    persona_facts_refresh(company=company)
    return people | {"stores": (denver, boulder), "source": cova}


def fields(*conditions, match="all"):
    """The builder's form fields for a root group of simple conditions."""
    data = {"node": ["0"], "0:type": "group", "0:match": match}
    for i, (trait, op, value) in enumerate(conditions):
        path = f"0.{i}"
        data["node"].append(path)
        data.update({f"{path}:type": "condition", f"{path}:trait": trait, f"{path}:was": trait,
                     f"{path}:op": op, f"{path}:wasop": op})
        if isinstance(value, list):
            data[f"{path}:values"] = value
        elif value is not None:
            data[f"{path}:value"] = value
    return data


def count_of(response):
    """The live count the partial shows, or None when it shows an error instead."""
    found = re.search(r'data-testid="audience-count">([\d,]+)<', response.content.decode())
    return int(found[1].replace(",", "")) if found else None


def error_of(response):
    found = re.search(r'data-testid="audience-error"[^>]*>([^<]*)<', response.content.decode())
    return html.unescape(found[1]) if found else None


@pytest.fixture
def marketer_client(client, login, marketer_user):
    return login(client, marketer_user)


# --- list and templates ---------------------------------------------------------------------------

def test_audience_list_shows_each_audience_with_its_stats(marketer_client, company, shop):
    members = audience_save(company=company, name="Members", rules={
        "type": "group", "match": "all", "children": [
            {"type": "condition", "trait": "is_member", "operator": "equals", "value": True}]})
    audience_refresh(audience=members)
    broken = audience_save(company=company, name="Broken", rules={"type": "group", "children": []})
    Audience.objects.filter(pk=broken.pk).update(error="Calculation failed: boom", calculation_ms=2500)

    page = marketer_client.get(reverse("audience_list")).content.decode()

    row = page[page.index(">Members<"):]
    row = row[:row.index("</tr>")]
    # 2 members, 1 with SMS, 1 with email, average spend (100 + 20) / 2
    for text in ('data-testid="audience-size">2<', ">1<", "60.00 USD", " ms<"):
        assert text in row, text
    assert "Calculation failed: boom" in page and "2.5 s" in page
    assert reverse("audience_builder", kwargs={"audience_id": members.pk}) in page
    assert page.count('data-testid="template-') >= 10


def test_every_template_creates_a_calculated_audience(marketer_client, company, shop):
    expected = {"all_customers": 4, "loyalty_members": 2, "delivery_customers": 1, "lapsed_90_days": 1,
                "top_spenders": 1, "birthday_this_month": 1, "new_this_month": 3, "sms_opted_in": 2,
                "email_opted_in": 1, "top_category_1": 2, "top_category_2": 1}
    keys = [t.key for t in templates_for(company=company)]
    assert len(keys) >= 10 and set(expected) <= set(keys)

    for key in keys:
        response = marketer_client.post(reverse("audience_from_template", kwargs={"key": key}))
        audience = Audience.objects.get(company=company, template_key=key)
        assert response.status_code == 302
        assert response["Location"] == reverse("audience_builder", kwargs={"audience_id": audience.pk})
        assert audience.error == "" and audience.calculated_at is not None, key
        if key in expected:
            assert audience.size == expected[key], key

    delivery = Audience.objects.get(company=company, template_key="delivery_customers")
    assert list(AudienceMember.objects.filter(audience=delivery).values_list("persona_id", flat=True)) == [
        shop["ana"].pk]
    assert Audience.objects.get(template_key="top_category_1").name == "Flower buyers"
    # The same template again gets a name of its own.
    marketer_client.post(reverse("audience_from_template", kwargs={"key": "loyalty_members"}))
    assert Audience.objects.filter(company=company, name="Loyalty members (2)").exists()
    assert marketer_client.post(reverse("audience_from_template", kwargs={"key": "nope"})).status_code == 404


# --- the builder's live count --------------------------------------------------------------------------

def test_builder_count_follows_the_conditions(marketer_client, company, shop):
    url = reverse("audience_count_new")
    assert count_of(marketer_client.post(url, fields())) == 4
    assert count_of(marketer_client.post(url, fields(("is_member", "equals", "true")))) == 2
    both = fields(("is_member", "equals", "true"), ("sms_opt_in", "equals", "true"))
    response = marketer_client.post(url, both, HTTP_HX_REQUEST="true")
    assert count_of(response) == 1
    content = response.content.decode()
    assert 'data-testid="audience-count">1<' in content and "Ana Alpha" in content and "<html" not in content
    assert count_of(marketer_client.post(url, both | {"0:match": "any"})) == 3
    assert count_of(marketer_client.post(url, both | {"0.1:negate": "1"})) == 1  # members without SMS: Cy
    denver, boulder = shop["stores"]
    assert count_of(marketer_client.post(url, fields(("favourite_store", "in", [str(denver.pk)])))) == 1
    assert count_of(marketer_client.post(url, fields(("lifetime_spend", "between", None)) | {
        "0.0:value": "30", "0.0:value2": "100"})) == 2
    history = fields(("bought_category", "within_days", None)) | {"0.0:name": "flower", "0.0:days": "30"}
    assert count_of(marketer_client.post(url, history)) == 1
    assert count_of(marketer_client.post(url, fields(("tier", "is_not_set", None)))) == 4
    # The tree as JSON, as a script would post it.
    rules = {"type": "group", "match": "all", "children": [
        {"type": "condition", "trait": "purchase", "operator": "performed",
         "value": {"filters": [{"property": "fulfillment", "operator": "contains", "value": "deliv"}]}}]}
    assert count_of(marketer_client.post(url, {"rules": json.dumps(rules)})) == 1


def test_builder_count_explains_a_bad_tree_in_plain_words(marketer_client, company, shop):
    url = reverse("audience_count_new")
    cases = [
        (fields(("is_member", "equals", "true"), ("lifetime_spend", "gt", "lots")),
         "Condition 2: value must be a number"),
        (fields(("", "", None)), "Condition 1: pick a trait"),
        (fields(("lifetime_spend", "between", None)) | {"0.0:value": "5", "0.0:value2": "x"},
         "Condition 1: to value must be a number"),
        (fields(("favourite_store", "in", [])), "Condition 1: value needs at least one choice"),
        (fields(("favourite_store", "in", ["999999"])), "Condition 1: no store 999999 in this company"),
        ({"rules": "{not json"}, "The rules are not valid JSON."),
        ({"rules": json.dumps({"type": "group", "children": [{"type": "group", "children": [
            {"type": "condition", "trait": "purchase", "operator": "performed",
             "value": {"filters": [{"property": "amount", "operator": "gt", "value": "ten"}]}}]}]})},
         "Condition 1: filter 1 value must be a number"),
    ]
    for data, message in cases:
        response = marketer_client.post(url, data)
        assert response.status_code == 200
        assert count_of(response) is None
        assert error_of(response) == message
    # The card names the node it is about, so the builder can outline it.
    response = marketer_client.post(url, cases[0][0])
    assert 'data-error-path="0.1"' in response.content.decode()


@pytest.mark.parametrize("rules", [
    [], "x", None, {"type": "group", "children": "no"}, {"type": "group", "match": "some", "children": []},
    {"type": "group", "children": [{"type": "condition", "trait": "purchase", "operator": "performed",
                                    "value": {"filters": [{"property": ["fulfillment"]}]}}]},
    {"type": "group", "children": [{"type": "condition", "trait": "purchase", "operator": "performed",
                                    "value": {"filters": "all", "within_days": [1]}}]},
    {"type": "group", "children": [{"type": "condition", "trait": ["x"], "operator": {}, "value": 1}]},
    {"type": "group", "children": [{"type": "condition", "trait": "age", "operator": "between",
                                    "value": [{"a": 1}, None]}]},
    {"type": "group", "children": [{"type": "condition", "trait": "audience", "operator": "member_of",
                                    "value": 10 ** 30}]},
    {"type": "group", "children": [{"type": "condition", "trait": "birthday_month", "operator": "in",
                                    "value": ["13"]}]},
    {"type": "group", "children": [{"type": "condition", "trait": "first_name", "operator": "contains",
                                    "value": "%_\\'\"; drop table x"}]},
    {"type": "group", "children": [{"type": "condition", "trait": "first_name", "operator": "contains",
                                    "value": "a\x00b\ud800"}]},
    {"type": "group", "children": [{"type": "condition", "trait": "custom:Pricing\x00Group",
                                    "operator": "equals", "value": "x"}]},
])
def test_builder_count_never_fails_on_a_strange_tree(marketer_client, company, shop, rules):
    response = marketer_client.post(reverse("audience_count_new"), {"rules": json.dumps(rules)})
    assert response.status_code == 200
    editor = marketer_client.post(reverse("audience_editor_new"), {"rules": json.dumps(rules)},
                                  HTTP_HX_REQUEST="true")
    assert editor.status_code == 200
    saved = marketer_client.post(reverse("audience_new"), {"rules": json.dumps(rules), "name": "Strange"})
    assert saved.status_code in (302, 400)


def test_custom_brand_trait_audience(marketer_client, company, shop):
    elsewhere = MembershipFactory(role=Role.ADMIN).company
    PersonaFactory(company=elsewhere, custom_traits={"CovaPricingGroup": "Medical"})
    medical = fields(("custom:CovaPricingGroup", "equals", "medical"))
    assert count_of(marketer_client.post(reverse("audience_count_new"), medical)) == 2

    # The picker offers the trait under Custom brand traits, and its values once chosen.
    picked = fields(("", "", None)) | {"0.0:trait": "custom:CovaPricingGroup"}
    response = marketer_client.post(reverse("audience_editor_new"), picked, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert ('<optgroup label="Custom brand traits">'
            '<option value="custom:CovaPricingGroup" selected>') in content
    assert '<option value="Medical">' in content and '<option value="Recreational">' in content

    response = marketer_client.post(reverse("audience_new"), medical | {"name": "Medical patients"})
    assert response.status_code == 302
    audience = Audience.objects.get(company=company, name="Medical patients")
    assert audience.size == 2
    assert set(AudienceMember.objects.filter(audience=audience).values_list("persona_id", flat=True)) == {
        shop["ana"].pk, shop["cy"].pk}


# --- the builder's buttons -----------------------------------------------------------------------------

def test_builder_buttons_change_the_tree(marketer_client, company, shop):
    url = reverse("audience_editor_new")
    response = marketer_client.post(url, fields() | {"action": "add_condition:0"}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert content.lstrip().startswith('<div id="rules-editor"')
    assert 'name="0.0:trait"' in content and "autofocus" in content
    assert 'id="audience-count" hx-swap-oob="innerHTML"' in content and "Condition 1: pick a trait" in content

    # A new trait brings its own operator and a fitting value.
    picked = fields(("", "", None)) | {"0.0:trait": "lifetime_spend", "0.0:value": "junk"}
    content = marketer_client.post(url, picked, HTTP_HX_REQUEST="true").content.decode()
    assert '<option value="gt" selected>greater than</option>' in content and "junk" not in content

    # A group nests a condition; removing the first condition renumbers the rest.
    two = fields(("is_member", "equals", "true"), ("sms_opt_in", "equals", "false"))
    response = marketer_client.post(url, two | {"action": "add_group:0"}, HTTP_HX_REQUEST="true")
    content = response.content.decode()
    assert 'name="0.2:type" value="group"' in content and 'name="0.2.0:trait"' in content
    response = marketer_client.post(url, two | {"action": "remove:0.0"}, HTTP_HX_REQUEST="true")
    assert 'name="0.1:trait"' not in response.content.decode() and count_of(response) == 2  # no SMS

    # The Purchase event gets filter rows; "between" takes two values.
    event = fields(("purchase", "performed", None)) | {"0.0:atleast": "1", "action": "add_filter:0.0"}
    content = marketer_client.post(url, event, HTTP_HX_REQUEST="true").content.decode()
    assert 'name="0.0:f0:prop"' in content
    between = fields(("lifetime_spend", "between", None)) | {"0.0:wasop": "gt", "0.0:value": "10"}
    content = marketer_client.post(url, between, HTTP_HX_REQUEST="true").content.decode()
    assert 'name="0.0:value" value="10"' in content and 'name="0.0:value2"' in content

    # Without JavaScript the same buttons redraw the whole page, name kept.
    response = marketer_client.post(url, fields() | {"action": "add_condition:0", "name": "Draft"})
    assert response.status_code == 200 and 'value="Draft"' in response.content.decode()


# --- saving ------------------------------------------------------------------------------------------

def test_save_runs_the_audience_and_goes_back_to_the_list(marketer_client, company, shop):
    data = fields(("is_member", "equals", "true"), ("sms_opt_in", "equals", "true"))
    response = marketer_client.post(reverse("audience_new"), data | {"name": "Texting members"}, follow=True)
    audience = Audience.objects.get(company=company, name="Texting members")
    assert audience.size == 1 and audience.calculated_at is not None
    assert audience.rules["children"][0] == {"type": "condition", "trait": "is_member", "operator": "equals",
                                             "value": True, "negate": False}
    assert response.redirect_chain[-1][0] == reverse("audience_list")
    assert "Audience “Texting members” saved: 1 customer." in response.content.decode()

    # Reopened, the builder shows what was saved; saving again changes it.
    page = marketer_client.get(reverse("audience_builder", kwargs={"audience_id": audience.pk}))
    assert count_of(page) == 1 and 'value="Texting members"' in page.content.decode()
    marketer_client.post(reverse("audience_builder", kwargs={"audience_id": audience.pk}),
                         data | {"name": "Texting members", "0:match": "any"})
    audience.refresh_from_db()
    assert audience.rules["match"] == "any" and audience.size == 3


def test_save_refuses_an_invalid_tree_with_the_message(marketer_client, company, shop):
    data = fields(("is_member", "equals", "true"), ("age", "gt", "old")) | {"name": "Oldies"}
    response = marketer_client.post(reverse("audience_new"), data)
    assert response.status_code == 400
    content = response.content.decode()
    assert 'data-testid="form-error">Condition 2: value must be a number<' in content
    assert 'value="Oldies"' in content and 'value="old"' in content  # nothing typed is lost
    assert '<div class="rule-condition has-error" data-path="0.1"' in content
    assert not Audience.objects.filter(company=company).exists()

    response = marketer_client.post(reverse("audience_new"), fields() | {"name": ""})
    assert response.status_code == 400 and response.context["form"].errors["name"]
    audience_save(company=company, name="Taken", rules={"type": "group", "children": []})
    response = marketer_client.post(reverse("audience_new"), fields() | {"name": "Taken"})
    assert response.status_code == 400 and "already an audience named" in response.content.decode()
    response = marketer_client.post(reverse("audience_new"), {"name": "X", "rules": "[oops"})
    assert response.status_code == 400 and "The rules are not valid JSON." in response.content.decode()


def test_an_audience_cannot_be_built_on_itself_or_deleted_while_used(marketer_client, company, shop):
    base = audience_save(company=company, name="Base", rules={"type": "group", "children": []})
    uses = audience_save(company=company, name="Uses base", rules={"type": "group", "children": [
        {"type": "condition", "trait": "audience", "operator": "member_of", "value": base.pk}]})
    loop = fields(("audience", "member_of", str(uses.pk))) | {"name": "Base"}
    response = marketer_client.post(reverse("audience_builder", kwargs={"audience_id": base.pk}), loop)
    assert response.status_code == 400 and "depend on itself" in response.content.decode()

    response = marketer_client.post(reverse("audience_delete", kwargs={"audience_id": base.pk}), follow=True)
    assert "Uses base uses this audience" in response.content.decode()
    assert Audience.objects.filter(pk=base.pk).exists()
    marketer_client.post(reverse("audience_delete", kwargs={"audience_id": uses.pk}))
    marketer_client.post(reverse("audience_delete", kwargs={"audience_id": base.pk}))
    assert not Audience.objects.filter(company=company).exists()


def test_recalculate_one_and_all(marketer_client, company, shop):
    spenders = audience_save(company=company, name="Spenders", rules={"type": "group", "children": [
        {"type": "condition", "trait": "lifetime_spend", "operator": "gt", "value": "50"}]})
    assert spenders.size == 0
    url = reverse("audience_refresh", kwargs={"audience_id": spenders.pk})
    response = marketer_client.post(url, follow=True)
    spenders.refresh_from_db()
    assert spenders.size == 1 and "recalculated: 1 customer" in response.content.decode()
    sale(company, shop["source"], shop["bob"], "S9", category="Edibles", total="30")
    response = marketer_client.post(reverse("audiences_refresh_all"), follow=True)
    spenders.refresh_from_db()
    assert spenders.size == 2 and "Recalculated 1 audience." in response.content.decode()


# --- export --------------------------------------------------------------------------------------------

def test_export_streams_the_members_with_their_contact_fields(marketer_client, company, other_company, shop):
    members = audience_save(company=company, name="Members & friends", rules={"type": "group", "children": [
        {"type": "condition", "trait": "is_member", "operator": "equals", "value": True}]})
    audience_refresh(audience=members)
    everyone = audience_save(company=company, name="Everyone", rules={"type": "group", "children": []})
    audience_refresh(audience=everyone)
    # A row pointing at another company's persona (it cannot happen through the services) stays out.
    stranger = PersonaFactory(company=other_company, first_name="Stranger")
    AudienceMember.objects.create(audience=members, persona=stranger, added_at=timezone.now())

    response = marketer_client.get(reverse("audience_export", kwargs={"audience_id": members.pk}))
    assert response.status_code == 200 and response.streaming
    assert response["Content-Type"].startswith("text/csv")
    assert response["Content-Disposition"] == 'attachment; filename="members-friends.csv"'
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
    assert rows[0] == ["persona_id", "first_name", "last_name", "email", "phone", "sms_opt_in",
                       "email_opt_in", "loyalty_member", "points_balance", "tier", "favourite_store",
                       "market"]
    ana, cy = (Persona.objects.get(pk=shop[name].pk) for name in ("ana", "cy"))
    assert rows[1:] == [
        [str(ana.pk), "Ana", "Alpha", "ana@example.com", "+13035550101", "yes", "yes", "yes",
         str(ana.points_balance), ana.tier, "Denver", "CO"],
        [str(cy.pk), "Cy", "Charlie", "cy@example.com", "", "no", "no", "yes", str(cy.points_balance),
         cy.tier, "", ""],
    ]


def test_export_keeps_spreadsheet_formulas_out(marketer_client, company):
    persona = PersonaFactory(company=company, first_name='=HYPERLINK("x")', last_name="-1+2",
                             phone="+13035550199")
    audience = audience_save(company=company, name="All", rules={"type": "group", "children": []})
    audience_refresh(audience=audience)
    response = marketer_client.get(reverse("audience_export", kwargs={"audience_id": audience.pk}))
    row = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))[1]
    assert row[0] == str(persona.pk)
    assert row[1:3] == ["'=HYPERLINK(\"x\")", "'-1+2"] and row[4] == "+13035550199"


# --- access --------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("method", "url_name"), [
    ("get", "audience_builder"), ("post", "audience_builder"), ("post", "audience_editor"),
    ("post", "audience_count"), ("post", "audience_facts"), ("get", "audience_export"),
    ("post", "audience_delete"), ("post", "audience_refresh"),
])
def test_another_companys_audience_is_404(marketer_client, other_company, method, url_name):
    secret = audience_save(company=other_company, name="Secret", rules={"type": "group", "children": []})
    url = reverse(url_name, kwargs={"audience_id": secret.pk})
    response = getattr(marketer_client, method)(url, fields() | {"name": "Hijack"})
    assert response.status_code == 404 and b"Secret" not in response.content
    secret.refresh_from_db()
    assert secret.name == "Secret"


@pytest.mark.parametrize(("method", "url_name", "kwargs"), [
    ("get", "audience_list", {}), ("get", "audience_new", {}), ("post", "audience_new", {}),
    ("post", "audience_count_new", {}), ("post", "audience_editor_new", {}),
    ("post", "audiences_refresh_all", {}), ("post", "audience_from_template", {"key": "all_customers"}),
    ("get", "audience_export", {"audience_id": 0}), ("post", "audience_delete", {"audience_id": 0}),
])
def test_budtenders_cannot_reach_audiences(client, login, company, budtender_user, method, url_name, kwargs):
    audience = audience_save(company=company, name="Members", rules={"type": "group", "children": []})
    if "audience_id" in kwargs:
        kwargs = {"audience_id": audience.pk}
    login(client, budtender_user)
    response = getattr(client, method)(reverse(url_name, kwargs=kwargs), fields() | {"name": "X"})
    assert response.status_code == 403
    assert Audience.objects.filter(company=company).count() == 1


def test_sidebar_shows_audiences_to_marketers_and_admins_only(client, login, company, admin_user,
                                                              marketer_user, budtender_user):
    for user, shown in ((admin_user, True), (marketer_user, True), (budtender_user, False)):
        page = login(client, user).get(reverse("persona_list")).content.decode()
        assert ('href="/audiences/"' in page) is shown
        assert (">Marketing<" in page) is shown


FILLED = {"bool": "true", "text": "Flower", "text_list": "Flower, Edibles", "choice_select": "champion",
          "choice_checks": ["champion", "loyal"], "number": "10", "number_pair": ("1", "100"), "days": "30",
          "date": "2026-01-01", "date_pair": ("2025-01-01", "2026-01-01"), "month": "3",
          "month_checks": ["1", "2"]}


def test_every_trait_and_operator_the_builder_offers_counts(marketer_client, company, shop):
    from audiences.forms import widget_for
    from audiences.traits import TRAITS, trait_get

    denver, _ = shop["stores"]
    other = audience_save(company=company, name="Other", rules={"type": "group", "children": []})
    traits = [*TRAITS.values(), trait_get("custom:CovaPricingGroup")]
    for trait in traits:
        for op in trait.operators:
            data = fields((trait.key, op, None))
            widget = widget_for(trait.type, op, trait)
            picks = {"store_checks": [str(denver.pk)], "audience": str(other.pk)}
            value = picks.get(widget, FILLED.get(widget))
            if isinstance(value, tuple):
                data |= {"0.0:value": value[0], "0.0:value2": value[1]}
            elif isinstance(value, list):
                data["0.0:values"] = value
            elif value is not None:
                data["0.0:value"] = value
            if widget == "history":
                data |= {"0.0:name": "Flower", "0.0:days": "30"}
            if widget == "event":
                data |= {"0.0:within": "30", "0.0:atleast": "2", "0.0:filter": ["0", "1", "2", "3"]}
                for i, (prop, prop_op, prop_value) in enumerate([
                        ("fulfillment", "equals", "delivery"), ("store", "in", [str(denver.pk)]),
                        ("amount", "between", ("1", "500")), ("category", "in", "Flower, Vapes")]):
                    data |= {f"0.0:f{i}:prop": prop, f"0.0:f{i}:wasprop": prop, f"0.0:f{i}:op": prop_op,
                             f"0.0:f{i}:wasop": prop_op}
                    if isinstance(prop_value, tuple):
                        data |= {f"0.0:f{i}:value": prop_value[0], f"0.0:f{i}:value2": prop_value[1]}
                    elif isinstance(prop_value, list):
                        data[f"0.0:f{i}:values"] = prop_value
                    else:
                        data[f"0.0:f{i}:value"] = prop_value
            for negate in ("", "1"):
                response = marketer_client.post(reverse("audience_count_new"), data | {"0.0:negate": negate})
                assert count_of(response) is not None, (trait.key, op, error_of(response))
            # and the editor draws it back with the same values
            content = marketer_client.post(reverse("audience_editor_new"), data).content.decode()
            assert f'<option value="{op}" selected>' in content, (trait.key, op)
