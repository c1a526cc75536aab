"""On a phone: a signed-in customer gets a reward with points, sees its code and QR code in
the wallet, and the POS finds them by that code."""

import os
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests
from axe_playwright_python.sync_playwright import Axe
from django.http import HttpResponse
from django.test import RequestFactory
from playwright.sync_api import expect

from loyalty.models import LoyaltyProgram, WalletItem
from members.sessions import CUSTOMER_COOKIE, customer_session_start
from stores.services import api_key_create
from tests.members.test_wallet import member, page_on, ten_off

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page, name):
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def serious(page) -> list[str]:
    page.wait_for_load_state("networkidle")
    violations = Axe().run(page).response["violations"]
    return [f"{v['id']}: {[n['target'] for n in v['nodes']]}" for v in violations
            if v["impact"] in ("serious", "critical")]


def test_customer_buys_a_reward_and_the_pos_finds_them_by_its_code(browser, live_server, company):
    # given a member with 250 points, signed in on their phone, and two rewards
    LoyaltyProgram.objects.get_or_create(company=company)
    persona = member(company, 250, first_name="Dana")
    ten_off(company)
    ten_off(company, name="Big treat", points_cost=400)
    page_on(company)
    response = HttpResponse()
    customer_session_start(company=company, persona=persona, request=RequestFactory().get("/"),
                           response=response)
    phone = browser.new_context(viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True)
    phone.add_cookies([{"name": CUSTOMER_COOKIE, "value": response.cookies[CUSTOMER_COOKIE].value,
                        "domain": urlparse(live_server.url).hostname, "path": f"/c/{company.slug}/"}])
    page = phone.new_page()
    errors = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

    # when they open the rewards
    page.goto(f"{live_server.url}/c/{company.slug}/rewards/")
    expect(page.get_by_role("heading", name="Rewards")).to_be_visible()
    expect(page.get_by_test_id("balance")).to_have_text("250")
    treat = page.get_by_test_id("reward").filter(has_text="Big treat")
    expect(treat).to_contain_text("You need 150 more points.")
    assert serious(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "rewards")

    # and get $10 off, confirming on the next page
    page.get_by_test_id("reward").filter(has_text="$10 off").get_by_role("link", name="Get it").click()
    expect(page.get_by_role("heading", name="Get $10 off?")).to_be_visible()
    assert serious(page) == []
    shot(page, "confirm")
    page.get_by_role("button", name="Spend 100 points").click()

    # then the wallet shows it with its code and a QR code that loads
    expect(page.get_by_test_id("wallet-added")).to_contain_text("$10 off is in your wallet")
    item = WalletItem.objects.get(persona=persona)
    expect(page.get_by_test_id("wallet-code")).to_have_text(item.code)
    qr = page.get_by_test_id("wallet-qr")
    expect(qr).to_be_visible()
    page.wait_for_function("() => { const img = document.querySelector('[data-testid=wallet-qr]');"
                           " return img.complete && img.naturalWidth > 0; }", timeout=5000)
    assert serious(page) == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    shot(page, "wallet")
    assert errors == []

    # and the POS, scanning that code, finds Dana with the reward
    _, raw = api_key_create(company=company, name="Register 1", level=1)
    headers = {"Authorization": f"Bearer {raw}", "X-Account-UID": str(company.account_uid)}
    found = requests.post(f"{live_server.url}/api/pos/v1/lookup", json={"wallet_code": item.code},
                          headers=headers, timeout=30)
    assert found.status_code == 200, found.text
    body = found.json()
    assert body["persona"]["first_name"] == "Dana" and body["points_balance"] == 150
    assert body["scanned"]["applicable"] is True and body["scanned"]["name"] == "$10 off"
