"""The campaign pages as staff use them: compose, review (who receives it, the cost, the
preview), a test message, send, pause, resume, cancel, the live progress, delete, the email
preview frame and Settings › Messaging; who may see them, and another company's campaigns."""

import datetime as dt
import re
from decimal import Decimal

import pytest
from django.urls import reverse
from django.utils import timezone
from django.utils.html import strip_tags

from audiences.models import Audience
from campaigns import urls as campaign_urls
from campaigns import urls_report
from campaigns.models import Campaign, CampaignRecipient, MessagingSettings
from stores.models import AuditEvent
from tests.factories import PersonaFactory
from tests.members import sms_fixtures

from .campaign_helpers import audience_of, consenting, open_all_day, sms_campaign

pytestmark = pytest.mark.django_db
twilio_server = sms_fixtures.twilio_server

CAMPAIGN_URL_NAMES = [p.name for p in campaign_urls.urlpatterns + urls_report.urlpatterns
                      if "campaign_id" in p.pattern.converters]


def _text(response) -> str:
    return re.sub(r"\s+", " ", strip_tags(response.content.decode()))


def _messages(response) -> list[str]:
    return [str(m) for m in response.wsgi_request._messages]


def _follow_messages(response) -> str:
    return " ".join(str(m) for m in response.context["messages"])


def _kinds(company, campaign=None) -> list[str]:
    events = AuditEvent.objects.filter(company=company, kind__startswith="campaign.")
    if campaign is not None:
        events = events.filter(object_id=campaign.pk)
    return list(events.order_by("created_at", "id").values_list("kind", flat=True))


@pytest.fixture
def audience(company):
    open_all_day(company)
    people = consenting(company, 3)
    return audience_of(company, people, name="Regulars")


@pytest.fixture
def marketer(client, marketer_user):
    client.force_login(marketer_user)
    return client


def _compose(audience, **fields) -> dict:
    return {"name": "Spring sale", "channel": "sms", "audience": audience.pk,
            "sms_body": "Hi {first_name}, 20% off this weekend!", "email_template": "announcement",
            "holdout_percent": 10, "report_days": 7, "scheduled_at": "", **fields}


# --- compose ---------------------------------------------------------------------------------------------

def test_marketer_composes_an_sms_campaign(marketer, company, audience, marketer_user):
    response = marketer.post(reverse("campaign_new"), _compose(audience))

    campaign = Campaign.objects.get(company=company)
    assert response.status_code == 302
    assert response["Location"] == reverse("campaign_detail", args=[campaign.pk])
    assert (campaign.name, campaign.channel, campaign.audience, campaign.holdout_percent) == (
        "Spring sale", "sms", audience, 10)
    assert campaign.status == "draft" and campaign.created_by == marketer_user
    event = AuditEvent.objects.get(company=company, kind="campaign.created")
    assert event.object_id == campaign.pk and event.actor_id == marketer_user.pk


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"sms_body": "Hi {frist_name}, 20% off!"}, "sms_body", "{frist_name}"),
    ({"sms_body": ""}, "sms_body", "empty"),
    ({"holdout_percent": 51}, "holdout_percent", "less than or equal to 50"),
    ({"report_days": 0}, "report_days", "greater than or equal to 1"),
    ({"report_days": 91}, "report_days", "less than or equal to 90"),
    ({"scheduled_at": "2020-01-01T10:00"}, "scheduled_at", "passed"),
    ({"audience": "other"}, "audience", "valid choice"),
])
def test_bad_input_is_explained_on_its_field_and_nothing_is_saved(marketer, company, other_company, audience,
                                                                  fields, field, words):
    if fields.get("audience") == "other":
        fields = {"audience": Audience.objects.create(company=other_company, name="Theirs",
                                                      kind=Audience.Kind.STATIC).pk}

    response = marketer.post(reverse("campaign_new"), _compose(audience) | fields)

    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors, errors
    assert words in " ".join(errors[field])
    assert words in response.content.decode().replace("&#x27;", "'")
    assert not Campaign.objects.exists()
    assert not AuditEvent.objects.filter(kind__startswith="campaign.").exists()


