"""A marketer sends a text message campaign in a real browser: compose it with the live
counter, review who receives it and the preview, send it, watch it go out through the Twilio
fake, see a customer's STOP reply withdraw their consent, and read the report."""

import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from campaigns.hooks import inbound_url
from campaigns.models import Campaign, CampaignRecipient
from loyalty.models import Persona
from stores.models import Role
from tests.browser.pages import log_in
from tests.campaigns.campaign_helpers import audience_of, open_all_day
from tests.factories import MembershipFactory, PersonaFactory
from tests.members import sms_fixtures

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]
twilio_server = sms_fixtures.twilio_server

SHOTS = Path("/tmp/campaign-shots")
NAMES = ["Ava", "Ben", "Cal", "Dot", "Eve", "Fay", "Gus", "Hal", "Ivy", "Jan",
         "Kit", "Lou", "Max", "Ned", "Ora", "Pam", "Quin", "Roy", "Sue", "Tom"]


@pytest.fixture
def shop(company, settings, live_server, twilio_server):
    # Twilio's status callbacks and the inbound webhook go to this live server.
    settings.PUBLIC_BASE_URL = live_server.url
    open_all_day(company)
    marketer = MembershipFactory(company=company, role=Role.MARKETER, user__username="camp-marketer").user
    people = [PersonaFactory(company=company, first_name=name, last_name="Regular", sms_opt_in=True)
              for name in NAMES]
    PersonaFactory(company=company, first_name="Quiet", sms_opt_in=False)  # not in the audience
    audience_of(company, people, name="Weekend regulars")
    return marketer


