"""Two-factor authentication: setting it up, the code step of signing in, recovery codes,
and a company requiring it of everyone."""

import datetime as dt
from base64 import b32encode

import pytest
import time_machine
from django.test import Client
from django.urls import reverse
from django_otp.oath import totp
from django_otp.plugins.otp_static.models import StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

from stores.errors import DomainError
from stores.models import Role
from stores.services import company_two_factor_require, two_factor_enrol_confirm, two_factor_enrol_start
from tests.factories import PASSWORD, MembershipFactory

START = dt.datetime(2026, 12, 4, 15, 0, tzinfo=dt.UTC)


def code(device) -> str:
    """What the member's app shows now."""
    return f"{totp(device.bin_key):06d}"


def wrong(device) -> str:
    return f"{(int(code(device)) + 1) % 1_000_000:06d}"


def sign_in_with_password(client, user):
    return client.post(reverse("login"), {"username": user.username, "password": PASSWORD})


def is_verified(client) -> bool:
    """Past the code step: the dashboard opens instead of sending them back."""
    return client.get(reverse("home")).status_code == 200


@pytest.fixture
def clock():
    # Each TOTP code works once: moving the clock 30 seconds gives the app's next code.
    with time_machine.travel(START, tick=False) as traveller:
        yield traveller


def enrol(user, clock):
    device = two_factor_enrol_start(user=user)
    device, codes = two_factor_enrol_confirm(user=user, code=code(device))
    clock.shift(30)
    return device, codes


def test_two_factor_enrol_confirm_needs_a_valid_code(admin_client, admin_user, clock):
    # given the Two-factor authentication page, reached from the header
    home = admin_client.get(reverse("home")).content.decode()
    assert f'href="{reverse("two_factor")}">Two-factor authentication</a>' in home
    page = admin_client.get(reverse("two_factor"))
    text = page.content.decode()
    device = TOTPDevice.objects.get(user=admin_user)
    assert not device.confirmed
    assert "<svg" in text and "QR code for your authenticator app" in text
    secret = b32encode(device.bin_key).decode()
    shown = text.split('data-testid="totp-secret">', 1)[1].split("<", 1)[0]
    assert shown.replace(" ", "") == secret
    assert page["Cache-Control"] == "no-store"

    # when a wrong code is typed
    response = admin_client.post(reverse("two_factor_confirm"), {"code": wrong(device)})

    # then two-factor stays off and the page says why
    assert response.status_code == 400
    assert "That code is not right" in response.content.decode()
    device.refresh_from_db()
    assert not device.confirmed and not StaticToken.objects.filter(device__user=admin_user).exists()

    # when the app's code is typed (after the one-second wait a wrong code costs)
    clock.shift(2)
    response = admin_client.post(reverse("two_factor_confirm"), {"code": code(device)})

    # then it is on, ten recovery codes are shown once, and this session counts as verified
    text = response.content.decode()
    assert response.status_code == 200
    device.refresh_from_db()
    assert device.confirmed
    shown_codes = [part.split("<", 1)[0] for part in text.split('data-testid="recovery-code">')[1:]]
    assert len(shown_codes) == 10
    assert sorted(shown_codes) == sorted(StaticToken.objects.filter(device__user=admin_user)
                                         .values_list("token", flat=True))
    assert is_verified(admin_client)
    again = admin_client.get(reverse("two_factor")).content.decode()
    assert 'data-testid="recovery-code"' not in again and "10 of 10 recovery codes left" in again


def test_two_factor_verify_is_asked_after_the_password_before_any_page(client, admin_user, clock):
    device, _ = enrol(admin_user, clock)

    # when the member signs in with their password
    response = sign_in_with_password(client, admin_user)

    # then every page sends them to the code step, which has no navigation
    assert response.status_code == 302
    for name in ("home", "persona_list", "store_list", "security_settings", "two_factor"):
        sent = client.get(reverse(name))
        assert sent.status_code == 302 and sent["Location"].startswith(reverse("login_code")), name
    step = client.get(reverse("login_code"))
    assert step.status_code == 200 and 'aria-label="Main"' not in step.content.decode()

    # when a wrong code is typed
    response = client.post(reverse("login_code"), {"code": wrong(device)})

    # then it is refused
    assert response.status_code == 400 and "That code is not right" in response.content.decode()
    assert not is_verified(client)

    # when the app's code is typed, they reach the page they asked for
    clock.shift(2)
    response = client.post(reverse("login_code"), {"code": code(device), "next": reverse("persona_list")})
    assert response.status_code == 302 and response["Location"] == reverse("persona_list")
    assert is_verified(client)