def test_a_future_send_time_is_kept(marketer, company, audience):
    later = (timezone.localtime() + dt.timedelta(days=2)).strftime("%Y-%m-%dT%H:%M")
    response = marketer.post(reverse("campaign_new"), _compose(audience, scheduled_at=later))
    assert response.status_code == 302
    assert Campaign.objects.get(company=company).scheduled_at > timezone.now()


def test_edit_changes_a_draft_and_is_audited(marketer, company, audience):
    campaign = sms_campaign(company, audience)
    response = marketer.post(reverse("campaign_edit", args=[campaign.pk]),
                             _compose(audience, name="Renamed", holdout_percent=20))
    assert response.status_code == 302
    campaign.refresh_from_db()
    assert (campaign.name, campaign.holdout_percent) == ("Renamed", 20)
    assert _kinds(company, campaign) == ["campaign.updated"]


# --- review: who receives it, the cost, the preview ---------------------------------------------------

def test_detail_shows_who_receives_it_why_others_do_not_and_the_cost(marketer, company):
    open_all_day(company, sms_segment_price=Decimal("0.0100"))
    people = [*consenting(company, 8),
              PersonaFactory(company=company, sms_opt_in=False),
              PersonaFactory(company=company, sms_opt_in=True, phone="")]
    campaign = sms_campaign(company, audience_of(company, people), holdout=10)

    response = marketer.get(reverse("campaign_detail", args=[campaign.pk]))

    text = _text(response)
    # 8 eligible, 10% of them (1) held out.
    assert "10 in the audience → 7 will receive, 1 held out." in text
    assert "1 no SMS consent" in text
    assert "1 no valid mobile number" in text
    # One segment to 7 people at 1 cent.
    assert "About 0.07 USD at 1 segment per message." in text
    assert 'data-testid="send-button"' in response.content.decode()


def test_preview_as_a_chosen_persona_shows_their_first_name(marketer, company):
    open_all_day(company)
    zelda = PersonaFactory(company=company, first_name="Zelda", sms_opt_in=True)
    campaign = sms_campaign(company, audience_of(company, [zelda, *consenting(company, 2)]))
    url = reverse("campaign_detail", args=[campaign.pk])

    sample = marketer.get(url)
    chosen = marketer.get(url, {"persona": zelda.pk})

    assert "Hi Maria, double points today!" in _text(sample)
    assert f'<option value="{zelda.pk}" selected' in chosen.content.decode()
    assert "Hi Zelda, double points today!" in _text(chosen)
    assert "Hi Maria" not in _text(chosen)
    assert marketer.get(url, {"persona": PersonaFactory().pk}).status_code == 404


# --- a test message ---------------------------------------------------------------------------------------

def test_send_a_test_sms_to_me(marketer, company, audience, twilio_server, marketer_user):
    campaign = sms_campaign(company, audience)
    zoe = PersonaFactory(company=company, first_name="Zoe")

    response = marketer.post(reverse("campaign_test", args=[campaign.pk]),
                             {"to": "(303) 555-0142", "persona": zoe.pk}, follow=True)

    assert "Test sent to +13035550142." in _follow_messages(response)
    [message] = twilio_server.sent_to("+13035550142")
    assert message["body"].startswith("Hi Zoe, double points today!")
    assert message["body"].endswith("Reply STOP to opt out")
    event = AuditEvent.objects.get(kind="campaign.test_sent")
    assert event.object_id == campaign.pk and event.actor_id == marketer_user.pk
    assert event.extra["to"] == "+13035550142" and event.extra["state"] == "sent"
    assert not CampaignRecipient.objects.exists()
    campaign.refresh_from_db()
    assert campaign.status == "draft"


