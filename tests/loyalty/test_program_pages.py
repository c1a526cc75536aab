"""Settings pages of the loyalty engine (program and tiers, offers, POS prompts, API keys),
their services, and the persona card's tier, wallet and redemptions."""

import re
import time
from datetime import date, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.http import Http404
from django.urls import reverse
from django.utils import timezone

from loyalty.models import LoyaltyProgram, Offer, Persona, Prompt, Redemption, Tier, WalletItem
from loyalty.services import TransactionData, points_adjust, source_get_or_create, transaction_record
from loyalty.services.offers import offer_create, wallet_grant
from loyalty.services.program import (
    loyalty_program_update,
    tier_create,
    tier_delete,
    tier_progress,
    tiers_recompute,
)
from loyalty.services.prompts import prompt_create, prompt_fired_counts_flush, prompts_firing
from stores.errors import DomainError
from stores.models import ApiKey
from stores.services import api_key_authenticate, api_key_create, api_key_revoke
from tests.factories import (
    MembershipFactory,
    OfferFactory,
    PersonaFactory,
    PromptFactory,
    RetailStoreFactory,
    TierFactory,
)

HTMX = {"HTTP_HX_REQUEST": "true"}

SETTINGS_PAGES = ["loyalty_program", "offer_list", "offer_create", "prompt_list", "prompt_create",
                  "api_key_list"]


def give_points(persona, points, user):
    points_adjust(company=persona.company, persona_id=persona.pk, delta=points, staff_user=user,
                  reason="test")


def sale(company, persona, total, *, days_ago=0, external_id=None, status="completed"):
    source = source_get_or_create(company=company, kind="pos_api")
    amount = Decimal(total)
    txn, _ = transaction_record(company=company, source=source, data=TransactionData(
        external_id=external_id or f"R-{persona.pk}-{days_ago}-{total}",
        occurred_at=timezone.now() - timedelta(days=days_ago), persona_id=persona.pk,
        subtotal=amount, total=amount, status=status))
    return txn


# --- roles and tenancy -----------------------------------------------------------------------

@pytest.mark.parametrize("name", SETTINGS_PAGES)
def test_settings_pages_admin_only(client, login, admin_user, marketer_user, budtender_user, name):
    # given each role / when it opens the page / then only an admin gets it
    assert login(client, admin_user).get(reverse(name)).status_code == 200
    for user in (marketer_user, budtender_user):
        assert login(client, user).get(reverse(name)).status_code == 403


def test_settings_writes_admin_only(client, login, company, budtender_user, marketer_user):
    tier = TierFactory(company=company)
    offer = OfferFactory(company=company)
    persona = PersonaFactory(company=company)
    for user in (marketer_user, budtender_user):
        login(client, user)
        assert client.post(reverse("tier_delete", args=[tier.pk])).status_code == 403
        assert client.post(reverse("offer_active", args=[offer.pk]), {"is_active": "0"}).status_code == 403
        assert client.post(reverse("persona_wallet_grant", args=[persona.pk]),
                           {"offer": offer.pk}).status_code == 403
    assert Tier.objects.filter(pk=tier.pk).exists() and Offer.objects.get(pk=offer.pk).is_active
    assert not WalletItem.objects.exists()


def test_nav_shows_loyalty_settings_to_admins_only(client, login, admin_user, budtender_user):
    page = login(client, admin_user).get(reverse("persona_list")).content.decode()
    for label in ("Loyalty program", "Offers", "POS prompts", "API keys"):
        assert label in page
    page = login(client, budtender_user).get(reverse("persona_list")).content.decode()
    assert "POS prompts" not in page and "API keys" not in page


