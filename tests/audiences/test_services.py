"""Audiences end to end through the services: saving, calculating, entering and leaving,
refusing bad trees where they are bad, failures recorded, the refresh after a sync."""

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
from django.conf import settings
from django.utils import timezone

from audiences.models import Audience, AudienceMember
from audiences.services import (
    AudienceRefused,
    audience_count,
    audience_refresh,
    audience_save,
    audiences_refresh_all,
    persona_facts_refresh,
)
from config.celery import app as celery_app
from integrations.services.connections import connection_create
from integrations.services.sync import sync_run_create, sync_run_execute
from loyalty.models import LineItem, Persona, Source, Transaction
from tests.factories import CompanyFactory, PersonaFactory, RetailStoreFactory

NOW = dt.datetime(2026, 3, 15, 5, 30, tzinfo=dt.UTC)  # 14 March, 23:30 in Denver


def group(*children, match="all", negate=False):
    return {"type": "group", "match": match, "negate": negate, "children": list(children)}


def cond(trait, operator, value=None, negate=False):
    return {"type": "condition", "trait": trait, "operator": operator, "value": value, "negate": negate}


DELIVERY = group(cond("purchase", "performed", {
    "filters": [{"property": "fulfillment", "operator": "contains", "value": "delivery"}],
    "within_days": None, "at_least": 1}))
MEDICAL = group(cond("custom:CovaPricingGroup", "equals", "Medical"))


@pytest.fixture
def eager(monkeypatch):
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


@pytest.fixture
def source(company):
    return Source.objects.create(company=company, kind=Source.Kind.COVA, name="Cova")


@pytest.fixture
def sell(company, store, source):
    """Record a sale for a customer: sell(persona, "delivery", total, days_ago, status)."""
    counter = iter(range(1, 10**6))

    def do(persona, fulfillment="in_store", total="40.00", days_ago=3, status="completed", category="Flower"):
        txn = Transaction.objects.create(
            company=company, store=store, persona=persona, source=source, external_id=f"S{next(counter)}",
            occurred_at=NOW - dt.timedelta(days=days_ago), fulfillment=fulfillment,
            channel="in_store" if fulfillment == "in_store" else "online", subtotal=Decimal(total),
            total=Decimal(total), status=status)
        LineItem.objects.create(transaction=txn, line_no=1, product="Blue Dream 3.5g", brand="Green Dot",
                                category=category, quantity=1, unit_price=Decimal(total),
                                total=Decimal(total))
        return txn

    return do


def member_ids(audience):
    return set(AudienceMember.objects.filter(audience=audience).values_list("persona_id", flat=True))


# --- end to end ------------------------------------------------------------------------------

def test_delivery_audience_is_saved_calculated_and_counts_its_members(company, sell):
    dana = PersonaFactory(company=company, first_name="Dana", sms_opt_in=True, email_opt_in=False)
    ari = PersonaFactory(company=company, first_name="Ari", sms_opt_in=False, email_opt_in=True)
    lee = PersonaFactory(company=company, first_name="Lee")
    sell(dana, "delivery", "60.00")
    sell(dana, "in_store", "20.00")
    sell(ari, "Delivery".lower(), "30.00", days_ago=150)
    sell(lee, "pickup", "99.00")
    sell(lee, "delivery", "10.00", status="voided")  # a voided delivery is no delivery
    audience = audience_save(company=company, name="Delivery customers", rules=DELIVERY)
    assert audience_count(company=company, rules=DELIVERY, now=NOW) == 2

    outcome = audiences_refresh_all(company=company, now=NOW)
    audience.refresh_from_db()
    assert outcome == {"calculated": 1, "failed": 0}
    assert member_ids(audience) == {dana.pk, ari.pk}
    assert (audience.size, audience.sms_opt_ins, audience.email_opt_ins) == (2, 1, 1)
    assert audience.average_cltv == Decimal("55.00")  # (80 + 30) / 2: completed sales only
    assert (audience.entered, audience.exited, audience.error) == (2, 0, "")
    assert audience.calculated_at == NOW


