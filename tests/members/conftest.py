import pytest

from .sign_in_helpers import send_limits_reset


@pytest.fixture(autouse=True)
def fresh_limits():
    """The sign-in send limits start at zero in every customer-page test."""
    send_limits_reset()
    yield
    send_limits_reset()
