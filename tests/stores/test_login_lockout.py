"""Failed passwords lock the account, and the address they come from, for a cool-off; the
login page then says when to try again."""

import datetime as dt
import zoneinfo

import pytest
import time_machine
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.urls import reverse

from tests.factories import PASSWORD, UserFactory

PACIFIC = zoneinfo.ZoneInfo("America/Los_Angeles")  # the server's TIME_ZONE in tests
AFTERNOON = dt.datetime(2026, 12, 4, 15, 27, tzinfo=PACIFIC)


def sign_in(client, username, password, *, address="203.0.113.5", **headers):
    return client.post(reverse("login"), {"username": username, "password": password},
                       REMOTE_ADDR=address, **headers)


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


def test_login_lockout_after_five_failures_even_with_the_right_password(client, admin_user):
    with time_machine.travel(AFTERNOON, tick=False) as clock:
        # given four wrong passwords: each is an ordinary "wrong password" page
        for _ in range(4):
            response = sign_in(client, admin_user.username, "wrong-password")
            assert response.status_code == 200
            assert "Please enter a correct username and password" in response.content.decode()

        # when the fifth is wrong too
        response = sign_in(client, admin_user.username, "wrong-password")

        # then the login page says the account is locked and until when, as a 429
        page = response.content.decode()
        assert response.status_code == 429
        assert "Too many failed sign-ins. Try again after 15:42 (in 15 minutes)." in page
        assert 'id="id_password"' in page  # the login page, not a bare message

        # and the right password is refused too, without moving the time the page promised
        clock.shift(dt.timedelta(minutes=5))
        response = sign_in(client, admin_user.username, PASSWORD)
        assert response.status_code == 429
        assert "Try again after 15:42 (in 10 minutes)." in response.content.decode()
        assert not signed_in(client)

        # when the cool-off has passed, the right password signs in
        clock.move_to(AFTERNOON + dt.timedelta(minutes=15, seconds=1))
        response = sign_in(client, admin_user.username, PASSWORD)
        assert response.status_code == 302 and response["Location"] == reverse("home")
        assert signed_in(client)


def test_login_lockout_per_address_across_accounts(client, admin_user):
    with time_machine.travel(AFTERNOON, tick=False):
        # given one address trying five different accounts, one wrong password each
        for n in range(5):
            sign_in(client, f"someone{n}", "guess-123456")

        # when a real member signs in from that address with the right password
        response = sign_in(client, admin_user.username, PASSWORD)

        # then the address is locked
        assert response.status_code == 429
        assert "Too many failed sign-ins." in response.content.decode()
        assert not signed_in(client)

        # and the same member from another address signs in
        response = sign_in(client, admin_user.username, PASSWORD, address="198.51.100.20")
        assert response.status_code == 302 and signed_in(client)


def test_login_lockout_per_account_across_addresses(client, admin_user):
    with time_machine.travel(AFTERNOON, tick=False):
        # given one account attacked from five addresses, once each
        for n in range(5):
            sign_in(client, admin_user.username, "guess-123456", address=f"192.0.2.{n + 1}")

        # when its owner signs in from yet another address
        response = sign_in(client, admin_user.username, PASSWORD, address="198.51.100.20")

        # then the account is locked
        assert response.status_code == 429 and not signed_in(client)

        # and another account is not, from any of those addresses
        other = UserFactory()
        response = sign_in(client, other.username, PASSWORD, address="192.0.2.1")
        assert response.status_code == 302 and signed_in(client)


def test_login_lockout_goes_by_the_address_the_trusted_proxy_saw(client, admin_user, settings):
    settings.TRUSTED_PROXIES = 1
    proxy = "10.0.0.1"
    with time_machine.travel(AFTERNOON, tick=False):
        # given one client behind the proxy trying five accounts, making up a new
        # X-Forwarded-For start each time
        for n in range(5):
            sign_in(client, f"someone{n}", "guess-123456", address=proxy,
                    HTTP_X_FORWARDED_FOR=f"10.9.9.{n}, 198.51.100.7")

        # when it tries a real account with the right password
        locked = sign_in(client, admin_user.username, PASSWORD, address=proxy,
                         HTTP_X_FORWARDED_FOR="10.9.9.99, 198.51.100.7")

        # then it is locked by the address the proxy saw; another client of the proxy is not
        assert locked.status_code == 429
        other = sign_in(client, admin_user.username, PASSWORD, address=proxy,
                        HTTP_X_FORWARDED_FOR="198.51.100.8")
        assert other.status_code == 302 and signed_in(client)


@pytest.mark.parametrize(("password", "says"), [
    ("short-pw1", "at least 10 characters"),
    ("12345678901234", "entirely numeric"),
    ("password1234", "too common"),
    ("greenleaf-owner", "too similar to the username"),
])
def test_password_validators_refuse_weak_passwords(db, password, says):
    user = UserFactory.build(username="greenleaf-owner")
    with pytest.raises(ValidationError) as refused:
        validate_password(password, user=user)
    assert says in " ".join(refused.value.messages)


def test_password_validators_accept_a_long_passphrase(db):
    validate_password("copper-lantern-river-42", user=UserFactory.build(username="dana"))
