"""Bulk actions on the personas list, in a real browser: tick rows, confirm a question that
states the count, see the result; and a background job's progress updating in place.

Set SCREENSHOTS=/tmp/shots-bulk to keep pictures of the bar, the question and the progress."""

import os
import re
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import expect

from audiences.models import AudienceMember
from audiences.services import audience_static_create
from loyalty.models import Persona, PersonaBulkJob
from stores.models import Role
from tests.browser.pages import log_in
from tests.factories import MembershipFactory, PersonaFactory, RetailStoreFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NAMES = [("Ava", "Moreno"), ("Ben", "Okafor"), ("Chloe", "Nguyen"), ("Diego", "Alvarez"), ("Emma", "Fischer"),
         ("Farah", "Haddad"), ("Gus", "Lindqvist"), ("Hana", "Sato"), ("Ivan", "Petrov"), ("Jade", "Kim"),
         ("Kofi", "Mensah"), ("Lena", "Brandt"), ("Milo", "Rossi"), ("Nora", "Walsh"), ("Omar", "Farouk"),
         ("Priya", "Raman"), ("Quinn", "Baker"), ("Rosa", "Diaz"), ("Sam", "Cohen"), ("Tess", "Young"),
         ("Uma", "Patel"), ("Vic", "Stone"), ("Wes", "Carter"), ("Xena", "Lopez"), ("Yuri", "Ivanov"),
         ("Zoe", "Martin"), ("Abel", "Nash"), ("Bea", "Ortiz")]


def shot(page, name):
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def watch(page):
    """Script errors and console errors (a CSP refusal is one) the pages make."""
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    return problems


@pytest.fixture
def shop(company):
    admin = MembershipFactory(company=company, role=Role.ADMIN, user__username="shop-admin").user
    stores = [RetailStoreFactory(company=company, name=name) for name in ("Denver", "Boulder")]
    for n, (first, last) in enumerate(NAMES):
        member = n % 3 == 0
        PersonaFactory(company=company, first_name=first, last_name=last, favourite_store=stores[n % 2],
                       email=f"{first.lower()}.{last.lower()}@example.com", is_member=member,
                       enrolled_at=timezone.now() if member else None, points_balance=40 * n,
                       lifetime_points=40 * n)
    audience = audience_static_create(company=company, name="VIP list")
    return admin, audience


def test_admin_ticks_rows_confirms_the_count_and_sees_the_result(page, live_server, shop, company):
    admin, audience = shop
    problems = watch(page)
    log_in(page, live_server, admin.username)
    page.goto(f"{live_server.url}/personas/")
    bar = page.get_by_test_id("bulk-bar")
    expect(bar.get_by_test_id("bulk-count")).to_have_text("Tick personas to act on them")
    expect(bar.get_by_role("button", name="Enrol in loyalty")).to_be_disabled()

    # Ticking three rows: Ava (already a member), Ben and Chloe
    for name in ("Ava Moreno", "Ben Okafor", "Chloe Nguyen"):
        page.get_by_role("checkbox", name=f"Select {name}").check()
    expect(bar.get_by_test_id("bulk-count")).to_have_text("3 selected")
    select_page = page.get_by_role("checkbox", name="Select every persona on this page")
    assert select_page.evaluate("e => e.indeterminate")
    expect(bar.get_by_role("button", name="Enrol in loyalty")).to_be_enabled()
    page.evaluate("window.scrollTo(0, 0)")
    shot(page, "persona-bulk-bar")

    bar.get_by_role("button", name="Enrol in loyalty").click()
    expect(page.get_by_test_id("bulk-question")).to_have_text("Enrol 3 personas in the loyalty program?")
    expect(page.get_by_test_id("bulk-sample")).to_have_text("Selected: Ava Moreno, Ben Okafor, Chloe Nguyen.")
    shot(page, "persona-bulk-confirm")
    page.get_by_role("button", name="Enrol 3 personas").click()

    expect(page.locator(".message")).to_have_text(
        "Enrolled 2 personas in the loyalty program. 1 was already a member, left as they were.")
    row = page.get_by_test_id("persona-table").locator("tbody tr", has_text="Ben Okafor")
    expect(row.locator(".badge-member")).to_have_text("Member")
    enrolled = Persona.objects.filter(company=company, first_name__in=["Ben", "Chloe"], is_member=True)
    assert enrolled.count() == 2

    # Every persona on the page, then all that match (more than a page): into the static audience
    select_page.check()
    expect(bar.get_by_test_id("bulk-count")).to_have_text("25 selected")
    page.get_by_label("Select all 28 matching").check()
    expect(bar.get_by_test_id("bulk-count")).to_have_text("All 28 selected")
    bar.get_by_role("button", name="Add to audience").click()
    expect(page.get_by_test_id("bulk-question")).to_have_text("Add 28 personas to a static audience?")
    expect(page.get_by_test_id("bulk-sample")).to_contain_text("and 23 more.")
    shot(page, "persona-bulk-confirm-audience")
    page.get_by_label("Static audience").select_option(label="VIP list")
    page.get_by_role("button", name="Add 28 personas").click()
    expect(page.locator(".message")).to_have_text("Added 28 personas to “VIP list”.")
    assert AudienceMember.objects.filter(audience=audience).count() == 28
    assert problems == []


def test_background_job_progress_updates_in_place(page, live_server, shop, company):
    admin, _ = shop
    problems = watch(page)
    # given a large enrolment a worker is part way through
    ids = list(Persona.objects.filter(company=company).values_list("pk", flat=True))
    job = PersonaBulkJob.objects.create(company=company, action="enrol", persona_ids=ids, total=5000,
                                        processed=2000, changed=1800, skipped=200, in_background=True,
                                        state="running", created_by=admin, started_at=timezone.now())
    log_in(page, live_server, admin.username)
    page.goto(f"{live_server.url}/personas/")
    progress = page.get_by_test_id("bulk-job")
    expect(progress).to_contain_text("Enrolling 5,000 personas in the loyalty program")
    expect(progress.get_by_test_id("bulk-progress")).to_have_text("2,000 of 5,000")
    page.evaluate("window.__noReload = true")
    shot(page, "persona-bulk-progress")

    # when the worker moves on, then finishes, the page follows without a reload
    PersonaBulkJob.objects.filter(pk=job.pk).update(processed=3500, changed=3300)
    expect(progress.get_by_test_id("bulk-progress")).to_have_text("3,500 of 5,000")
    PersonaBulkJob.objects.filter(pk=job.pk).update(processed=5000, changed=4800, state="done",
                                                    finished_at=timezone.now())
    expect(progress.get_by_test_id("bulk-summary")).to_have_text(re.compile(
        r"Enrolled 4,800 personas in the loyalty program\. 200 were already members"))
    expect(progress).to_contain_text("Done")
    assert page.evaluate("window.__noReload") is True
    shot(page, "persona-bulk-done")
    assert problems == []
