"""Preferences on the loyalty page: consents recorded with their wording, favourite store,
"Stop SMS" and "Unsubscribe" at once; "Download my data" holds this persona's data only."""

import csv
import io
import json
import zipfile
from decimal import Decimal

import pytest
from django.utils import timezone

from loyalty.models import ConsentRecord
from loyalty.services import LineItemData, TransactionData, transaction_record
from loyalty.services.personas import source_get_or_create
from loyalty.services.redemptions import offer_purchase
from members.services import consent_wording
from members.services_privacy import STOP_WORDING
from tests.factories import OfferFactory, PersonaFactory, RetailStoreFactory

from .sign_in_helpers import page_on, sign_in, text

pytestmark = pytest.mark.django_db

PHONE = "+13035550142"


@pytest.fixture
def member(company, store):
    page_on(company)
    return PersonaFactory(company=company, phone=PHONE, first_name="Maya", sms_opt_in=False,
                          email_opt_in=True, favourite_store=store)


@pytest.fixture
def signed_in(client, company, member):
    assert sign_in(client, company, PHONE).status_code == 302
    return client


def url(company, rest=""):
    return f"/c/{company.slug}/preferences/{rest}"


def test_preferences_page_shows_the_consents_with_their_wording(signed_in, company, member):
    response = signed_in.get(url(company))
    assert response.status_code == 200
    page = text(response)
    wording = consent_wording(company)
    assert wording["sms"] in page and wording["email"] in page
    assert 'aria-current="page">Preferences</a>' in page


