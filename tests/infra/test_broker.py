"""RabbitMQ as the Celery broker: CELERY_BROKER_URL=amqp://... while Redis stays the cache.
A real worker process takes a real task from a real RabbitMQ and its effect lands in the
database. Skipped, saying why, where no RabbitMQ listens."""

import os
import subprocess
import sys
import uuid

import pytest
from django.test import override_settings
from kombu import Connection

from loyalty.models import WebhookDelivery
from loyalty.services.webhooks import webhook_endpoint_create

from .childproc import ROOT, database_url, manage, reachable, wait_for

AMQP_HOST, AMQP_PORT = "127.0.0.1", 5672
AMQP_URL = os.environ.get("TEST_AMQP_URL", f"amqp://guest:guest@{AMQP_HOST}:{AMQP_PORT}//")

PUBLISH = """
from loyalty.tasks import webhook_deliver
from config.celery import app
print(app.connection_for_write().transport_cls)
webhook_deliver.apply_async(({delivery},), queue={queue!r})
"""


@pytest.fixture
def rabbitmq():
    why = reachable(AMQP_HOST, AMQP_PORT)
    if why:
        pytest.skip(f"no RabbitMQ for the broker test: {why}")
    return AMQP_URL


@pytest.fixture
def queue(rabbitmq):
    """A queue of this run's own, so parallel runs on one RabbitMQ never take each other's tasks."""
    name = f"loyalty-test-{uuid.uuid4().hex[:12]}"
    yield name
    with Connection(rabbitmq) as conn:
        conn.default_channel.queue_delete(name)


def queue_exists_in_rabbitmq(url: str, name: str) -> bool:
    with Connection(url) as conn:
        try:
            conn.default_channel.queue_declare(name, passive=True)
        except conn.channel_errors:  # 404 NOT_FOUND: nothing ever declared it there
            return False
    return True


@pytest.mark.django_db(transaction=True)
def test_celery_on_rabbitmq_delivers_a_webhook_through_a_real_worker(company, rabbitmq, queue, local_server):
    # given a webhook endpoint at a local receiver and a delivery waiting to be sent
    receiver = local_server(status=204)
    endpoint_host = f"127.0.0.1:{receiver.port}"
    with override_settings(OUTBOUND_ALLOW_HOSTS=[endpoint_host]):
        endpoint = webhook_endpoint_create(company=company, url=receiver.url("/hooks"),
                                           events=["points.changed"])
    delivery = WebhookDelivery.objects.create(endpoint=endpoint, event="points.changed",
                                              payload={"persona_id": 1, "points_balance": 10})
    env = {"DATABASE_URL": database_url(), "CELERY_BROKER_URL": rabbitmq,
           "OUTBOUND_ALLOW_HOSTS": endpoint_host}

    # and a Celery worker on RabbitMQ, on this run's queue
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "config", "worker", "-Q", queue, "--pool", "solo",
         "--without-gossip", "--without-mingle", "--without-heartbeat", "-l", "info"],
        cwd=ROOT, env=os.environ | env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # when another process (the web's side) queues the task with the project's settings
        published = manage("shell", "-c", PUBLISH.format(delivery=delivery.pk, queue=queue), env=env)
        assert published.returncode == 0, published.stderr

        # then the worker sends it and records it delivered
        delivered = wait_for(lambda: WebhookDelivery.objects.get(pk=delivery.pk).state == "delivered",
                             timeout=60)
        assert worker.poll() is None, "the worker stopped early"
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0]
    assert delivered, f"not delivered; the worker said:\n{output}"
    delivery.refresh_from_db()
    assert (delivery.response_status, delivery.attempts) == (204, 1)
    assert receiver.requests == [("POST", "/hooks")]
    # through RabbitMQ, not the Redis that is still the cache
    assert "amqp" in published.stdout.lower()
    assert "transport:   amqp://guest:**@127.0.0.1:5672//" in output
    assert queue_exists_in_rabbitmq(rabbitmq, queue)


SHOW = ("import django; django.setup(); from django.conf import settings; "
        "print(settings.CELERY_BROKER_URL); print(settings.CACHES['default']['LOCATION'])")


def test_broker_url_is_its_own_setting_and_redis_stays_the_cache():
    def started(**env):
        environment = {k: v for k, v in os.environ.items() if k != "CELERY_BROKER_URL"} | env
        result = subprocess.run([sys.executable, "-c", SHOW], env=environment, capture_output=True,
                                text=True, cwd=ROOT, timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    # unset: the broker is Redis, the cache's server
    assert started(REDIS_URL="redis://127.0.0.1:6379/7") == ["redis://127.0.0.1:6379/7"] * 2
    # set: RabbitMQ for tasks, Redis still for the cache
    assert started(REDIS_URL="redis://127.0.0.1:6379/7", CELERY_BROKER_URL="amqp://u:p@mq:5672/loyalty") == [
        "amqp://u:p@mq:5672/loyalty", "redis://127.0.0.1:6379/7"]