def test_another_companys_rows_are_404(admin_client, company, other_company):
    # given rows of another company
    tier = TierFactory(company=other_company)
    offer = OfferFactory(company=other_company)
    prompt = PromptFactory(company=other_company)
    persona = PersonaFactory(company=other_company)
    key, _ = api_key_create(company=other_company, name="Their POS", level=1)
    # when the admin of `company` reaches for them / then each is not found, and untouched
    assert admin_client.get(reverse("tier_edit", args=[tier.pk])).status_code == 404
    assert admin_client.post(reverse("tier_edit", args=[tier.pk]), {"edit-name": "X"}).status_code == 404
    assert admin_client.post(reverse("tier_delete", args=[tier.pk])).status_code == 404
    assert admin_client.get(reverse("offer_edit", args=[offer.pk])).status_code == 404
    assert admin_client.post(reverse("offer_active", args=[offer.pk]), {"is_active": "0"}).status_code == 404
    assert admin_client.get(reverse("prompt_edit", args=[prompt.pk])).status_code == 404
    assert admin_client.post(reverse("prompt_delete", args=[prompt.pk])).status_code == 404
    assert admin_client.post(reverse("api_key_revoke", args=[key.pk])).status_code == 404
    assert admin_client.post(reverse("persona_wallet_grant", args=[persona.pk]),
                             {"offer": offer.pk}).status_code == 404
    assert Tier.objects.filter(pk=tier.pk).exists() and Prompt.objects.filter(pk=prompt.pk).exists()
    assert Offer.objects.get(pk=offer.pk).is_active
    key.refresh_from_db()
    assert key.revoked_at is None


# --- program ---------------------------------------------------------------------------------

def test_loyalty_program_update_validates_ranges(company):
    for fields, field in [({"lock_ttl_minutes": 0}, "lock_ttl_minutes"),
                          ({"lock_ttl_minutes": 2000}, "lock_ttl_minutes"),
                          ({"points_per_unit": Decimal("-1")}, "points_per_unit"),
                          ({"points_per_unit": "lots"}, "points_per_unit"),
                          ({"expiry_months": 0}, "expiry_months"),
                          ({"signup_bonus": -5}, "signup_bonus"),
                          ({"earn_on": "whenever"}, "earn_on"),
                          ({"refund_policy": "maybe"}, "refund_policy")]:
        with pytest.raises(DomainError) as exc:
            loyalty_program_update(company=company, **fields)
        assert exc.value.extra["field"] == field
    program = loyalty_program_update(company=company, lock_ttl_minutes=30, expiry_months=None,
                                     points_per_unit="2.5", refund_policy="reverse")
    assert (program.lock_ttl_minutes, program.points_per_unit, program.refund_policy) == (
        30, Decimal("2.5"), "reverse")


def program_post(**overrides):
    data = {"points_per_unit": "1", "earn_on": "pre_tax", "members_only": "on", "rounding": "down",
            "discount_applies": "before_tax", "lock_ttl_minutes": "15", "refund_policy": "keep",
            "signup_bonus": "0", "expiry_months": "", "budtender_adjustment_limit": "500",
            "budtenders_see_queue": "on"}
    return data | overrides


def test_loyalty_program_page_saves_and_shows_errors(admin_client, company):
    url = reverse("loyalty_program")
    # when the form has an out-of-range value / then the page says which field
    response = admin_client.post(url, program_post(lock_ttl_minutes="0"))
    assert response.status_code == 400
    assert "lock_ttl_minutes" in response.context["form"].errors
    response = admin_client.post(url, program_post(points_per_unit="5000"), **HTMX)
    assert response.status_code == 200 and "program-form" in response.content.decode()
    assert response.context["form"].errors["points_per_unit"]
    # when it is valid / then it is saved
    response = admin_client.post(url, program_post(points_per_unit="3", signup_bonus="50",
                                                   expiry_months="18", budtenders_see_queue=""))
    assert response.status_code == 302
    program = LoyaltyProgram.objects.get(company=company)
    assert (program.points_per_unit, program.signup_bonus, program.expiry_months,
            program.budtenders_see_queue) == (Decimal("3"), 50, 18, False)
    response = admin_client.post(url, program_post(lock_ttl_minutes="20"), **HTMX)
    assert "Loyalty program saved" in response.content.decode()


# --- tiers -----------------------------------------------------------------------------------

