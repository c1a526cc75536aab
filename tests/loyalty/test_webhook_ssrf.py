"""Webhooks never reach private or local addresses: a private URL is refused on the
endpoint form, and a delivery whose URL points there when it is sent (saved before the
rule, or a name that rebinds) is recorded as blocked, sent to nobody, never retried, with
nothing of an internal answer kept or shown."""

import pytest
from django.urls import reverse

from config.celery import app as celery_app
from loyalty.errors import WebhookDeliveryFailed
from loyalty.models import WebhookDelivery, WebhookEndpoint
from loyalty.services import persona_enroll
from loyalty.services.webhooks import (
    webhook_delivery_attempt,
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_update,
    webhook_event_emit,
)
from stores.crypto import encrypt
from stores.errors import OutboundRefused
from tests.factories import PersonaFactory

INTERNAL_ANSWER = b"<h1>Site administration</h1> internal secret 0xC0FFEE"

PRIVATE_URLS = [
    ("http://127.0.0.1:8000/admin/", "127.0.0.1"),
    ("http://[::1]:8000/admin/", "::1"),
    ("http://10.0.0.1/hook", "10.0.0.1"),
    ("http://172.16.0.1/hook", "172.16.0.1"),
    ("http://192.168.1.1/hook", "192.168.1.1"),
    ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
    ("http://localhost:8000/admin/", "127.0.0.1"),
    ("http://[::ffff:127.0.0.1]:8000/", "::ffff:127.0.0.1"),
]


