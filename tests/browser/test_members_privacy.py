"""Preferences and privacy on a phone: change a consent, stop SMS, download my data, then
delete the account with the code from the outbox; nothing serious for axe-core, nothing
refused by the CSP, no sideways scrolling."""

import json
import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from loyalty.models import ConsentRecord, ErasureRequest, Persona
from members.models import SentMessage
from tests.browser.test_members import Phone
from tests.factories import PersonaFactory
from tests.members.sign_in_helpers import page_on, send_limits_reset

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PHONE = "+13035550142"


def outbox_code(company, purpose):
    message = SentMessage.objects.filter(company=company, to=PHONE, purpose=purpose).latest("id")
    return re.search(r"\b(\d{6})\b", message.body).group(1)


def test_preferences_download_and_delete_on_a_phone(browser, live_server, company, store):
    send_limits_reset()
    page_on(company)
    persona = PersonaFactory(company=company, phone=PHONE, first_name="Maya", sms_opt_in=True,
                             email_opt_in=False, favourite_store=store)
    phone = Phone(browser, live_server)
    page = phone.page
    page.goto(f"{live_server.url}/c/{company.slug}/sign-in/")
    page.get_by_label("Mobile number").fill("(303) 555-0142")
    page.get_by_role("button", name="Text me a code").click()
    page.get_by_label("6-digit code").fill(outbox_code(company, "sign_in"))
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Preferences").click()
    expect(page.get_by_role("heading", name="Preferences", exact=True)).to_be_visible()
    phone.check("p1-preferences")

    page.get_by_label(re.compile("^Email me offers")).check()
    page.get_by_role("button", name="Save my preferences").click()
    expect(page.get_by_test_id("preferences-done")).to_have_text("Your preferences are saved.")
    page.get_by_test_id("stop-sms").click()
    expect(page.get_by_test_id("preferences-done")).to_contain_text("we won't text you offers")
    expect(page.get_by_label(re.compile("^Text me offers"))).not_to_be_checked()
    phone.check("p2-stopped")
    persona.refresh_from_db()
    assert persona.email_opt_in and not persona.sms_opt_in
    assert ConsentRecord.objects.filter(persona=persona).count() == 2

    with page.expect_download() as download:
        page.get_by_test_id("download-json").click()
    data = json.loads(Path(download.value.path()).read_text())
    assert data["profile"]["phone"] == PHONE

    page.get_by_test_id("account-delete").click()
    expect(page.get_by_role("heading", name="Delete my account")).to_be_visible()
    phone.check("p3-delete")
    page.get_by_role("button", name="Text me a code to confirm").click()
    page.get_by_label("6-digit code").fill(outbox_code(company, "erase"))
    phone.check("p4-delete-code")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.get_by_test_id("account-deleted")).to_be_visible()
    phone.check("p5-deleted")
    assert Persona.objects.get(pk=persona.pk).phone == ""
    assert ErasureRequest.objects.get(persona=persona).completed_at is not None

    assert phone.axe == [], "\n".join(phone.axe)
    assert phone.problems == [], "\n".join(phone.problems)
    phone.context.close()