def test_tiers_recompute_by_lifetime_points(company, admin_user):
    # given personas with 0, 150 and 900 lifetime points
    none, some, many = (PersonaFactory(company=company) for _ in range(3))
    give_points(some, 150, admin_user)
    give_points(many, 900, admin_user)
    other = PersonaFactory()
    give_points(other, 900, MembershipFactory(company=other.company).user)
    # when tiers are created (each recomputes)
    tier_create(company=company, name="Silver", threshold=100, earn_multiplier=Decimal("1.25"))
    tier_create(company=company, name="Gold", threshold=500, earn_multiplier=Decimal("1.5"))
    # then each persona is in the highest tier they reach; other companies are untouched
    ids = [none.pk, some.pk, many.pk, other.pk]
    tiers = dict(Persona.objects.filter(pk__in=ids).values_list("pk", "tier"))
    assert tiers == {none.pk: "", some.pk: "Silver", many.pk: "Gold", other.pk: ""}
    # and progress says what is missing
    current, upcoming, to_next = tier_progress(Persona.objects.get(pk=some.pk))
    assert (current.name, upcoming.name, to_next) == ("Silver", "Gold", 350)
    current, upcoming, to_next = tier_progress(Persona.objects.get(pk=many.pk))
    assert (current.name, upcoming, to_next) == ("Gold", None, None)
    # when the points drop below a threshold and only that persona is recomputed
    give_points(many, -900, admin_user)
    assert tiers_recompute(company=company, persona_ids=[many.pk]) == 1
    assert Persona.objects.get(pk=many.pk).tier == ""
    assert Persona.objects.get(pk=some.pk).tier == "Silver"


def test_tiers_recompute_by_12_month_spend(company):
    # given spend in the last 12 months, spend older than that, and a voided sale
    recent, old, voided = (PersonaFactory(company=company) for _ in range(3))
    sale(company, recent, "300.00", days_ago=10)
    sale(company, recent, "250.00", days_ago=200)
    sale(company, old, "900.00", days_ago=400)
    sale(company, voided, "900.00", days_ago=5, status="voided")
    # when a spend tier exists
    tier_create(company=company, name="VIP", threshold_kind=Tier.Threshold.SPEND_12M, threshold=500)
    # then only the completed spend of the last 365 days counts
    tiers = dict(Persona.objects.filter(company=company).values_list("pk", "tier"))
    assert tiers == {recent.pk: "VIP", old.pk: "", voided.pk: ""}
    current, upcoming, to_next = tier_progress(Persona.objects.get(pk=old.pk))
    assert (current, upcoming.name, to_next) == (None, "VIP", Decimal("500.00"))


def test_tier_validation_and_delete_rules(company, other_company):
    tier_create(company=company, name="Silver", threshold=100)
    for kwargs, field in [({"name": " "}, "name"), ({"name": "silver"}, "name"),
                          ({"name": "Gold", "threshold": 100}, "threshold"),
                          ({"name": "Gold", "threshold": -1}, "threshold"),
                          ({"name": "Gold", "threshold": "10.5"}, "threshold"),
                          ({"name": "Gold", "earn_multiplier": 500}, "earn_multiplier")]:
        kwargs = {"threshold": 200} | kwargs
        with pytest.raises(DomainError) as exc:
            tier_create(company=company, **kwargs)
        assert exc.value.extra["field"] == field
    # the same name in another company is fine
    tier_create(company=other_company, name="Silver", threshold=100)
    # a tier an offer is limited to cannot go: the offer would open to everyone
    tier = Tier.objects.get(company=company, name="Silver")
    offer_create(company=company, name="Silver treat", kind="flat", amount=5, tiers=[tier])
    with pytest.raises(DomainError, match="Silver treat"):
        tier_delete(tier=tier)