def shot(page, name):
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")  # the sticky header stays on top of the page
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_marketer_sends_an_sms_campaign_and_a_stop_reply_withdraws_consent(
        page, live_server, company, shop, twilio_server, celery_worker_start):
    import campaigns.tasks  # noqa: F401  (registers the send tasks before the worker starts)

    log_in(page, live_server, shop.username)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Campaigns").click()
    expect(page.get_by_role("heading", name="Campaigns", exact=True)).to_be_visible()
    page.get_by_role("link", name="New campaign").first.click()
    expect(page.get_by_role("heading", name="New campaign")).to_be_visible()

    # Compose: SMS is the default channel; the email fields are hidden.
    page.get_by_label("Name", exact=True).fill("Weekend double points")
    expect(page.get_by_label("SMS")).to_be_checked()
    expect(page.get_by_label("Subject")).to_be_hidden()
    page.get_by_label("Audience").select_option(label="Weekend regulars")
    counter = page.locator("[data-sms-counter-text]")
    expect(counter).to_have_text(re.compile(r"^0 characters"))
    warning = page.locator("[data-sms-counter-warning]")
    expect(warning).to_be_hidden()
    message = page.get_by_label("Message")
    message.press_sequentially("Hi {first_name}, double points")
    expect(counter).to_contain_text("1 segment")
    first = counter.inner_text()
    message.press_sequentially(" all weekend!")
    expect(counter).not_to_have_text(first)  # it follows each key
    expect(counter).to_contain_text("GSM-7 · 1 segment")
    # Long enough for a second segment, then an emoji: UCS-2, 70 characters a segment.
    message.press_sequentially(" Show this text at the counter." * 5)
    expect(counter).to_contain_text("2 segments")
    message.press_sequentially(" 🎉")
    expect(counter).to_contain_text("UCS-2")
    expect(warning).to_be_visible()
    message.fill("Hi {first_name}, double points all weekend at Green Leaf!")
    expect(counter).to_contain_text("GSM-7 · 1 segment")
    expect(warning).to_be_hidden()
    page.get_by_label("Holdout (%)").fill("10")
    shot(page, "1-compose")
    page.get_by_role("button", name="Save and review").click()

    # Review: who receives it, the cost, the preview.
    expect(page.get_by_role("heading", name="Weekend double points")).to_be_visible()
    expect(page.get_by_test_id("eligibility-line")).to_have_text(
        "20 in the audience → 18 will receive, 2 held out.")
    expect(page.get_by_test_id("cost")).to_contain_text("1 segment per message")
    expect(page.get_by_test_id("sms-preview")).to_contain_text("Hi Maria, double points all weekend")
    page.get_by_label("As").select_option(label="Ava Regular")
    expect(page.get_by_test_id("sms-preview")).to_contain_text("Hi Ava, double points all weekend")
    expect(page.get_by_test_id("sms-preview")).to_contain_text("Reply STOP to opt out")
    shot(page, "2-review")

    # Send now, after the confirmation.
    questions = []
    page.once("dialog", lambda dialog: (questions.append(dialog.message), dialog.accept()))
    page.get_by_test_id("send-button").click()
    expect(page.get_by_test_id("progress")).to_be_visible()
    assert questions == ["Send “Weekend double points” to 18 customers?"]
    expect(page.locator(".messages .message").filter(
        has_text="Sending to 18 customers (2 held out).").first).to_be_visible()
    campaign = Campaign.objects.get(company=company)
    assert campaign.status == "sending" and not twilio_server.messages  # the worker is not up yet

    # The worker sends; the page follows without a reload.
    page.evaluate("window.__noReload = true")
    celery_worker_start()
    progress = page.get_by_test_id("progress-line")
    expect(progress).to_contain_text("18 of 18 handled (100%)", timeout=30_000)
    expect(page.get_by_test_id("progress").get_by_test_id("campaign-status")).to_have_text("Sent")
    assert page.evaluate("window.__noReload") is True
    assert len(twilio_server.messages) == 18
    # The fake reports each message delivered to the live server; the page shows it.
    twilio_server.callbacks_wait(36, timeout=20)
    page.reload()
    expect(page.get_by_test_id("progress-line")).to_contain_text("18 delivered")

    # One of the messages, as the fake's outbox shows it.
    outbox = requests.get(f"{twilio_server.url}/fake/messages.json", timeout=5).json()["messages"]
    assert len(outbox) == 18
    one = outbox[0]
    persona = Persona.objects.get(company=company, phone=one["to"])
    assert one["body"] == (f"Hi {persona.first_name}, double points all weekend at Green Leaf!\n"
                           "Reply STOP to opt out")
    held_out = set(CampaignRecipient.objects.filter(campaign=campaign, group="holdout")
                   .values_list("persona__phone", flat=True))
    assert len(held_out) == 2 and not held_out & {m["to"] for m in outbox}

    # The customer replies STOP: their SMS consent is withdrawn.
    answer = requests.post(f"{twilio_server.url}/fake/inbound", timeout=10, data={
        "From": one["to"], "To": one["from"], "Body": "STOP", "Url": inbound_url(company)}).json()
    assert answer["status"] == 200, answer
    persona.refresh_from_db()
    assert persona.sms_opt_in is False

    # The report, on the campaign's page.
    page.reload()
    report = page.get_by_test_id("campaign-report")
    expect(report).to_be_visible()
    expect(report.get_by_test_id("lift-sentence")).to_have_text(re.compile(r"\S"))
    expect(page.get_by_test_id("sent-counts")).to_have_text(
        "20 in the audience when sent → 18 recipients, 2 held out.")
    shot(page, "3-sent")


def test_email_campaign_review_shows_the_email_in_its_frame(page, live_server, company, shop):
    audience = Campaign._meta.get_field("audience").related_model.objects.get(company=company)
    campaign = Campaign.objects.create(
        company=company, name="Spring newsletter", channel="email", audience=audience, holdout_percent=0,
        email_subject="Spring at Green Leaf, {first_name}", email_template="offer",
        email_body="Hello {first_name},\n\nNew arrivals this week.", email_button_text="See them",
        email_button_url="https://example.com/new")
    log_in(page, live_server, shop.username)
    page.goto(f"{live_server.url}/campaigns/{campaign.pk}/")

    expect(page.get_by_test_id("email-subject")).to_have_text("Spring at Green Leaf, Maria")
    frame = page.frame_locator("[data-testid=email-preview]")
    expect(frame.get_by_text("Hello Maria,")).to_be_visible()
    expect(frame.get_by_role("link", name="See them")).to_be_visible()
    box = page.get_by_test_id("email-preview").bounding_box()
    assert box["height"] >= 500 and box["width"] >= 500, box  # the email can be read in place
    shot(page, "4-email-review")