def test_pricing_group_audience_counts_who_entered_and_exited_on_the_next_refresh(company):
    medical = [PersonaFactory(company=company, custom_traits={"CovaPricingGroup": "Medical"})
               for _ in range(3)]
    PersonaFactory(company=company, custom_traits={"CovaPricingGroup": "medical "})  # not "Medical"
    PersonaFactory(company=company, custom_traits={"CovaPricingGroup": "Veteran"})
    PersonaFactory(company=company, custom_traits={})
    lower = PersonaFactory(company=company, custom_traits={"CovaPricingGroup": "MEDICAL"})
    audience = audience_save(company=company, name="Medical patients", rules=MEDICAL)
    audience = audience_refresh(audience=audience, now=NOW)
    assert member_ids(audience) == {p.pk for p in medical} | {lower.pk}
    assert (audience.size, audience.entered, audience.exited) == (4, 4, 0)

    # one moves to Standard, one Veteran becomes Medical, one Medical is deleted
    Persona.objects.filter(pk=medical[0].pk).update(custom_traits={"CovaPricingGroup": "Standard"})
    Persona.objects.filter(custom_traits__CovaPricingGroup="Veteran").update(
        custom_traits={"CovaPricingGroup": "Medical", "Other": "x"})
    medical[1].delete()
    audience = audience_refresh(audience=audience, now=NOW + dt.timedelta(days=1))
    assert audience.size == 3
    assert (audience.entered, audience.exited) == (1, 1)  # the deleted member left with its row
    assert medical[2].pk in member_ids(audience) and medical[0].pk not in member_ids(audience)
    # the same data again: nobody moves, and members keep the time they joined
    joined = AudienceMember.objects.get(audience=audience, persona=medical[2]).added_at
    audience = audience_refresh(audience=audience, now=NOW + dt.timedelta(days=2))
    assert (audience.size, audience.entered, audience.exited) == (3, 0, 0)
    assert AudienceMember.objects.get(audience=audience, persona=medical[2]).added_at == joined


def test_an_audience_built_on_another_is_calculated_after_it(company, sell):
    big = PersonaFactory(company=company)
    small = PersonaFactory(company=company)
    for _ in range(3):
        sell(big, total="200.00")
    sell(small, total="5.00")
    spenders = audience_save(company=company, name="Spenders",
                             rules=group(cond("lifetime_spend", "gt", "100")))
    texted = audience_save(company=company, name="Spenders to text", rules=group(
        cond("audience", "member_of", spenders.pk), cond("order_count", "equals", 3)))
    # named so that the dependent one would come first alphabetically
    Audience.objects.filter(pk=texted.pk).update(name="A spenders to text")
    assert audiences_refresh_all(company=company, now=NOW) == {"calculated": 2, "failed": 0}
    assert member_ids(spenders) == {big.pk} and member_ids(texted) == {big.pk}


def test_facts_are_computed_in_the_companys_time_zone(company, sell):
    night_owl = PersonaFactory(company=company)
    # 13 March 23:50 in Denver = 14 March 05:50 UTC: yesterday locally, one day since
    txn = sell(night_owl)
    Transaction.objects.filter(pk=txn.pk).update(occurred_at=dt.datetime(2026, 3, 14, 5, 50, tzinfo=dt.UTC))
    persona_facts_refresh(company=company, now=NOW)
    rules = group(cond("days_since_last_purchase", "equals", 1))
    assert audience_count(company=company, rules=rules, now=NOW) == 1
    on_the_day = group(cond("last_purchase_at", "between", ["2026-03-13", "2026-03-13"]))
    assert audience_count(company=company, rules=on_the_day, now=NOW) == 1


# --- refusals ----------------------------------------------------------------------------------

def refused_path(company, rules, audience=None):
    with pytest.raises(AudienceRefused) as caught:
        audience_save(company=company, name="Bad", rules=rules, audience=audience)
    assert caught.value.code == "invalid_rules"
    return caught.value.extra["path"], caught.value.message


def test_unknown_trait_is_refused_at_its_path(company):
    path, message = refused_path(company, group(cond("sms_opt_in", "equals", True),
                                                group(cond("shoe_size", "equals", "9"))))
    assert path == "children[1].children[0].trait" and "shoe_size" in message


def test_operator_that_does_not_fit_the_trait_is_refused(company):
    assert refused_path(company, group(cond("sms_opt_in", "contains", "y")))[0] == "children[0].operator"
    assert refused_path(company, group(cond("lifetime_spend", "starts_with", "1")))[0] == \
        "children[0].operator"


@pytest.mark.parametrize("condition, path", [
    (cond("sms_opt_in", "equals", "yes"), "children[0].value"),
    (cond("lifetime_spend", "gt", "lots"), "children[0].value"),
    (cond("lifetime_spend", "between", ["100", "10"]), "children[0].value"),
    (cond("created_at", "before", "2026-02-30"), "children[0].value"),
    (cond("created_at", "within_days", -1), "children[0].value"),
    (cond("birthday_month", "in", [3, 13]), "children[0].value[1]"),
    (cond("market", "in", []), "children[0].value"),
    (cond("first_name", "equals", "   "), "children[0].value"),
    (cond("bought_category", "within_days", {"name": "Flower"}), "children[0].value.days"),
    (cond("purchase", "performed", {"filters": [{"property": "colour", "operator": "equals", "value": "x"}]}),
     "children[0].value.filters[0].property"),
    (cond("purchase", "performed", {"filters": [], "at_least": 0}), "children[0].value.at_least"),
])
def test_bad_values_are_refused_at_their_path(company, condition, path):
    assert refused_path(company, group(condition))[0] == path


def test_a_tree_too_deep_is_refused_at_the_group_too_deep(company):
    tree = cond("sms_opt_in", "equals", True)
    for _ in range(7):
        tree = group(tree)
    path, message = refused_path(company, tree)
    assert path == ".".join(["children[0]"] * 6) and "deep" in message