def test_two_factor_verify_waits_longer_after_each_wrong_code(client, admin_user, clock):
    device, _ = enrol(admin_user, clock)
    sign_in_with_password(client, admin_user)

    # given two wrong codes in a row
    client.post(reverse("login_code"), {"code": wrong(device)})
    response = client.post(reverse("login_code"), {"code": wrong(device)})

    # then the second is not even tried, and the right one must wait too
    assert response.status_code == 429
    assert "Too many wrong codes. Wait 1 second and try again." in response.content.decode()
    clock.shift(1)
    client.post(reverse("login_code"), {"code": wrong(device)})  # a second wrong one: 2 s
    response = client.post(reverse("login_code"), {"code": code(device)})
    assert response.status_code == 429 and not is_verified(client)

    # when the wait is over, the right code works
    clock.shift(2)
    response = client.post(reverse("login_code"), {"code": code(device)})
    assert response.status_code == 302 and is_verified(client)


def test_two_factor_verify_recovery_code_works_once(client, admin_user, clock):
    _, codes = enrol(admin_user, clock)
    recovery = codes[0]

    # given a member without their phone, signing in with a recovery code
    sign_in_with_password(client, admin_user)
    response = client.post(reverse("login_code"), {"code": recovery.upper()[:4] + "-" + recovery[4:]})
    assert response.status_code == 302
    assert "You signed in with a recovery code; 9 left." in client.get(reverse("home")).content.decode()

    # when they sign out and try the same code again
    client.post(reverse("logout"))
    clock.shift(5)
    sign_in_with_password(client, admin_user)
    response = client.post(reverse("login_code"), {"code": recovery})

    # then it is refused: it was used
    assert response.status_code == 400 and not is_verified(client)
    assert StaticToken.objects.filter(device__user=admin_user).count() == 9


def test_recovery_codes_regenerate_replaces_the_old_ones(client, admin_user, clock):
    device, old_codes = enrol(admin_user, clock)
    sign_in_with_password(client, admin_user)
    client.post(reverse("login_code"), {"code": code(device)})

    # when the member makes new recovery codes
    response = client.post(reverse("two_factor_recovery_codes"))

    # then ten new ones are shown and the old ones no longer exist
    assert response.status_code == 200
    text = response.content.decode()
    assert text.count('data-testid="recovery-code"') == 10
    tokens = set(StaticToken.objects.filter(device__user=admin_user).values_list("token", flat=True))
    assert len(tokens) == 10 and not tokens & set(old_codes)


def test_two_factor_disable_needs_a_current_code(client, admin_user, clock):
    device, _ = enrol(admin_user, clock)
    sign_in_with_password(client, admin_user)
    client.post(reverse("login_code"), {"code": code(device)})
    clock.shift(30)

    # when a wrong code is typed, two-factor stays on
    response = client.post(reverse("two_factor_disable"), {"code": wrong(device)})
    assert response.status_code == 400 and TOTPDevice.objects.filter(user=admin_user).exists()

    # when a current code is typed, it is off and signing in needs only the password
    clock.shift(2)
    response = client.post(reverse("two_factor_disable"), {"code": code(device)})
    assert response.status_code == 302
    assert not TOTPDevice.objects.filter(user=admin_user).exists()
    assert not StaticToken.objects.filter(device__user=admin_user).exists()
    client.post(reverse("logout"))
    sign_in_with_password(client, admin_user)
    assert is_verified(client)


def test_two_factor_disable_refused_while_the_company_requires_it(client, company, admin_user, clock):
    device, _ = enrol(admin_user, clock)
    company_two_factor_require(company=company, required=True, by=admin_user)
    sign_in_with_password(client, admin_user)
    client.post(reverse("login_code"), {"code": code(device)})
    clock.shift(30)

    page = client.get(reverse("two_factor")).content.decode()
    assert "Green Leaf requires two-factor authentication, so it stays on." in page
    response = client.post(reverse("two_factor_disable"), {"code": code(device)})
    assert response.status_code == 400
    assert "Green Leaf requires two-factor authentication" in response.content.decode()
    assert TOTPDevice.objects.filter(user=admin_user, confirmed=True).exists()


