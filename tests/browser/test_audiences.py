"""A marketer builds an audience in a real browser: the count follows each condition
without a page load, a half-made condition is explained, and the saved audience exports."""

import csv
import re

import pytest
from playwright.sync_api import expect

from audiences.models import Audience
from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory, PersonaFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def shop(company, other_company):
    marketer = MembershipFactory(company=company, role=Role.MARKETER, user__username="shop-marketer").user
    texters = [PersonaFactory(company=company, first_name=name, last_name="Member", sms_opt_in=True)
               for name in ("Ava", "Ben")]
    for name in ("Cal", "Dot"):
        PersonaFactory(company=company, first_name=name, last_name="Member")
    for name in ("Eve", "Fay"):
        PersonaFactory(company=company, first_name=name, last_name="Guest", is_member=False, enrolled_at=None,
                       sms_opt_in=True)
    PersonaFactory(company=other_company, first_name="Stranger", sms_opt_in=True)
    return marketer, texters


def settled(page):
    """Wait until no builder request is on its way and htmx has taken over the buttons it
    drew (a click on one before that is a plain form post: the whole page again)."""
    page.wait_for_function("() => !document.querySelector('#rules-editor.htmx-request')"
                           " && [...document.querySelectorAll('#rules-editor [hx-post]')]"
                           ".every(b => b['htmx-internal-data'])")


def test_marketer_builds_saves_and_exports_an_audience(page, live_server, shop, tmp_path):
    marketer, texters = shop
    log_in(page, live_server, marketer.username)

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Audiences").click()
    expect(page.get_by_role("heading", name="Audiences", exact=True)).to_be_visible()
    page.get_by_role("link", name="New audience").click()
    count = page.get_by_test_id("audience-count")
    expect(count).to_have_text("6")  # everyone, before any condition
    page.evaluate("window.__noReload = true")

    # Loyalty members: the count follows without a page load.
    page.get_by_role("button", name="+ Add condition").click()
    expect(page.get_by_test_id("audience-error")).to_have_text("Condition 1: pick a trait")
    page.get_by_label("Condition 1 trait").select_option(label="Loyalty member")
    expect(page.get_by_label("Condition 1 value")).to_have_value("true")
    expect(count).to_have_text("4")
    expect(page.get_by_test_id("preview-table").locator("tbody tr")).to_have_count(4)

    # ... who opted in to SMS.
    settled(page)
    page.get_by_role("button", name="+ Add condition").click()
    page.get_by_label("Condition 2 trait").select_option(label="SMS opt-in")
    expect(count).to_have_text("2")
    expect(page.get_by_test_id("preview-table")).to_contain_text("Ava Member")
    expect(page.get_by_test_id("preview-table")).not_to_contain_text("Cal Member")

    # A half-made condition is explained in place of the count, and goes away with it.
    settled(page)
    page.get_by_role("button", name="+ Add condition").click()
    page.get_by_label("Condition 3 trait").select_option(label="Lifetime spend")
    expect(page.get_by_test_id("audience-error")).to_have_text("Condition 3: value must be a number")
    page.get_by_label("Condition 3 value").fill("-1")
    expect(count).to_have_text("2")  # everyone has spent more than -1
    settled(page)
    page.get_by_role("button", name="Remove condition 3").click()
    expect(page.get_by_label("Condition 3 trait")).to_have_count(0)
    expect(count).to_have_text("2")
    assert page.evaluate("window.__noReload") is True

    page.get_by_label("Name", exact=True).fill("Texting members")
    page.get_by_role("button", name="Save audience").click()
    expect(page).to_have_url(re.compile(r"/audiences/$"))
    expect(page.get_by_role("status")).to_contain_text("Audience “Texting members” saved: 2 customers.")
    row = page.get_by_test_id("audience-row").filter(has_text="Texting members")
    expect(row.get_by_test_id("audience-size")).to_have_text("2")

    with page.expect_download() as download_info:
        row.get_by_role("link", name="Export CSV").click()
    download = download_info.value
    assert download.suggested_filename == "texting-members.csv"
    target = tmp_path / "export.csv"
    download.save_as(target)
    with open(target, newline="") as f:
        rows = list(csv.DictReader(f))
    assert sorted(r["first_name"] for r in rows) == ["Ava", "Ben"]
    assert {int(r["persona_id"]) for r in rows} == {p.pk for p in texters}
    assert all(r["sms_opt_in"] == "yes" and r["loyalty_member"] == "yes" and r["phone"] for r in rows)

    audience = Audience.objects.get(name="Texting members")
    assert [c["trait"] for c in audience.rules["children"]] == ["is_member", "sms_opt_in"]