def test_another_companys_store_or_audience_is_refused(company, other_company):
    foreign_store = RetailStoreFactory(company=other_company)
    foreign_audience = Audience.objects.create(company=other_company, name="Theirs", rules={})
    for condition in (cond("favourite_store", "in", [foreign_store.pk]),
                      cond("audience", "member_of", foreign_audience.pk)):
        assert refused_path(company, group(condition))[0] == "children[0].value"


def test_a_cycle_between_two_audiences_is_refused(company):
    first = audience_save(company=company, name="First", rules=group(cond("sms_opt_in", "equals", True)))
    second = audience_save(company=company, name="Second",
                           rules=group(cond("audience", "member_of", first.pk)))
    path, message = refused_path(company, group(cond("is_member", "equals", True),
                                                cond("audience", "not_member_of", second.pk)), audience=first)
    assert path == "children[1].value" and "itself" in message
    assert refused_path(company, group(cond("audience", "member_of", first.pk)), audience=first)[0] == \
        "children[0].value"
    first.refresh_from_db()
    assert first.rules["children"][0]["trait"] == "sms_opt_in"  # unchanged


@pytest.mark.parametrize("condition", [
    cond("created_at", "after", "9999-12-31"),
    cond("last_purchase_at", "between", ["2026-01-01", "9999-12-31"]),
    cond("lifetime_spend", "gt", "1e-999999"),
    cond("points_balance", "equals", "0E-100000"),
])
def test_values_at_the_edges_are_refused_rather_than_failing(company, condition):
    with pytest.raises(AudienceRefused) as caught:
        audience_count(company=company, rules=group(condition), now=NOW)
    assert caught.value.extra["path"].startswith("children[0].value")


# --- failures ----------------------------------------------------------------------------------

def test_a_failing_audience_records_its_error_and_the_others_are_still_calculated(company):
    PersonaFactory(company=company, sms_opt_in=True)
    good = audience_save(company=company, name="Texting", rules=group(cond("sms_opt_in", "equals", True)))
    broken = audience_save(company=company, name="Broken", rules=group(cond("sms_opt_in", "equals", True)))
    # rules saved by an older version, no longer valid
    Audience.objects.filter(pk=broken.pk).update(rules=group(cond("retired_trait", "equals", True)))
    later = audience_save(company=company, name="Zed", rules=group(cond("sms_opt_in", "equals", False)))
    assert audiences_refresh_all(company=company, now=NOW) == {"calculated": 2, "failed": 1}
    broken.refresh_from_db()
    good.refresh_from_db()
    later.refresh_from_db()
    assert "retired_trait" in broken.error and broken.calculated_at == NOW
    assert (good.size, good.error, later.size, later.error) == (1, "", 0, "")


# --- tasks and the sync signal -------------------------------------------------------------------

def test_a_sync_refreshes_the_companys_audiences_once_committed(company, store, reports_root, eager,
                                                                 django_capture_on_commit_callbacks):
    PersonaFactory(company=company, sms_opt_in=True)
    audience = audience_save(company=company, name="Texting", rules=group(cond("sms_opt_in", "equals", True)))
    other = audience_save(company=CompanyFactory(), name="Other", rules=group())
    (reports_root / company.slug).mkdir()
    connection = connection_create(company=company, name="Reports", provider="folder",
                                   settings={"path": ""}, credentials={})
    run = sync_run_create(connection=connection, trigger="manual")
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        sync_run_execute(run_id=run.pk)
    audience.refresh_from_db()
    assert audience.calculated_at is None  # nothing before the commit
    with django_capture_on_commit_callbacks(execute=True):
        for callback in callbacks:
            callback()
    audience.refresh_from_db()
    other.refresh_from_db()
    assert audience.calculated_at is not None and audience.size == 1
    assert other.calculated_at is None  # only the synced company


def test_nightly_task_queues_one_refresh_per_company(company, other_company):
    from audiences import tasks

    with mock.patch.object(tasks.audiences_refresh, "delay") as delay:
        assert tasks.audiences_refresh_all_companies() >= 2
    queued = {call.args[0] for call in delay.call_args_list}
    assert {company.pk, other_company.pk} <= queued
    schedule = settings.CELERY_BEAT_SCHEDULE["refresh-audiences"]
    assert schedule == {"task": "audiences.tasks.audiences_refresh_all_companies", "schedule": 24 * 3600.0}


def test_refresh_task_calculates_and_ignores_a_deleted_company(company):
    from audiences.tasks import audiences_refresh

    PersonaFactory(company=company, sms_opt_in=True)
    audience = audience_save(company=company, name="Texting", rules=group(cond("sms_opt_in", "equals", True)))
    assert audiences_refresh(company.pk) == {"calculated": 1, "failed": 0}
    audience.refresh_from_db()
    assert audience.size == 1 and audience.calculated_at <= timezone.now()
    assert audiences_refresh(10**9) is None