def test_company_two_factor_require_sends_members_without_it_to_set_it_up(client, company, admin_user,
                                                                          marketer_user, clock):
    # given an admin requiring two-factor on Settings › Security
    admin_client = Client()
    admin_client.force_login(admin_user)
    response = admin_client.post(reverse("security_settings"), {"require_two_factor": "on"})
    assert response.status_code == 302
    company.refresh_from_db()
    assert company.require_two_factor

    # when a marketer without it signs in
    response = sign_in_with_password(client, marketer_user)

    # then every page sends them to set it up, which says why
    assert response.status_code == 302
    for name in ("home", "persona_list", "audience_list", "analytics"):
        sent = client.get(reverse(name))
        assert sent.status_code == 302 and sent["Location"].startswith(reverse("two_factor")), name
    htmx = client.get(reverse("persona_list"), HTTP_HX_REQUEST="true")
    assert htmx["HX-Redirect"] == reverse("two_factor")
    page = client.get(reverse("two_factor"))
    assert page.status_code == 200
    assert "Green Leaf requires two-factor authentication. Set it up to continue." in page.content.decode()
    # the POS API is not a session: not sent anywhere
    assert client.get(reverse("pos_ping")).status_code in (401, 403)

    # when they set it up, every page opens again
    device = TOTPDevice.objects.get(user=marketer_user)
    response = client.post(reverse("two_factor_confirm"), {"code": code(device)})
    assert response.status_code == 200
    assert client.get(reverse("persona_list")).status_code == 200


def test_company_two_factor_require_sends_a_signed_in_member_with_a_device_to_the_code_step(
        client, company, admin_user, marketer_user, clock):
    # given a member with two-factor whose session never gave a code
    enrol(marketer_user, clock)
    client.force_login(marketer_user)

    # then pages wait for the code, whether or not the company requires it
    assert client.get(reverse("persona_list"))["Location"].startswith(reverse("login_code"))
    company_two_factor_require(company=company, required=True, by=admin_user)
    assert client.get(reverse("persona_list"))["Location"].startswith(reverse("login_code"))


def test_security_settings_is_for_admins_only(client, company, marketer_user, budtender_user):
    for user in (marketer_user, budtender_user):
        client.force_login(user)
        assert client.get(reverse("security_settings")).status_code == 403
        assert client.post(reverse("security_settings"), {"require_two_factor": "on"}).status_code == 403
    company.refresh_from_db()
    assert not company.require_two_factor


def test_company_two_factor_require_by_a_non_admin_is_refused(company, marketer_user):
    with pytest.raises(DomainError, match="Only an admin"):
        company_two_factor_require(company=company, required=True, by=marketer_user)
    company.refresh_from_db()
    assert not company.require_two_factor


def test_company_two_factor_require_in_another_company_leaves_this_one_alone(
        client, company, other_company, marketer_user):
    # given another company's admin requiring two-factor there
    other_admin = MembershipFactory(company=other_company, role=Role.ADMIN).user
    client.force_login(other_admin)
    assert client.post(reverse("security_settings"), {"require_two_factor": "on"}).status_code == 302

    # then only that company requires it; this company's members browse as before
    other_company.refresh_from_db()
    company.refresh_from_db()
    assert other_company.require_two_factor and not company.require_two_factor
    client.force_login(marketer_user)
    assert client.get(reverse("persona_list")).status_code == 200


def test_security_settings_lists_members_and_their_two_factor(admin_client, admin_user, marketer_user,
                                                              other_company, clock):
    enrol(marketer_user, clock)
    MembershipFactory(company=other_company, user__username="stranger")

    page = admin_client.get(reverse("security_settings")).content.decode()

    rows = page.split('data-testid="member-row"')[1:]
    assert len(rows) == 2 and "stranger" not in page
    mine = {row.split('class="strong">', 1)[1].split("<", 1)[0]: row for row in rows}
    assert 'badge-ok">On' in mine[marketer_user.username]
    assert ">Off<" in mine[admin_user.username]


def test_two_factor_enrol_confirm_refused_when_already_on(admin_user, clock):
    # given two-factor on, and a second set-up started behind the page's back
    device, _ = enrol(admin_user, clock)
    TOTPDevice.objects.create(user=admin_user, name="Another phone", confirmed=False)

    # then confirming it is refused and the first app keeps working
    with pytest.raises(DomainError, match="already on"):
        two_factor_enrol_confirm(user=admin_user, code="123456")
    assert TOTPDevice.objects.get(user=admin_user, confirmed=True) == device


def test_company_two_factor_require_turned_off_with_the_box_unticked(client, company, admin_user, clock):
    # given a company that requires two-factor, and its admin signed in with a code
    enrol(admin_user, clock)
    company_two_factor_require(company=company, required=True, by=admin_user)
    admin_client = Client()
    admin_client.force_login(admin_user)
    device = TOTPDevice.objects.get(user=admin_user)
    admin_client.post(reverse("login_code"), {"code": code(device)})

    # when the admin unticks "Require two-factor" and saves (a form with no fields set)
    response = admin_client.post(reverse("security_settings"), {})

    # then the company stops requiring it
    assert response.status_code == 302
    company.refresh_from_db()
    assert not company.require_two_factor
