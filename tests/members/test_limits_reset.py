"""The customer-page tests reset their own send limits without emptying the Redis database
the other test processes and the Celery broker share with them."""

from django.core.cache import cache

from .sign_in_helpers import send_limits_reset


def test_send_limits_reset_leaves_other_keys_alone():
    client = cache._cache.get_client(None, write=True)
    cache.set("members:send:phone:1:+13035550100", 3, 60)
    client.set("celery-gw-test-queue-stand-in", "a queued task", ex=60)  # not this process's key
    cache.set("health:worker", "heartbeat", 60)
    try:
        send_limits_reset()
        assert cache.get("members:send:phone:1:+13035550100") is None
        assert client.get("celery-gw-test-queue-stand-in") == b"a queued task"
        assert cache.get("health:worker") == "heartbeat"
    finally:
        client.delete("celery-gw-test-queue-stand-in")
        cache.delete("health:worker")
