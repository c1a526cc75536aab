import pytest
from django.core.cache import cache


@pytest.fixture(autouse=True)
def fresh_limits():
    """The sign-in send limits (kept in the cache) start at zero in every customer-page test."""
    cache.clear()  # this suite's own Redis db
    yield
    cache.clear()