@pytest.fixture
def eager(monkeypatch):
    """Celery runs tasks, and their retries, in the calling thread."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


@pytest.fixture
def internal(local_server):
    """An internal service on 127.0.0.1 (not allow-listed) with something worth stealing."""
    return local_server(body=INTERNAL_ANSWER, headers={"Content-Type": "text/html"})


def legacy_endpoint(company, url, events=("persona.updated",)) -> WebhookEndpoint:
    """An endpoint saved before private URLs were refused (the service refuses them now)."""
    return WebhookEndpoint.objects.create(company=company, url=url, events=list(events),
                                          secret_encrypted=encrypt("s" * 32), is_active=True)


# -- at save, through the pages -------------------------------------------------------

@pytest.mark.parametrize(("url", "address"), PRIVATE_URLS)
def test_webhook_create_page_refuses_private_urls(admin_client, company, url, address, connect_attempts):
    # when an admin adds an endpoint at a private or local address
    response = admin_client.post(reverse("webhook_create"), {"url": url, "events": ["persona.updated"],
                                                             "is_active": "on"})
    # then the form says why, on the URL field, and nothing is saved or contacted
    page = response.content.decode()
    assert response.status_code == 400
    assert (f'<div class="field-error">Webhook URL {url} points at a private or local address ({address}); '
            "only public internet addresses are allowed.</div>") in page
    assert not WebhookEndpoint.objects.filter(company=company).exists()
    assert connect_attempts == []


def test_webhook_edit_page_refuses_a_private_url_and_keeps_the_old_one(admin_client, company):
    # given a working endpoint
    endpoint = webhook_endpoint_create(company=company, url="https://pos.example.com/hook",
                                       events=["points.changed"])
    # when its URL is changed to the metadata service (htmx form)
    data = {"url": "http://169.254.169.254/latest/", "events": ["points.changed"], "is_active": "on"}
    response = admin_client.post(reverse("webhook_edit", args=[endpoint.pk]), data, HTTP_HX_REQUEST="true")
    # then the form comes back with the reason and the endpoint keeps its URL
    assert response.status_code == 200
    assert "points at a private or local address (169.254.169.254)" in response.content.decode()
    endpoint.refresh_from_db()
    assert endpoint.url == "https://pos.example.com/hook"


def test_webhook_endpoint_update_refuses_a_name_resolving_to_loopback(company, fake_dns):
    endpoint = webhook_endpoint_create(company=company, url="https://pos.example.com/hook",
                                       events=["points.changed"])
    fake_dns["pos-internal.example.com"] = ["127.0.0.1"]
    with pytest.raises(OutboundRefused) as caught:
        webhook_endpoint_update(endpoint=endpoint, url="https://pos-internal.example.com/hook")
    assert caught.value.extra["field"] == "url" and caught.value.extra["address"] == "127.0.0.1"
    endpoint.refresh_from_db()
    assert endpoint.url == "https://pos.example.com/hook"


# -- at send --------------------------------------------------------------------------

def test_webhook_enroll_to_a_loopback_endpoint_is_blocked_and_shows_nothing_internal(
        admin_client, company, internal, eager, django_capture_on_commit_callbacks):
    # given an endpoint at the internal admin, saved before the rule existed
    endpoint = legacy_endpoint(company, internal.url("/admin/"))
    guest = PersonaFactory(company=company, is_member=False, enrolled_at=None)
    # when enrolling a persona triggers a delivery (tasks and retries run here)
    with django_capture_on_commit_callbacks(execute=True):
        persona_enroll(company=company, persona_id=guest.pk)
    # then the delivery is blocked after one attempt, with the reason and no answer kept
    delivery = WebhookDelivery.objects.get(endpoint=endpoint)
    assert (delivery.state, delivery.attempts, delivery.response_status, delivery.response_body) == (
        "blocked", 1, None, "")
    assert delivery.error == (f"Blocked: The URL {internal.url('/admin/')} points at a private or local "
                              "address (127.0.0.1); only public internet addresses are allowed.")
    # and the internal service never saw a request
    assert internal.requests == []
    # and the delivery page says blocked, and why, and shows nothing of the internal answer
    page = admin_client.get(reverse("webhook_delivery_detail", args=[delivery.pk])).content.decode()
    assert "Blocked</span>" in page and "points at a private or local address (127.0.0.1)" in page
    assert "internal secret" not in page and "Site administration" not in page
    log = admin_client.get(reverse("webhook_detail", args=[endpoint.pk])).content.decode()
    assert "Blocked</span>" in log


def test_webhook_name_rebinding_to_loopback_is_blocked_at_send(company, internal, fake_dns):
    # given a name that was public when the endpoint was saved...
    answers = iter([["93.184.216.34"]])
    fake_dns["pos.example.com"] = lambda: next(answers, ["127.0.0.1"])
    webhook_endpoint_create(company=company, url=f"http://pos.example.com:{internal.port}/hook",
                            events=["points.changed"])
    [delivery] = webhook_event_emit(company=company, event="points.changed", payload={"persona_id": 1})
    # ...and points at 127.0.0.1 when the delivery is sent
    delivery = webhook_delivery_attempt(delivery.pk)
    # then it is blocked and nothing reached the internal service
    assert delivery.state == "blocked" and "(127.0.0.1)" in delivery.error
    assert internal.requests == [] and delivery.response_body == ""


@pytest.mark.parametrize("address", ["10.0.0.1", "172.16.0.1", "192.168.1.1", "169.254.169.254"])
def test_webhook_to_a_private_network_is_blocked_without_connecting(company, address, connect_attempts):
    legacy_endpoint(company, f"http://{address}/latest/meta-data/", events=["points.changed"])
    [delivery] = webhook_event_emit(company=company, event="points.changed", payload={"persona_id": 1})
    delivery = webhook_delivery_attempt(delivery.pk)
    assert delivery.state == "blocked" and f"({address})" in delivery.error
    assert connect_attempts == []


def test_webhook_blocked_delivery_resent_is_blocked_again(company, internal, eager,
                                                         django_capture_on_commit_callbacks):
    legacy_endpoint(company, internal.url("/hook"), events=["points.changed"])
    [delivery] = webhook_event_emit(company=company, event="points.changed", payload={"persona_id": 1})
    webhook_delivery_attempt(delivery.pk)
    with django_capture_on_commit_callbacks(execute=True):
        webhook_delivery_resend(delivery)
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("blocked", 2) and internal.requests == []


def test_webhook_redirect_to_an_internal_address_is_not_followed(company, internal, local_server,
                                                                 outbound_allow):
    # given an allow-listed receiver that answers with a redirect to the internal service
    front = local_server(status=302, headers={"Location": internal.url("/admin/")})
    outbound_allow(front.url())
    webhook_endpoint_create(company=company, url=front.url("/hook"), events=["points.changed"])
    [delivery] = webhook_event_emit(company=company, event="points.changed", payload={"persona_id": 1})
    # when it is sent
    with pytest.raises(WebhookDeliveryFailed):  # a 302 is a failed attempt: the task retries it
        webhook_delivery_attempt(delivery.pk)
    # then the receiver got it, the internal service did not, and nothing of it is stored
    delivery.refresh_from_db()
    assert front.requests == [("POST", "/hook")] and internal.requests == []
    assert delivery.response_status == 302 and "internal secret" not in delivery.response_body
