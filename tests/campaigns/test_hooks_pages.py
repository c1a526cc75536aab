"""The email unsubscribe page (and a mail provider's one-click unsubscribe) and tracked links."""

import threading

import pytest
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from campaigns.hooks import link_for, tracked_link_url, unsubscribe_url
from campaigns.models import Campaign, CampaignLink, CampaignRecipient, LinkClick
from loyalty.models import ConsentRecord
from stores.errors import DomainError
from tests.factories import PersonaFactory

pytestmark = pytest.mark.django_db

BASE = "https://loyalty.example.com"


@pytest.fixture(autouse=True)
def public_base():
    with override_settings(PUBLIC_BASE_URL=BASE):
        yield


def _path(url):
    assert url.startswith(BASE + "/")
    return url.removeprefix(BASE)


def _campaign(company, name="Spring sale", channel="email"):
    return Campaign.objects.create(company=company, name=name, channel=channel, email_subject="Spring",
                                   status="sending", queued_at=timezone.now())


def _recipient(campaign, persona=None):
    persona = persona or PersonaFactory(company=campaign.company)
    return CampaignRecipient.objects.create(campaign=campaign, persona=persona, group="send",
                                            to=persona.email, due_at=timezone.now(), state="sent")


# --- unsubscribe ---------------------------------------------------------------------------------

def test_the_unsubscribe_page_asks_then_unsubscribes(client, company):
    persona = PersonaFactory(company=company, email_opt_in=True, sms_opt_in=True)
    path = _path(unsubscribe_url(company=company, persona_id=persona.pk))

    page = client.get(path)
    assert page.status_code == 200
    assert "Unsubscribe from Green Leaf email" in page.content.decode()
    persona.refresh_from_db()
    assert persona.email_opt_in is True  # a look changes nothing

    done = client.post(path)
    assert done.status_code == 200 and "You're unsubscribed" in done.content.decode()
    persona.refresh_from_db()
    assert (persona.email_opt_in, persona.sms_opt_in) == (False, True)
    [record] = ConsentRecord.objects.filter(persona=persona)
    assert (record.channel, record.granted) == ("email", False)
    assert record.wording == "Unsubscribe from Green Leaf email"


def test_one_click_unsubscribe_works_without_a_csrf_token(company):
    persona = PersonaFactory(company=company, email_opt_in=True)
    client = Client(enforce_csrf_checks=True)
    response = client.post(_path(unsubscribe_url(company=company, persona_id=persona.pk, recipient_id=12)),
                           "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200
    persona.refresh_from_db()
    assert persona.email_opt_in is False
    [record] = ConsentRecord.objects.filter(persona=persona)
    assert "One-click unsubscribe" in record.wording


def test_each_unsubscribe_request_is_recorded_once(client, company):
    persona = PersonaFactory(company=company, email_opt_in=True)
    path = _path(unsubscribe_url(company=company, persona_id=persona.pk))
    client.post(path)
    client.post(path)
    assert ConsentRecord.objects.filter(persona=persona, granted=False).count() == 2


def test_a_tampered_unsubscribe_link_is_404(client, company, other_company):
    persona = PersonaFactory(company=company, email_opt_in=True)
    victim = PersonaFactory(company=company, email_opt_in=True)
    path = _path(unsubscribe_url(company=company, persona_id=persona.pk))
    token = path.split("/")[2]
    company_id, _, rest = token.partition(".")
    forged = f"/u/{company_id}.{victim.pk}.{rest.partition('.')[2]}/"
    assert client.get(forged).status_code == 404
    assert client.post(forged).status_code == 404
    assert client.post(path[:-3] + "xx/").status_code == 404
    # a link made for another company's id does not reach this persona either
    assert client.post(_path(unsubscribe_url(company=other_company, persona_id=victim.pk))).status_code == 404
    victim.refresh_from_db()
    assert victim.email_opt_in is True and not ConsentRecord.objects.exists()


# --- tracked links -------------------------------------------------------------------------------

def test_a_tracked_link_redirects_and_counts_the_recipients_click(client, company):
    campaign = _campaign(company)
    recipient = _recipient(campaign)
    link = link_for(campaign=campaign, url="https://greenleaf.example.com/spring?utm=sms")
    url = tracked_link_url(link=link, recipient_id=recipient.pk)
    assert len(url) < len(BASE) + 20  # short: it goes in a text message

    response = client.get(_path(url))
    assert response.status_code == 302 and response["Location"] == "https://greenleaf.example.com/spring?utm=sms"
    [click] = LinkClick.objects.all()
    assert (click.link_id, click.recipient_id) == (link.pk, recipient.pk)


def test_a_preview_click_counts_with_no_recipient(client, company):
    link = link_for(campaign=_campaign(company), url="https://greenleaf.example.com/")
    response = client.get(_path(tracked_link_url(link=link, recipient_id=None)))
    assert response.status_code == 302
    assert LinkClick.objects.get().recipient_id is None


def test_a_recipient_of_another_campaign_is_not_credited(client, company, other_company):
    mine = link_for(campaign=_campaign(company), url="https://greenleaf.example.com/")
    theirs = _recipient(_campaign(other_company))
    response = client.get(_path(tracked_link_url(link=mine, recipient_id=theirs.pk)))
    assert response.status_code == 302
    assert LinkClick.objects.get().recipient_id is None
    assert client.get(f"/l/{mine.code}/zz-not-base36/").status_code == 302


def test_an_unknown_code_is_404(client):
    assert client.get("/l/nope123/1/").status_code == 404
    assert not LinkClick.objects.exists()


def test_link_for_makes_one_link_per_url(company):
    campaign = _campaign(company)
    first = link_for(campaign=campaign, url="https://greenleaf.example.com/a")
    assert link_for(campaign=campaign, url="https://greenleaf.example.com/a") == first
    other = link_for(campaign=campaign, url="https://greenleaf.example.com/b")
    assert other != first and len(first.code) == 7 and first.code.isalnum()
    with pytest.raises(DomainError):
        link_for(campaign=campaign, url="javascript:alert(1)")
    assert CampaignLink.objects.filter(campaign=campaign).count() == 2


@pytest.mark.django_db(transaction=True)
def test_two_workers_asking_at_once_get_the_same_link(company):
    campaign = _campaign(company)
    barrier, found = threading.Barrier(4), []

    def ask():
        try:
            barrier.wait()
            found.append(link_for(campaign=campaign, url="https://greenleaf.example.com/race").pk)
        finally:
            connection.close()

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(found) == 4 and len(set(found)) == 1
    assert CampaignLink.objects.filter(campaign=campaign).count() == 1
