"""Twenty clicks on Send at once, through a real server: the campaign is queued once."""

import threading

import pytest
import requests
from django.test import Client

from campaigns.models import Campaign, CampaignRecipient
from stores.models import AuditEvent, Role
from tests.factories import CompanyFactory, MembershipFactory

from .campaign_helpers import audience_of, consenting, open_all_day, sms_campaign


@pytest.mark.django_db(transaction=True)
def test_twenty_send_clicks_at_once_queue_the_campaign_once(live_server):
    company = CompanyFactory()
    open_all_day(company)
    marketer = MembershipFactory(company=company, role=Role.MARKETER).user
    campaign = sms_campaign(company, audience_of(company, consenting(company, 25)), holdout=20)
    # Twenty tabs (sessions) of the same marketer: each shows its own message.
    sessions = []
    for _ in range(20):
        client = Client()
        client.force_login(marketer)
        sessions.append(client.cookies["sessionid"].value)
    page = requests.get(f"{live_server.url}/campaigns/{campaign.pk}/", cookies={"sessionid": sessions[0]},
                        timeout=30)
    assert page.status_code == 200 and "will receive" in page.text
    token = page.cookies["csrftoken"]
    barrier, answers = threading.Barrier(20), []

    def click(session_id):
        with requests.Session() as session:
            session.cookies.update({"sessionid": session_id, "csrftoken": token})
            barrier.wait()
            answer = session.post(f"{live_server.url}/campaigns/{campaign.pk}/send/",
                                  data={"csrfmiddlewaretoken": token}, timeout=60)
            answers.append(answer)

    threads = [threading.Thread(target=click, args=(session_id,)) for session_id in sessions]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert [a.status_code for a in answers] == [200] * 20  # each lands back on the campaign page
    said = [a.text for a in answers]
    assert sum("Sending to 20 customers (5 held out)" in text for text in said) == 1
    assert sum("already sending" in text for text in said) == 19
    campaign.refresh_from_db()
    assert campaign.status == Campaign.Status.SENDING and campaign.recipient_count == 20
    assert CampaignRecipient.objects.filter(campaign=campaign).count() == 25
    assert AuditEvent.objects.filter(company=company, kind="campaign.sent").count() == 1