def test_saving_records_each_changed_consent_and_the_store(signed_in, company, member, store):
    other_store = RetailStoreFactory(company=company, name="Zeta store")
    response = signed_in.post(url(company), {"sms_consent": "on", "favourite_store": other_store.pk},
                              REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 302
    member.refresh_from_db()
    assert member.sms_opt_in is True and member.email_opt_in is False
    assert member.favourite_store == other_store
    records = {r.channel: r for r in ConsentRecord.objects.filter(persona=member)}
    wording = consent_wording(company)
    assert records["sms"].granted is True and records["sms"].wording == wording["sms"]
    assert records["email"].granted is False and records["email"].wording == wording["email"]
    assert str(records["sms"].ip) == "203.0.113.9"
    assert records["sms"].page_url.endswith(url(company))
    assert "Your preferences are saved." in text(signed_in.get(response["Location"]))
    # The same form again changes nothing: no new record.
    signed_in.post(url(company), {"sms_consent": "on", "favourite_store": other_store.pk})
    assert ConsentRecord.objects.filter(persona=member).count() == 2


def test_another_companys_store_is_refused(signed_in, company, other_company, member, store):
    foreign = RetailStoreFactory(company=other_company)
    response = signed_in.post(url(company), {"favourite_store": foreign.pk})
    assert response.status_code == 400
    member.refresh_from_db()
    assert member.favourite_store == store


@pytest.mark.parametrize(("channel", "field", "message"), [
    ("sms", "sms_opt_in", "we won't text you offers any more"),
    ("email", "email_opt_in", "you're unsubscribed from our emails"),
])
def test_stop_buttons_take_effect_at_once(signed_in, company, member, channel, field, message):
    setattr(member, field, True)
    member.save()
    response = signed_in.post(url(company, f"stop/{channel}/"))
    assert response.status_code == 302
    member.refresh_from_db()
    assert getattr(member, field) is False
    record = ConsentRecord.objects.get(persona=member, channel=channel)
    assert record.granted is False
    assert record.wording == STOP_WORDING[channel].format(company=company.name)
    assert message in text(signed_in.get(response["Location"]))


def test_preferences_need_a_sign_in_of_this_company(client, company, other_company, member):
    page_on(other_company)
    sign_in_page = f"/c/{company.slug}/sign-in/"
    assert client.get(url(company))["Location"].startswith(sign_in_page + "?next=")
    assert client.post(url(company, "stop/sms/"))["Location"] == sign_in_page
    for download in ("my-data/", "my-data/?format=csv"):
        response = client.get(url(company, download))
        assert response.status_code == 302 and response["Location"].startswith(sign_in_page + "?next=")
        assert not response.content
    sign_in(client, company, PHONE)
    assert client.get(f"/c/{other_company.slug}/preferences/").status_code == 302


def _sale(company, store, persona, ext, amount):
    source = source_get_or_create(company=company, kind="pos_api")
    return transaction_record(company=company, source=source, data=TransactionData(
        external_id=ext, occurred_at=timezone.now(), subtotal=Decimal(amount), total=Decimal(amount),
        store_id=store.pk, persona_id=persona.pk, line_items=[LineItemData(
            product=f"Product of {ext}", quantity=Decimal(1), unit_price=Decimal(amount),
            total=Decimal(amount))]))


def test_download_my_data_holds_only_this_persona(signed_in, company, other_company, member, store):
    _sale(company, store, member, "MINE-1", "40.00")
    offer = OfferFactory(company=company, points_cost=10, name="Ten off")
    offer_purchase(company=company, persona_id=member.pk, offer_id=offer.pk)
    ConsentRecord.objects.create(company=company, persona=member, channel="email", granted=True,
                                 wording="Email me")
    neighbour = PersonaFactory(company=company, phone="+13035550199", email="neighbour@example.com")
    _sale(company, store, neighbour, "THEIRS-1", "99.00")
    foreign_store = RetailStoreFactory(company=other_company)
    stranger = PersonaFactory(company=other_company, phone=PHONE, email="stranger@example.com")
    _sale(other_company, foreign_store, stranger, "FOREIGN-1", "77.00")

    response = signed_in.get(url(company, "my-data/"))
    assert response.status_code == 200
    assert response["Content-Type"].startswith("application/json")
    assert "attachment" in response["Content-Disposition"]
    body = response.content.decode()
    data = json.loads(body)
    assert data["profile"]["id"] == member.pk and data["profile"]["phone"] == PHONE
    assert [p["id"] for p in data["purchases"]] == ["MINE-1"]
    assert data["purchases"][0]["lines"][0]["product"] == "Product of MINE-1"
    assert [w["reward"] for w in data["wallet"]] == ["Ten off"]
    assert [c["wording"] for c in data["consents"]] == ["Email me"]
    kinds = [p["kind"] for p in data["points_history"]]
    assert "earn" in kinds and "redeem" in kinds
    for other in ("THEIRS-1", "FOREIGN-1", "neighbour@example.com", "stranger@example.com"):
        assert other not in body



def zip_of(response) -> dict[str, list[list[str]]]:
    """The downloaded ZIP's CSV files, each as its rows."""
    assert response.status_code == 200
    assert response["Content-Type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        assert archive.testzip() is None
        return {name: list(csv.reader(io.StringIO(archive.read(name).decode("utf-8-sig"))))
                for name in archive.namelist()}


def test_download_as_csv_is_a_zip_of_every_section(signed_in, company, member, store):
    # given a member with a purchase, a reward in the wallet and a consent
    _sale(company, store, member, "MINE-1", "40.00")
    offer = OfferFactory(company=company, points_cost=10, name="Ten off")
    offer_purchase(company=company, persona_id=member.pk, offer_id=offer.pk)
    ConsentRecord.objects.create(company=company, persona=member, channel="email", granted=True,
                                 wording="Email me")
    data = json.loads(signed_in.get(url(company, "my-data/")).content)
    # when they download their data as CSV
    response = signed_in.get(url(company, "my-data/") + "?format=csv")
    # then it is a zip named after the company, one CSV per section of the JSON
    assert response["Content-Disposition"] == f'attachment; filename="{company.slug}-my-data.zip"'
    files = zip_of(response)
    assert set(files) == {"profile.csv", "identities.csv", "points_history.csv", "wallet.csv",
                          "purchases.csv", "purchase_lines.csv", "consents.csv"}
    profile = dict(files["profile.csv"][1:])
    assert files["profile.csv"][0] == ["field", "value"]
    assert (profile["company"], profile["first name"]) == (company.name, "Maya")
    assert profile["phone"] == PHONE
    assert profile["favourite store"] == store.name and profile["sms opt in"] == "no"
    points = files["points_history.csv"]
    assert points[0] == ["date", "kind", "points", "balance after", "reason", "purchase"]
    assert len(points) - 1 == len(data["points_history"])
    assert [row[1] for row in points[1:]] == [p["kind"] for p in data["points_history"]]
    assert [row[2] for row in points[1:]] == [str(p["points"]) for p in data["points_history"]]
    assert [row[0] for row in files["wallet.csv"][1:]] == ["Ten off"]
    purchases = files["purchases.csv"]
    assert "lines" not in purchases[0] and [row[0] for row in purchases[1:]] == ["MINE-1"]
    lines = files["purchase_lines.csv"]
    assert lines[0][:2] == ["purchase", "product"] and lines[1][:2] == ["MINE-1", "Product of MINE-1"]
    assert [row[3] for row in files["consents.csv"][1:]] == ["Email me"]


def test_download_as_csv_holds_only_the_downloading_persona(client, company, member, store):
    # given two members of the company, each with a purchase
    _sale(company, store, member, "MINE-1", "40.00")
    neighbour = PersonaFactory(company=company, phone="+13035550199", first_name="Noor",
                               email="neighbour@example.com")
    _sale(company, store, neighbour, "THEIRS-1", "99.00")
    # when each signs in and downloads their data as CSV
    downloads = {}
    for persona in (member, neighbour):
        client.cookies.clear()
        sign_in(client, company, persona.phone)
        downloads[persona.first_name] = zip_of(client.get(url(company, "my-data/") + "?format=csv"))
    # then each zip holds its own persona's rows and nothing of the other's
    mine, theirs = downloads["Maya"], downloads["Noor"]
    assert dict(mine["profile.csv"][1:])["phone"] == PHONE
    assert dict(theirs["profile.csv"][1:])["phone"] == "+13035550199"
    assert [row[0] for row in mine["purchases.csv"][1:]] == ["MINE-1"]
    assert [row[0] for row in theirs["purchases.csv"][1:]] == ["THEIRS-1"]
    assert any(row[-1] == "MINE-1" for row in mine["points_history.csv"][1:])
    assert any(row[-1] == "THEIRS-1" for row in theirs["points_history.csv"][1:])
    for other in ("THEIRS-1", "Noor", "neighbour@example.com", "+13035550199"):
        assert other not in str(mine)
    for other in ("MINE-1", "Maya", PHONE):
        assert other not in str(theirs)


def test_csv_cells_a_spreadsheet_would_run_are_kept_as_text(signed_in, company, member):
    # given a profile whose name a spreadsheet would read as a formula
    member.first_name = "=HYPERLINK(\"http://evil.example\")"
    member.save(update_fields=["first_name"])
    files = zip_of(signed_in.get(url(company, "my-data/") + "?format=csv"))
    profile = dict(files["profile.csv"][1:])
    # then it is written as text, and numbers (a phone, negative points) stay numbers
    assert profile["first name"] == "'=HYPERLINK(\"http://evil.example\")"
    assert profile["phone"] == PHONE
