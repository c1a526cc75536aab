"""An admin turns on two-factor with an authenticator app (typing the key by hand, as a
phone without a camera would), signs in again with password and code, then requires
two-factor of the whole company: in a real browser.

Set SCREENSHOTS=/tmp/shots to keep a picture of each page on the way."""

import os
import time
from base64 import b32decode
from pathlib import Path

import pytest
from django_otp.oath import TOTP
from playwright.sync_api import expect

from stores.models import Company, Role
from tests.browser.pages import log_in
from tests.factories import PASSWORD, MembershipFactory

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def shot(page, name: str) -> None:
    folder = os.environ.get("SCREENSHOTS")
    if folder:
        Path(folder).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(folder) / f"{name}.png"), full_page=True)


def app_code(secret: str, *, steps_ahead: int = 0) -> str:
    """What an authenticator app holding `secret` shows (`steps_ahead` 30-second steps from
    now: a code works once, and the next step's is accepted too)."""
    totp = TOTP(b32decode(secret.replace(" ", "")))
    totp.time = time.time() + 30 * steps_ahead
    return f"{totp.token():06d}"


def test_admin_turns_on_two_factor_signs_in_with_a_code_and_requires_it(page, live_server, company):
    MembershipFactory(company=company, role=Role.ADMIN, user__username="shop-admin")
    MembershipFactory(company=company, role=Role.MARKETER, user__username="shop-marketer")
    log_in(page, live_server, "shop-admin")

    # Set-up: the header's link, a QR code and the key in text.
    page.get_by_role("link", name="Two-factor authentication").click()
    expect(page.get_by_role("heading", name="Two-factor authentication")).to_be_visible()
    expect(page.get_by_test_id("two-factor-enrol").locator("svg")).to_be_visible()
    secret = page.get_by_test_id("totp-secret").inner_text()
    assert len(secret.replace(" ", "")) == 32
    shot(page, "enrolment")

    page.get_by_label("Code").fill(app_code(secret))
    page.get_by_role("button", name="Turn on two-factor").click()
    expect(page.get_by_test_id("recovery-code")).to_have_count(10)
    expect(page.get_by_test_id("two-factor-state")).to_have_text("On")
    shot(page, "recovery-codes")
    page.get_by_role("link", name="I have saved them").click()
    expect(page.get_by_test_id("codes-left")).to_contain_text("10 of 10")

    # Sign out, then in again: the password, then the code step before any page.
    page.get_by_role("button", name="Log out").click()
    page.fill("#id_username", "shop-admin")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Two-factor code")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    page.get_by_label("Code").fill(f"{(int(app_code(secret)) + 1) % 1_000_000:06d}")  # a typo
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_test_id("code-error")).to_contain_text("That code is not right")
    shot(page, "code-step")
    page.wait_for_timeout(2100)  # a wrong code makes the next one wait a second (more on a busy machine)
    page.get_by_label("Code").fill(app_code(secret, steps_ahead=1))
    page.get_by_role("button", name="Verify").click()
    nav = page.get_by_role("navigation", name="Main")
    expect(nav).to_be_visible()

    # Settings › Security: require two-factor of everyone.
    nav.get_by_role("link", name="Security").click()
    expect(page.get_by_role("heading", name="Security")).to_be_visible()
    rows = page.get_by_test_id("member-row")
    expect(rows.filter(has_text="shop-admin")).to_contain_text("On")
    expect(rows.filter(has_text="shop-marketer")).to_contain_text("Off")
    page.get_by_label("Require two-factor authentication").check()
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status").filter(has_text="Two-factor authentication is required")
           ).to_be_visible()
    expect(page.get_by_label("Require two-factor authentication")).to_be_checked()
    shot(page, "security")
    assert Company.objects.get(pk=company.pk).require_two_factor

    # A member without two-factor signs in next: set it up first, nothing else.
    page.get_by_role("button", name="Log out").click()
    page.fill("#id_username", "shop-marketer")
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_test_id("two-factor-required")).to_have_text(
        "Green Leaf requires two-factor authentication. Set it up to continue.")
    expect(page.get_by_role("navigation", name="Main")).to_have_count(0)
    shot(page, "enrolment-required")