def test_tiers_inline_add_edit_delete_over_htmx(admin_client, company, admin_user):
    persona = PersonaFactory(company=company)
    give_points(persona, 250, admin_user)
    # add
    response = admin_client.post(reverse("tier_create"), {
        "tier-name": "Silver", "tier-threshold_kind": "lifetime_points", "tier-threshold": "200",
        "tier-earn_multiplier": "1.2"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    assert 'id="tiers"' in html and "Silver" in html and "<html" not in html
    tier = Tier.objects.get(company=company)
    assert Persona.objects.get(pk=persona.pk).tier == "Silver"
    # an invalid add comes back as the table with the error
    response = admin_client.post(reverse("tier_create"), {
        "tier-name": "Gold", "tier-threshold_kind": "lifetime_points", "tier-threshold": "200",
        "tier-earn_multiplier": "1.5"}, **HTMX)
    assert "Another tier already starts at this threshold" in response.content.decode()
    # edit: the row turns into inputs, then saves
    response = admin_client.get(reverse("tier_edit", args=[tier.pk]), **HTMX)
    assert f'form="tier-edit-{tier.pk}"' in response.content.decode()
    response = admin_client.post(reverse("tier_edit", args=[tier.pk]), {
        "edit-name": "Bronze", "edit-threshold_kind": "lifetime_points", "edit-threshold": "300",
        "edit-earn_multiplier": "1"}, **HTMX)
    assert "Bronze" in response.content.decode()
    assert Persona.objects.get(pk=persona.pk).tier == ""  # 250 < 300
    # delete
    response = admin_client.post(reverse("tier_delete", args=[tier.pk]), **HTMX)
    assert response.status_code == 200 and not Tier.objects.exists()
    # without htmx the page still works, with a redirect
    response = admin_client.post(reverse("tier_create"), {
        "tier-name": "Gold", "tier-threshold_kind": "spend_12m", "tier-threshold": "1000",
        "tier-earn_multiplier": "2"})
    assert response.status_code == 302 and Tier.objects.filter(name="Gold").exists()


# --- offers ----------------------------------------------------------------------------------

def offer_post(**overrides):
    data = {"name": "Five off", "kind": "flat", "amount": "5", "points_cost": "100", "applies": "",
            "starts_at": "", "ends_at": "", "min_subtotal": "0", "categories": "", "brands": "",
            "limit_per_persona": "", "is_active": "on"}
    return data | overrides


def test_offer_form_validation(admin_client, company, other_company):
    url = reverse("offer_create")
    foreign_store = RetailStoreFactory(company=other_company)
    foreign_tier = TierFactory(company=other_company)
    cases = [
        (offer_post(kind="percent", amount="120"), "amount", "at most 100"),
        (offer_post(amount="0"), "amount", "more than zero"),
        (offer_post(starts_at="2030-05-02T10:00", ends_at="2030-05-01T10:00"), "ends_at", "end after"),
        (offer_post(stores=[str(foreign_store.pk)]), "stores", "valid choice"),
        (offer_post(tiers=[str(foreign_tier.pk)]), "tiers", "valid choice"),
        (offer_post(limit_per_persona="0"), "limit_per_persona", ""),
    ]
    for data, field, text in cases:
        response = admin_client.post(url, data)
        assert response.status_code == 400, data
        errors = " ".join(response.context["form"].errors[field])
        assert text in errors, (field, errors)
    OfferFactory(company=company, name="Five off")
    response = admin_client.post(url, offer_post(name="five OFF"), **HTMX)
    assert response.status_code == 200
    assert "Another offer already has this name" in response.content.decode()
    assert Offer.objects.filter(company=company).count() == 1


def test_offer_services_refuse_another_companys_store_and_tier(company, other_company):
    with pytest.raises(DomainError) as exc:
        offer_create(company=company, name="X", kind="flat", amount=5,
                     stores=[RetailStoreFactory(company=other_company)])
    assert exc.value.extra["field"] == "stores"
    with pytest.raises(DomainError) as exc:
        offer_create(company=company, name="X", kind="flat", amount=5,
                     tiers=[TierFactory(company=other_company).pk])
    assert exc.value.extra["field"] == "tiers"
    assert not Offer.objects.filter(company=company).exists()


def test_offer_create_and_edit_pages(admin_client, company, store):
    tier = TierFactory(company=company, name="Gold")
    response = admin_client.post(reverse("offer_create"), offer_post(
        name="Ten percent", kind="percent", amount="10", categories="Flower, edibles ,flower,",
        brands="Wana", stores=[str(store.pk)], tiers=[str(tier.pk)], limit_per_persona="2",
        starts_at="2030-01-01T09:00", min_subtotal="25"), **HTMX)
    assert response["HX-Redirect"] == reverse("offer_list")
    offer = Offer.objects.get(company=company)
    assert offer.categories == ["Flower", "edibles"] and offer.brands == ["Wana"]
    assert list(offer.stores.all()) == [store] and list(offer.tiers.all()) == [tier]
    # read in the company's time zone (Denver, UTC-7 in January)
    assert timezone.localtime(offer.starts_at, timezone.get_fixed_timezone(-420)).hour == 9
    # the edit form shows it back, comma-separated
    page = admin_client.get(reverse("offer_edit", args=[offer.pk])).content.decode()
    assert 'value="Flower, edibles"' in page
    response = admin_client.post(reverse("offer_edit", args=[offer.pk]), offer_post(
        name="Ten percent", kind="percent", amount="15"))
    assert response.status_code == 302
    offer.refresh_from_db()
    assert offer.amount == Decimal("15") and not offer.stores.exists() and offer.categories == []


def test_offer_list_toggles_active_over_htmx(admin_client, company):
    offer = OfferFactory(company=company, name="Five off")
    page = admin_client.get(reverse("offer_list")).content.decode()
    assert "Five off" in page
    response = admin_client.post(reverse("offer_active", args=[offer.pk]), {"is_active": "0"}, **HTMX)
    html = response.content.decode()
    assert html.strip().startswith(f'<tr id="offer-{offer.pk}"') and 'aria-checked="false"' in html
    assert not Offer.objects.get(pk=offer.pk).is_active
    response = admin_client.post(reverse("offer_active", args=[offer.pk]), {"is_active": "1"})
    assert response.status_code == 302 and Offer.objects.get(pk=offer.pk).is_active


# --- API keys --------------------------------------------------------------------------------

def test_api_key_is_shown_once_then_only_its_prefix(admin_client, company):
    url = reverse("api_key_list")
    # when a key is created / then the response shows it, once, uncached
    response = admin_client.post(url, {"name": "Cova Denver", "level": "1"}, **HTMX)
    assert response.status_code == 200
    html = response.content.decode()
    raw = re.search(r'id="new-key" type="text" readonly value="(lk_[^"]+)"', html).group(1)
    key = ApiKey.objects.get(company=company)
    assert raw in html and "shown only this once" in html and response["Cache-Control"] == "no-store"
    assert key.key_hash != raw and raw not in key.key_hash
    # then the list shows the prefix only
    page = admin_client.get(url).content.decode()
    assert raw not in page and f"{key.prefix}…" in page and "Cova Denver" in page
    # and the key works until it is revoked
    assert api_key_authenticate(account_uid=company.account_uid, raw_key=raw) == key
    response = admin_client.post(reverse("api_key_revoke", args=[key.pk]), **HTMX)
    assert "Revoked" in response.content.decode() and raw not in response.content.decode()
    key.refresh_from_db()
    assert key.revoked_at is not None
    assert api_key_authenticate(account_uid=company.account_uid, raw_key=raw) is None


def test_api_key_form_errors_and_authentication_rules(admin_client, company, other_company):
    response = admin_client.post(reverse("api_key_list"), {"name": " ", "level": "7"})
    assert response.status_code == 400
    assert set(response.context["form"].errors) == {"name", "level"}
    assert not ApiKey.objects.exists()
    key, raw = api_key_create(company=company, name="Register 1", level=0)
    assert api_key_authenticate(account_uid=company.account_uid, raw_key=raw) == key
    assert api_key_authenticate(account_uid=other_company.account_uid, raw_key=raw) is None
    assert api_key_authenticate(account_uid="", raw_key=raw) is None
    assert api_key_authenticate(account_uid=company.account_uid, raw_key=raw + "x") is None
    api_key_revoke(api_key=key)
    assert api_key_authenticate(account_uid=company.account_uid, raw_key=raw) is None


# --- POS prompts -----------------------------------------------------------------------------

def item(**kw):
    return {"sku": "", "product": "Thing", "brand": "", "category": "", "quantity": Decimal("1"),
            "unit_price": Decimal("10")} | kw


def fired(company, persona, basket):
    return sorted(p.name for p in prompts_firing(company=company, persona=persona, basket=basket))


def test_prompts_firing_for_each_condition(company, admin_user):
    today = timezone.localtime(timezone.now(), ZoneInfo(company.timezone)).date()
    tier_create(company=company, name="Gold", threshold=100)
    for name, condition, value in [
        ("category", "category", "flower"), ("brand", "brand", "WANA"), ("sku", "sku", "tv-55"),
        ("price", "item_price_over", "500"), ("total", "basket_total_over", "100"),
        ("not enrolled", "not_enrolled", ""), ("no email", "missing_email", ""),
        ("no phone", "missing_phone", ""), ("no birthday", "missing_birthday", ""),
        ("birthday", "birthday_this_month", ""), ("gold", "tier", "gold"),
    ]:
        prompt_create(company=company, name=name, condition=condition, value=value, message=f"Say {name}")
    prompt_create(company=company, name="off", condition="category", value="Flower", message="x",
                  is_active=False)
    # basket conditions, case-insensitive, with thresholds inclusive
    assert fired(company, None, [item(category="Flower")]) == ["category"]
    assert fired(company, None, [item(brand="wana ")]) == ["brand"]
    assert fired(company, None, [item(sku="TV-55")]) == ["sku"]
    assert fired(company, None, [item(unit_price=Decimal("499.99"))]) == ["total"]
    assert fired(company, None, [item(unit_price=Decimal("500"))]) == ["price", "total"]
    assert fired(company, None, [item(quantity=Decimal("4"), unit_price=Decimal("25"))]) == ["total"]
    assert fired(company, None, []) == []
    # persona conditions only with a persona
    bare = PersonaFactory(company=company, is_member=False, enrolled_at=None, email="", phone="",
                          birth_date=None)
    assert fired(company, bare, []) == ["no birthday", "no email", "no phone", "not enrolled"]
    born = PersonaFactory(company=company, birth_date=date(1990, today.month, 1))
    give_points(born, 150, admin_user)
    tiers_recompute(company=company, persona_ids=[born.pk])
    born.refresh_from_db()
    assert fired(company, born, [item(category="flower")]) == ["birthday", "category", "gold"]
    # each firing is counted
    prompt_fired_counts_flush(company=company)
    counts = dict(Prompt.objects.filter(company=company).values_list("name", "times_fired"))
    assert counts["category"] == 2 and counts["total"] == 3 and counts["not enrolled"] == 1
    assert counts["off"] == 0 and counts["gold"] == 1


def test_firings_reach_the_shared_count_within_a_second_and_survive_a_redis_outage(company, monkeypatch):
    from django.core.cache import cache

    from loyalty.services import prompts as prompt_services

    prompt = prompt_create(company=company, name="flower", condition="category", value="Flower", message="x")
    key = prompt_services._fired_key(prompt.pk)
    prompt_services._firings_send()  # nothing left over from earlier tests, no timer running
    cache.delete(key)  # nor from an earlier run whose prompt had this id
    fired(company, None, [item(category="Flower")])
    fired(company, None, [item(category="Flower")])
    assert cache.get(key) is None  # counted in the process, not a Redis call per lookup
    deadline = time.monotonic() + 5
    while cache.get(key) is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert cache.get(key) == 2  # the timer sent both, with no lookup after them

    # Redis away: the counts go straight to the database, none left in the process
    def redis_down():
        raise ConnectionError("down")

    from stores import redis_guard

    monkeypatch.setattr(redis_guard, "_down_until", 0.0)  # undone below: Redis tried again at once
    monkeypatch.setattr(prompt_services, "redis_client", redis_down)
    fired(company, None, [item(category="Flower")])
    prompt_services._firings_send()
    assert not prompt_services._firings_pending
    prompt.refresh_from_db()
    assert prompt.times_fired == 1 and not redis_guard.redis_up()
    monkeypatch.undo()
    prompt_fired_counts_flush(company=company)
    prompt.refresh_from_db()
    assert prompt.times_fired == 3 and cache.get(key) == 0


def test_prompt_validation(company):
    for kwargs, field in [({"condition": "category", "value": ""}, "value"),
                          ({"condition": "item_price_over", "value": "lots"}, "value"),
                          ({"condition": "tier", "value": "Platinum"}, "value"),
                          ({"condition": "sku", "value": "A1", "message": " "}, "message"),
                          ({"condition": "weather", "value": "x"}, "condition")]:
        with pytest.raises(DomainError) as exc:
            prompt_create(company=company, name="P", **({"message": "m"} | kwargs))
        assert exc.value.extra["field"] == field
    prompt = prompt_create(company=company, name="P", condition="missing_email", value="ignored", message="m")
    assert prompt.value == ""
    assert prompt_create(company=company, name="Q", condition="basket_total_over", value="$1,000",
                         message="m").value == "1000.00"


def test_prompt_pages(admin_client, company):
    response = admin_client.post(reverse("prompt_create"), {
        "name": "TV warranty", "condition": "item_price_over", "value": "500",
        "message": "Offer the 2-year warranty", "suggested_sku": "WAR-2Y", "is_active": "on"})
    assert response.status_code == 302
    prompt = Prompt.objects.get(company=company)
    prompts_firing(company=company, persona=None, basket=[item(unit_price=Decimal("899"))])
    page = admin_client.get(reverse("prompt_list")).content.decode()
    assert "TV warranty" in page and "WAR-2Y" in page and 'data-testid="times-fired">1<' in page
    response = admin_client.post(reverse("prompt_create"), {"name": "Scale", "condition": "sku",
                                                            "value": "", "message": "m"}, **HTMX)
    assert "Enter the SKU" in response.content.decode()
    response = admin_client.post(reverse("prompt_create"), {"name": "tv WARRANTY", "condition": "sku",
                                                            "value": "A1", "message": "m"})
    assert response.status_code == 400 and "already has this name" in response.content.decode()
    response = admin_client.post(reverse("prompt_edit", args=[prompt.pk]), {
        "name": "TV warranty", "condition": "item_price_over", "value": "600", "message": "Offer it"})
    assert response.status_code == 302
    prompt.refresh_from_db()
    assert (prompt.value, prompt.is_active, prompt.times_fired) == ("600.00", False, 1)
    response = admin_client.post(reverse("prompt_delete", args=[prompt.pk]), **HTMX)
    assert response.status_code == 200 and response.content == b""
    assert not Prompt.objects.exists()


# --- persona card ----------------------------------------------------------------------------

def test_persona_card_shows_tier_wallet_and_redemptions(admin_client, company, admin_user, store):
    # given a persona in Silver, 100 points short of Gold, with a wallet and redemptions
    persona = PersonaFactory(company=company)
    give_points(persona, 400, admin_user)
    tier_create(company=company, name="Silver", threshold=300)
    tier_create(company=company, name="Gold", threshold=500, earn_multiplier=2)
    offer = OfferFactory(company=company, name="Five off")
    bought = WalletItem.objects.create(company=company, persona=persona, offer=offer, points_paid=100)
    wallet_grant(company=company, persona_id=persona.pk, offer_id=offer.pk, staff_user=admin_user)
    Redemption.objects.create(company=company, persona=persona, offer=offer, wallet_item=bought, store=store,
                              cart_id="CART-1", state="locked", points=0, discount_amount=Decimal("5"),
                              locked_until=timezone.now() + timedelta(minutes=15))
    Redemption.objects.create(company=company, persona=persona, offer=offer, cart_id="CART-0",
                              state="reinstated", points=100, discount_amount=Decimal("5"))
    # when the card is opened
    response = admin_client.get(reverse("persona_detail", args=[persona.pk]))
    html = response.content.decode()
    # then it shows all three
    assert 'data-testid="tier">Silver<' in html
    assert "100 points</strong> to Gold" in html
    assert "Granted by " + admin_user.username in html and "100 points" in html
    assert "CART-1" in html and "Locked" in html and "Reinstated" in html
    assert "Grant offer" in html


def test_persona_card_grant_offer(client, login, company, admin_user, budtender_user, other_company):
    persona = PersonaFactory(company=company)
    offer = OfferFactory(company=company, name="Birthday gift", limit_per_persona=1, points_cost=0)
    OfferFactory(company=company, name="Old", is_active=False)
    foreign = OfferFactory(company=other_company)
    url = reverse("persona_wallet_grant", args=[persona.pk])
    # budtenders see the wallet but cannot grant
    page = login(client, budtender_user).get(reverse("persona_detail", args=[persona.pk])).content.decode()
    assert 'data-testid="wallet"' in page and "Grant offer" not in page
    login(client, admin_user)
    page = client.get(reverse("persona_detail", args=[persona.pk])).content.decode()
    assert "Birthday gift" in page and ">Old<" not in page
    # another company's offer is not a choice
    response = client.post(url, {"offer": foreign.pk}, **HTMX)
    assert "valid choice" in response.content.decode()
    # a grant goes in the wallet, free
    response = client.post(url, {"offer": offer.pk}, **HTMX)
    assert "is in" in response.content.decode()
    item = WalletItem.objects.get(persona=persona)
    assert (item.offer, item.points_paid, item.granted_by, item.state) == (offer, 0, admin_user, "available")
    # the limit per persona holds
    response = client.post(url, {"offer": offer.pk})
    assert response.status_code == 400 and "the limit is 1" in response.content.decode()
    with pytest.raises(Http404):
        wallet_grant(company=company, persona_id=persona.pk, offer_id=foreign.pk, staff_user=admin_user)
    assert WalletItem.objects.filter(persona=persona).count() == 1
