"""Settings › Loyalty page: admins turn the customer page on, set the minimum age (per
market) and the SMS provider (our own Twilio account, its token write-only), and send a
test message; each write is audited."""

import pytest
from django.urls import reverse

from members.models import LoyaltyPageSettings, SentMessage
from stores.crypto import decrypt, encrypt
from stores.models import AuditEvent
from tests.test_breadcrumbs import trail

from . import sms_fixtures

twilio_server = sms_fixtures.twilio_server

pytestmark = pytest.mark.django_db

URL = "/settings/loyalty-page/"
TEST_URL = "/settings/loyalty-page/test-message/"
OWN_SID = "AC" + "12" * 16
OWN_TOKEN = "own-token-of-green-leaf-0000wxyz"


def _form(**overrides) -> dict:
    data = {"enabled": "on", "minimum_age": "21", "sms_provider": "twilio", "twilio_account_sid": OWN_SID,
            "twilio_sender": "+17205550199", "twilio_auth_token": OWN_TOKEN,
            "market_0": "mi", "age_0": "18", "market_1": "", "age_1": "", "market_2": "", "age_2": ""}
    data.update(overrides)
    return data


def test_the_page_is_reached_from_settings_with_one_breadcrumb(admin_client):
    assert reverse("loyalty_page_settings") == URL
    html = admin_client.get(URL).content.decode()
    assert trail(html) == [("Settings", None), ("Loyalty page", "")]
    assert f'href="{URL}" class="active">Loyalty page</a>' in html
    assert 'class="">Loyalty program</a>' in html  # not both marked as the current page


def test_only_admins_see_it(client, login, marketer_user, budtender_user):
    for user in (marketer_user, budtender_user):
        login(client, user)
        assert client.get(URL).status_code == 403
        assert client.post(URL, _form()).status_code == 403
        assert client.post(TEST_URL, {"to": "+13035550142"}).status_code == 403
    assert not LoyaltyPageSettings.objects.filter(sms_provider="twilio").exists()
    assert SentMessage.objects.count() == 0


def test_saving_stores_the_token_encrypted_and_never_shows_it_again(admin_client, company, admin_user):
    response = admin_client.post(URL, _form())
    assert response.status_code == 302

    page = LoyaltyPageSettings.objects.get(company=company)
    assert page.enabled and page.minimum_ages == {"MI": 18} and page.minimum_age_for("mi") == 18
    assert (page.sms_provider, page.twilio_account_sid, page.twilio_sender) == (
        "twilio", OWN_SID, "+17205550199")
    assert OWN_TOKEN not in page.twilio_auth_token_encrypted
    assert decrypt(page.twilio_auth_token_encrypted) == OWN_TOKEN
    html = admin_client.get(URL).content.decode()
    assert OWN_TOKEN not in html and page.twilio_auth_token_encrypted not in html
    assert "Saved, ending ••••wxyz. Leave blank to keep it." in html

    # the trail has the change, not the token
    event = AuditEvent.objects.get(company=company, kind="loyalty_page.updated")
    assert event.actor_id == admin_user.pk
    assert event.changes["sms_provider"] == ["platform", "twilio"]
    assert event.changes["minimum_ages"] == [None, {"MI": 18}]
    assert event.changes["twilio_auth_token"] == [None, "(set)"]
    assert OWN_TOKEN not in str(event.changes)

    # a blank token keeps the stored one
    admin_client.post(URL, _form(twilio_auth_token="", minimum_age="19"))
    page.refresh_from_db()
    assert page.minimum_age == 19 and decrypt(page.twilio_auth_token_encrypted) == OWN_TOKEN


def test_bad_input_is_refused_on_the_form(admin_client, company):
    response = admin_client.post(URL, _form(twilio_account_sid="nope", twilio_auth_token="",
                                            market_0="Colorado", age_1="18", minimum_age="7"))
    assert response.status_code == 400
    html = response.content.decode()
    assert "An account SID is AC followed by 32" in html
    assert "Our Twilio account needs its auth token." in html
    assert "A market is its state or province code" in html
    assert not LoyaltyPageSettings.objects.filter(company=company, enabled=True).exists()
    assert not AuditEvent.objects.filter(kind="loyalty_page.updated").exists()


def test_another_companys_settings_are_never_shown(admin_client, company, other_company):
    LoyaltyPageSettings.objects.create(
        company=other_company, sms_provider="twilio", twilio_account_sid="AC" + "99" * 16,
        twilio_sender="+12065550100", twilio_auth_token_encrypted=encrypt("other-token-abcd1234"),
        twilio_auth_token_last4="1234")
    html = admin_client.get(URL).content.decode()
    assert "AC" + "99" * 16 not in html and "+12065550100" not in html and "1234" not in html
    admin_client.post(URL, _form())
    other = LoyaltyPageSettings.objects.get(company=other_company)
    assert other.twilio_account_sid == "AC" + "99" * 16 and decrypt(other.twilio_auth_token_encrypted) == \
        "other-token-abcd1234"


def test_a_test_message_goes_through_our_own_twilio_account(admin_client, company, twilio_server):
    twilio_server.add_account(OWN_SID, OWN_TOKEN)
    admin_client.post(URL, _form())

    response = admin_client.post(TEST_URL, {"to": "(303) 555-0142"}, HTTP_HX_REQUEST="true")

    assert response.status_code == 200
    [message] = twilio_server.messages
    assert (message["account_sid"], message["to"], message["from"], message["body"]) == (
        OWN_SID, "+13035550142", "+17205550199", f"Test message from {company.name}")
    html = response.content.decode()
    assert f"Test message sent to +13035550142 ({message['sid']})." in html
    assert "<html" not in html  # the region alone, for htmx
    sent = SentMessage.objects.get(company=company)
    assert (sent.purpose, sent.state, sent.provider_id) == ("test", "sent", message["sid"])
    assert AuditEvent.objects.filter(company=company, kind="loyalty_page.test_message_sent").count() == 1


def test_a_refused_test_message_shows_the_clear_error(admin_client, company, twilio_server):
    twilio_server.add_account(OWN_SID, "the-token-twilio-has-000000000000")
    admin_client.post(URL, _form())  # a token Twilio does not know

    response = admin_client.post(TEST_URL, {"to": "+13035550142"})

    assert response.status_code == 502
    html = response.content.decode()
    assert "We couldn&#x27;t send the text message right now. Try again in a few minutes." in html
    assert "The provider said: Authenticate (20003)." in html
    assert twilio_server.messages == []
    assert SentMessage.objects.get(company=company).state == "failed"
    event = AuditEvent.objects.get(company=company, kind="loyalty_page.test_message_sent")
    assert event.extra["state"] == "failed"


def test_a_test_message_to_no_number_is_refused_on_the_form(admin_client, twilio_server):
    response = admin_client.post(TEST_URL, {"to": "12"})
    assert response.status_code == 400
    assert "is not a" in response.content.decode()
    assert twilio_server.requests == [] and SentMessage.objects.count() == 0