def test_a_bad_test_number_is_explained(marketer, company, audience, twilio_server):
    campaign = sms_campaign(company, audience)

    response = marketer.post(reverse("campaign_test", args=[campaign.pk]), {"to": "555-12"}, follow=True)

    assert "The test number: '555-12' is not a" in _follow_messages(response)
    assert not twilio_server.messages
    blank = marketer.post(reverse("campaign_test", args=[campaign.pk]), {"to": ""}, follow=True)
    assert "Enter a mobile number or email address for the test." in _follow_messages(blank)


def test_a_refused_test_says_why(marketer, company, audience, twilio_server):
    campaign = sms_campaign(company, audience)
    twilio_server.fail_next(status=400, code=21211, message="The 'To' number is not a valid phone number.")

    response = marketer.post(reverse("campaign_test", args=[campaign.pk]), {"to": "+13035550142"},
                             follow=True)

    assert "The test was not sent:" in _follow_messages(response)
    assert AuditEvent.objects.get(kind="campaign.test_sent").extra["state"] == "failed"


def test_send_a_test_email_to_me(marketer, company, audience, smtp_fake):
    campaign = Campaign.objects.create(company=company, name="Newsletter", channel="email",
                                       audience=audience, email_subject="News for {first_name}",
                                       email_body="Hello {first_name}.", holdout_percent=0)

    response = marketer.post(reverse("campaign_test", args=[campaign.pk]), {"to": "me@example.com"},
                             follow=True)

    assert "Test sent to me@example.com." in _follow_messages(response)
    [email] = smtp_fake.sent_to("me@example.com")
    assert email["subject"] == "[Test] News for Maria"
    assert email["headers"]["List-Unsubscribe"].startswith("<http")
    assert email["headers"]["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    unsubscribe = email["headers"]["List-Unsubscribe"].strip("<>")
    assert unsubscribe in email["text"]
    assert "Hello Maria." in email["text"]
    assert _kinds(company, campaign) == ["campaign.test_sent"]
    not_email = marketer.post(reverse("campaign_test", args=[campaign.pk]), {"to": "3035550142"}, follow=True)
    assert "The test address is not an email address." in _follow_messages(not_email)


# --- send, pause, resume, cancel, progress -------------------------------------------------------------

def test_send_queues_once_and_a_second_send_says_it_is_sending(marketer, company, marketer_user):
    open_all_day(company)
    campaign = sms_campaign(company, audience_of(company, consenting(company, 10)), holdout=10)
    url = reverse("campaign_send", args=[campaign.pk])

    first = marketer.post(url, follow=True)
    second = marketer.post(url, follow=True)

    assert "Sending to 9 customers (1 held out)." in _follow_messages(first)
    assert "This campaign is already sending." in _follow_messages(second)
    campaign.refresh_from_db()
    assert campaign.status == "sending" and campaign.recipient_count == 9
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 10
    assert _kinds(company, campaign) == ["campaign.sent"]
    assert AuditEvent.objects.get(kind="campaign.sent").actor_id == marketer_user.pk
    assert marketer.get(url).status_code == 405


def test_send_at_a_later_time_schedules(marketer, company, audience):
    campaign = sms_campaign(company, audience, scheduled_at=timezone.now() + dt.timedelta(days=1))
    response = marketer.post(reverse("campaign_send", args=[campaign.pk]), follow=True)
    assert "Scheduled." in _follow_messages(response)
    campaign.refresh_from_db()
    assert campaign.status == "scheduled" and not CampaignRecipient.objects.exists()
    assert _kinds(company, campaign) == ["campaign.scheduled"]


def test_pause_resume_and_cancel_through_the_buttons(marketer, company, audience):
    campaign = sms_campaign(company, audience)
    marketer.post(reverse("campaign_send", args=[campaign.pk]))
    detail = reverse("campaign_detail", args=[campaign.pk])
    assert 'data-testid="pause-button"' in marketer.get(detail).content.decode()

    paused = marketer.post(reverse("campaign_pause", args=[campaign.pk]), follow=True)
    assert "Paused: nothing more goes out until you resume." in _follow_messages(paused)
    assert 'data-testid="resume-button"' in paused.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "paused"
    again = marketer.post(reverse("campaign_pause", args=[campaign.pk]), follow=True)
    assert "This campaign is paused." in _follow_messages(again)

    resumed = marketer.post(reverse("campaign_resume", args=[campaign.pk]), follow=True)
    assert "Sending again." in _follow_messages(resumed)
    campaign.refresh_from_db()
    assert campaign.status == "sending"

    cancelled = marketer.post(reverse("campaign_cancel", args=[campaign.pk]), follow=True)
    assert "Cancelled: the messages not yet sent never will be." in _follow_messages(cancelled)
    campaign.refresh_from_db()
    assert campaign.status == "cancelled"
    assert set(CampaignRecipient.objects.filter(campaign=campaign).values_list("state", flat=True)) == {
        "cancelled"}
    assert _kinds(company, campaign) == ["campaign.sent", "campaign.paused", "campaign.resumed",
                                         "campaign.cancelled"]


def test_progress_partial_is_only_the_progress_section(marketer, company, audience):
    campaign = sms_campaign(company, audience)
    marketer.post(reverse("campaign_send", args=[campaign.pk]))
    CampaignRecipient.objects.filter(campaign=campaign, pk__in=CampaignRecipient.objects.filter(
        campaign=campaign).values("pk")[:1]).update(state="sent", sent_at=timezone.now())

    response = marketer.get(reverse("campaign_progress", args=[campaign.pk]), HTTP_HX_REQUEST="true")

    body = response.content.decode().strip()
    assert response.status_code == 200
    assert body.startswith('<section id="campaign-progress"') and body.endswith("</section>")
    assert "<html" not in body and 'aria-label="Main"' not in body
    assert 'hx-trigger="every 2s"' in body  # it keeps polling while sending
    assert "1 of 3 handled (33%)" in _text(response)
    # Once sent, the section stops polling.
    Campaign.objects.filter(pk=campaign.pk).update(status="sent", finished_at=timezone.now())
    done = marketer.get(reverse("campaign_progress", args=[campaign.pk]), HTTP_HX_REQUEST="true")
    assert "hx-trigger" not in done.content.decode()


def test_a_started_campaign_cannot_be_edited(marketer, company, audience):
    campaign = sms_campaign(company, audience)
    marketer.post(reverse("campaign_send", args=[campaign.pk]))
    url = reverse("campaign_edit", args=[campaign.pk])

    shown = marketer.get(url, follow=True)
    posted = marketer.post(url, _compose(audience, name="Changed"), follow=True)

    for response in (shown, posted):
        assert response.redirect_chain[-1][0] == reverse("campaign_detail", args=[campaign.pk])
        assert "This campaign has started: it can no longer be changed." in _follow_messages(response)
    campaign.refresh_from_db()
    assert campaign.name == "Double points"
    assert "campaign.updated" not in _kinds(company, campaign)


def test_a_draft_can_be_deleted(marketer, company, audience):
    campaign = sms_campaign(company, audience)
    response = marketer.post(reverse("campaign_delete", args=[campaign.pk]), follow=True)
    assert response.redirect_chain[-1][0] == reverse("campaign_list")
    assert "Deleted “Double points”." in _follow_messages(response)
    assert not Campaign.objects.filter(pk=campaign.pk).exists()
    assert AuditEvent.objects.get(kind="campaign.deleted").object_id == campaign.pk


def test_a_sent_campaign_cannot_be_deleted(marketer, company, audience):
    campaign = sms_campaign(company, audience, status="sent", queued_at=timezone.now())
    CampaignRecipient.objects.create(campaign=campaign, persona=audience.members.first().persona,
                                     group="send", to="+13035550142", time_zone="UTC", due_at=timezone.now(),
                                     state="delivered", sent_at=timezone.now())

    response = marketer.post(reverse("campaign_delete", args=[campaign.pk]), follow=True)

    assert "A campaign that has sent messages is kept, for its report." in _follow_messages(response)
    assert Campaign.objects.filter(pk=campaign.pk).exists()
    assert "campaign.deleted" not in _kinds(company)


def test_sent_campaign_page_shows_its_counts_and_report(marketer, company, audience):
    campaign = sms_campaign(company, audience)
    marketer.post(reverse("campaign_send", args=[campaign.pk]))
    Campaign.objects.filter(pk=campaign.pk).update(status="sent", finished_at=timezone.now())

    response = marketer.get(reverse("campaign_detail", args=[campaign.pk]))

    assert response.status_code == 200
    text = _text(response)
    assert "3 in the audience when sent → 3 recipients, 0 held out." in text
    assert 'data-testid="campaign-report"' in response.content.decode()


# --- the email preview frame ------------------------------------------------------------------------------

def test_email_preview_frame_has_the_html_and_a_csp_without_scripts(marketer, company, audience):
    campaign = Campaign.objects.create(company=company, name="Newsletter", channel="email",
                                       audience=audience, email_subject="News",
                                       email_body="Hello {first_name}.", holdout_percent=0)

    response = marketer.get(reverse("campaign_email_preview", args=[campaign.pk]))

    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "Hello Maria." in response.content.decode()
    header = response["Content-Security-Policy"]
    policy = {d.split()[0]: d.split()[1:] for d in header.split(";") if d.strip()}
    assert policy["default-src"] == ["'none'"]
    assert "script-src" not in policy and "script-src-elem" not in policy
    assert policy["frame-ancestors"] == ["'self'"]
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    sms = sms_campaign(company, audience, name="Texts")
    assert marketer.get(reverse("campaign_email_preview", args=[sms.pk])).status_code == 404


# --- Settings › Messaging -------------------------------------------------------------------------------

def _messaging(**fields) -> dict:
    return {"sms_cap_count": 3, "sms_cap_days": 7, "email_cap_count": 4, "email_cap_days": 14,
            "send_window_start": "10:00", "send_window_end": "19:30", "opt_out_line": "Text STOP to quit",
            "sms_segment_price": "0.0080", "email_from_name": "Green Leaf", "postal_address": "1 Main St",
            **fields}


def test_admin_saves_messaging_settings(admin_client, company, admin_user):
    response = admin_client.post(reverse("messaging_settings"), _messaging())
    assert response.status_code == 302
    rules = MessagingSettings.objects.get(company=company)
    assert (rules.sms_cap_count, rules.email_cap_days, rules.send_window_start, rules.send_window_end) == (
        3, 14, dt.time(10, 0), dt.time(19, 30))
    assert rules.opt_out_line == "Text STOP to quit"
    event = AuditEvent.objects.get(kind="messaging_settings.updated")
    assert event.actor_id == admin_user.pk and event.changes["sms_cap_count"] == [2, 3]


@pytest.mark.parametrize(("fields", "field", "words"), [
    ({"send_window_start": "18:00", "send_window_end": "09:00"}, "send_window_end", "after the start"),
    ({"opt_out_line": "Text NO to quit"}, "opt_out_line", "STOP"),
    ({"sms_cap_count": 0}, "sms_cap_count", "Between 1 and 50."),
    ({"email_cap_count": 51}, "email_cap_count", "Between 1 and 50."),
    ({"sms_cap_days": 91}, "sms_cap_days", "Between 1 and 90 days."),
])
def test_bad_messaging_settings_are_explained(admin_client, company, fields, field, words):
    response = admin_client.post(reverse("messaging_settings"), _messaging(**fields))
    assert response.status_code == 200
    errors = response.context["form"].errors
    assert field in errors and words in " ".join(errors[field]), errors
    rules = MessagingSettings.objects.filter(company=company).first()
    assert rules is None or rules.sms_cap_count == 2
    assert not AuditEvent.objects.filter(kind="messaging_settings.updated").exists()


def test_a_marketer_may_not_change_messaging_settings(marketer, company):
    assert marketer.get(reverse("messaging_settings")).status_code == 403
    assert marketer.post(reverse("messaging_settings"), _messaging()).status_code == 403
    assert not MessagingSettings.objects.filter(company=company, sms_cap_count=3).exists()


# --- roles and tenancy ----------------------------------------------------------------------------------

def _every_url(campaign) -> list[str]:
    return [reverse("campaign_list"), reverse("campaign_new"),
            *(reverse(name, args=[campaign.pk]) for name in CAMPAIGN_URL_NAMES)]


def test_the_url_list_is_complete():
    assert {"campaign_detail", "campaign_send", "campaign_test", "campaign_email_preview",
            "campaign_report_partial", "campaign_outcomes_csv"} <= set(CAMPAIGN_URL_NAMES)


def test_a_budtender_gets_403_everywhere_and_no_campaigns_link(client, company, audience, budtender_user):
    campaign = sms_campaign(company, audience)
    client.force_login(budtender_user)
    for url in _every_url(campaign):
        for method in ("get", "post"):
            response = getattr(client, method)(url)
            assert response.status_code in (403, 405), f"{method.upper()} {url}: {response.status_code}"
    assert client.get(reverse("messaging_settings")).status_code == 403
    home = client.get("/", follow=True)
    assert home.status_code == 200
    assert reverse("campaign_list") not in home.content.decode()
    campaign.refresh_from_db()
    assert campaign.status == "draft" and not _kinds(company)


@pytest.mark.parametrize("role_user", ["marketer_user", "admin_user"])
def test_marketers_and_admins_see_campaigns(client, company, audience, role_user, request):
    campaign = sms_campaign(company, audience)
    client.force_login(request.getfixturevalue(role_user))
    listing = client.get(reverse("campaign_list"))
    assert listing.status_code == 200
    assert f'href="{reverse("campaign_list")}"' in listing.content.decode()  # the nav link
    assert "Double points" in _text(listing)
    assert client.get(reverse("campaign_new")).status_code == 200
    assert client.get(reverse("campaign_detail", args=[campaign.pk])).status_code == 200
    assert client.get(reverse("campaign_edit", args=[campaign.pk])).status_code == 200


def test_another_companys_campaign_is_404_at_every_url(marketer, company, other_company, audience):
    open_all_day(other_company)
    theirs_audience = audience_of(other_company, consenting(other_company, 2), name="Theirs")
    theirs = sms_campaign(other_company, theirs_audience, name="SecretZebra")
    sent = sms_campaign(other_company, theirs_audience, name="SecretZebra sent", status="sent",
                        queued_at=timezone.now())
    for campaign in (theirs, sent):
        for name in CAMPAIGN_URL_NAMES:
            url = reverse(name, args=[campaign.pk])
            for method in ("get", "post"):
                response = getattr(marketer, method)(url, {"to": "+13035550142", "name": "Hijacked"}
                                                     if method == "post" else None)
                assert response.status_code in (404, 405), f"{method.upper()} {url}: {response.status_code}"
                if response.status_code == 405:
                    assert method == "get" or name.endswith("csv") or name.endswith("partial"), url
    theirs.refresh_from_db()
    sent.refresh_from_db()
    assert (theirs.name, theirs.status, sent.status) == ("SecretZebra", "draft", "sent")
    assert not AuditEvent.objects.filter(company=other_company).exists()
    assert not AuditEvent.objects.filter(company=company, kind__startswith="campaign.").exists()


def test_the_new_form_counts_no_cost_before_there_is_an_audience(marketer, company, audience):
    new = marketer.get(reverse("campaign_new")).content.decode()
    assert 'data-recipients=""' in new  # not "about $0.00 for 0 recipients"
    campaign = sms_campaign(company, audience)
    edit = marketer.get(reverse("campaign_edit", args=[campaign.pk])).content.decode()
    assert 'data-recipients="3"' in edit
