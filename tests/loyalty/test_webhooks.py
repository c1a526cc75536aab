"""Level-2 webhooks: endpoints, points.changed / persona.updated events, signed deliveries
to a real local HTTP receiver, retries with backoff, resend, and the admin pages."""

import datetime as dt
import json
import socket
import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from unittest import mock

import pytest
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from config.celery import app as celery_app
from loyalty.errors import InvalidWebhookEndpoint, WebhookDeliveryFailed
from loyalty.locks import persona_lock
from loyalty.models import PointsEntry, WebhookDelivery
from loyalty.services import (
    LineItemData,
    TransactionData,
    persona_enroll,
    points_adjust,
    transaction_record,
)
from loyalty.services.points import entry_append_locked, personas_save_derived_locked
from loyalty.services.webhooks import (
    webhook_deliveries_requeue,
    webhook_delivery_attempt,
    webhook_delivery_resend,
    webhook_endpoint_create,
    webhook_endpoint_update,
    webhook_event_emit,
    webhook_signature_header,
    webhook_signature_verify,
)
from loyalty.tasks import WEBHOOK_MAX_ATTEMPTS, webhook_deliver
from stores.models import Role
from tests.factories import MembershipFactory, PersonaFactory, SourceFactory

# --- a real HTTP receiver ------------------------------------------------------------


class Receiver:
    """A POS stand-in: records every POST and answers with `status`."""

    def __init__(self):
        self.requests: list[dict] = []
        self.status = 200
        self.reply = b'{"ok": true}'
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.requests.append({"path": self.path, "headers": dict(self.headers),
                                          "body": body})
                self.send_response(receiver.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(receiver.reply)))
                self.end_headers()
                self.wfile.write(receiver.reply)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05},
                                       daemon=True)

    def url(self, path="/pos"):
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def to(self, path):
        return [r for r in self.requests if r["path"] == path]


@pytest.fixture
def receiver(monkeypatch, outbound_allow):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    r = Receiver()
    outbound_allow(r.url())  # a local server: let this test's deliveries reach it
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


@pytest.fixture
def eager(monkeypatch):
    """Celery runs tasks (and their retries, without waiting) in the calling thread. Errors
    are not propagated: a retry is one (the delivery rows say what happened)."""
    monkeypatch.setitem(celery_app.conf, "task_always_eager", True)


@pytest.fixture
def persona(company):
    return PersonaFactory(company=company)


@pytest.fixture
def endpoint(company, receiver):
    return webhook_endpoint_create(company=company, url=receiver.url("/pos"), events=["points.changed"])


def body_of(request) -> dict:
    return json.loads(request["body"])


# --- endpoints -----------------------------------------------------------------------

def test_webhook_endpoint_create_generates_a_secret_and_validates(company):
    # when an endpoint is created without a secret
    endpoint = webhook_endpoint_create(company=company, url=" https://pos.example/hook ",
                                       events=["redemption.changed", "points.changed"])
    # then one is generated and the events keep the canonical order
    assert len(endpoint.secret_plain()) >= 40 and endpoint.url == "https://pos.example/hook"
    assert endpoint.events == ["points.changed", "redemption.changed"]
    # and bad input is refused with the field named
    for kwargs, field in [({"url": "ftp://pos.example/hook"}, "url"), ({"url": "pos.example"}, "url"),
                          ({"events": ["points.changed", "nope"]}, "events"), ({"events": []}, "events"),
                          ({"url": "https://pos.example/hook"}, "url")]:  # already taken
        args = {"company": company, "url": "https://other.example/h", "events": ["points.changed"]} | kwargs
        with pytest.raises(InvalidWebhookEndpoint) as exc:
            webhook_endpoint_create(**args)
        assert exc.value.extra["field"] == field


# --- points.changed ------------------------------------------------------------------

def test_webhook_points_adjust_delivers_a_signed_request(company, persona, admin_user, receiver,
                                                         endpoint, eager, django_capture_on_commit_callbacks):
    # given an endpoint on points.changed, and one that only wants persona.updated
    webhook_endpoint_create(company=company, url=receiver.url("/other"), events=["persona.updated"])
    # when staff add points and the change commits
    with django_capture_on_commit_callbacks(execute=True):
        points_adjust(company=company, persona_id=persona.pk, delta=120, staff_user=admin_user,
                      reason="Welcome")
    # then exactly one request reached the subscribed endpoint
    assert receiver.to("/other") == []
    [request] = receiver.to("/pos")
    headers, raw = request["headers"], request["body"]
    delivery = WebhookDelivery.objects.get()
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Loyalty-Event"] == "points.changed"
    assert headers["X-Loyalty-Delivery"] == str(delivery.pk)
    # signed with the endpoint's secret, over the raw body, with a fresh timestamp
    assert webhook_signature_verify(endpoint.secret_plain(), headers["X-Loyalty-Signature"], raw)
    assert not webhook_signature_verify("another-secret", headers["X-Loyalty-Signature"], raw)
    timestamp = int(headers["X-Loyalty-Signature"].split(",")[0].removeprefix("t="))
    assert abs(time.time() - timestamp) < 60
    # carrying the new balance
    body = json.loads(raw)
    assert body["id"] == delivery.pk and body["event"] == "points.changed" and body["created_at"]
    assert body["data"] == {"persona_id": persona.pk, "points_balance": 120, "lifetime_points": 120}
    # and the delivery is logged as delivered
    assert (delivery.state, delivery.attempts, delivery.response_status) == ("delivered", 1, 200)
    assert delivery.response_body == '{"ok": true}' and delivery.delivered_at is not None


def test_webhook_sale_emits_points_changed(company, persona, receiver, endpoint, eager,
                                           django_capture_on_commit_callbacks):
    # given a subscribed endpoint
    # when a $40 sale is recorded for a member (1 point per dollar)
    data = TransactionData(
        external_id="R-1", occurred_at=timezone.now(), store_id=None, persona_id=persona.pk,
        subtotal=Decimal("40"), discount_total=Decimal("0"), tax_total=Decimal("0"),
        total=Decimal("40"), status="completed",
        line_items=[LineItemData(product="Gummies", quantity=Decimal("1"), unit_price=Decimal("40"),
                                 total=Decimal("40"))], payments=[])
    source = SourceFactory(company=company)
    with django_capture_on_commit_callbacks(execute=True):
        transaction_record(company=company, source=source, data=data)
    # then the POS hears the earned points
    [request] = receiver.to("/pos")
    assert body_of(request)["data"]["points_balance"] == 40
    # and a resend of the same sale (nothing changes) sends nothing more
    with django_capture_on_commit_callbacks(execute=True):
        transaction_record(company=company, source=source, data=data)
    assert len(receiver.requests) == 1


def test_webhook_not_subscribed_or_off_gets_nothing(company, persona, admin_user, receiver, eager,
                                                    django_capture_on_commit_callbacks):
    # given one endpoint that wants only persona.updated and one that is off
    webhook_endpoint_create(company=company, url=receiver.url("/a"), events=["persona.updated"])
    webhook_endpoint_create(company=company, url=receiver.url("/b"), events=["points.changed"],
                            is_active=False)
    # when points change
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        points_adjust(company=company, persona_id=persona.pk, delta=5, staff_user=admin_user, reason="x")
    # then nothing is written or sent
    assert callbacks == [] and WebhookDelivery.objects.count() == 0 and receiver.requests == []


def test_webhook_other_company_endpoint_gets_nothing(company, other_company, persona, admin_user,
                                                     receiver, eager, django_capture_on_commit_callbacks):
    webhook_endpoint_create(company=other_company, url=receiver.url("/x"), events=["points.changed"])
    with django_capture_on_commit_callbacks(execute=True):
        points_adjust(company=company, persona_id=persona.pk, delta=5, staff_user=admin_user, reason="x")
    assert receiver.requests == [] and WebhookDelivery.objects.count() == 0


def test_webhook_rolled_back_change_sends_nothing(company, persona, admin_user, receiver, endpoint,
                                                  eager, django_capture_on_commit_callbacks):
    # given a subscribed endpoint
    # when a ledger write emits points.changed and then its transaction rolls back
    with django_capture_on_commit_callbacks(execute=True) as callbacks, \
            pytest.raises(RuntimeError), transaction.atomic():
        locked = persona_lock(company=company, persona_id=persona.pk)
        entry_append_locked(persona=locked, delta=50, kind=PointsEntry.Kind.ADJUST,
                            staff_user=admin_user, reason="x", idempotency_key="rollback-1")
        personas_save_derived_locked([locked])
        assert WebhookDelivery.objects.count() == 1  # written inside the transaction
        raise RuntimeError("the rest of the change failed")
    # then no delivery survives and nothing was queued or sent
    assert callbacks == [] and WebhookDelivery.objects.count() == 0 and receiver.requests == []


# --- retries, failure, resend --------------------------------------------------------

def test_webhook_receiver_500_is_retried_with_backoff_then_failed(company, persona, admin_user, receiver,
                                                                  endpoint, eager,
                                                                  django_capture_on_commit_callbacks):
    # given a POS that answers 500
    receiver.status, receiver.reply = 500, b"database is down"
    # when points change (the task retries eagerly, without waiting)
    with mock.patch.object(webhook_deliver, "retry", wraps=webhook_deliver.retry) as retry, \
            django_capture_on_commit_callbacks(execute=True):
        points_adjust(company=company, persona_id=persona.pk, delta=10, staff_user=admin_user, reason="x")
    # then it was tried 6 times, 30 s × 2^n apart, then marked failed with the status kept
    assert len(receiver.to("/pos")) == WEBHOOK_MAX_ATTEMPTS == 6
    assert [c.kwargs["countdown"] for c in retry.call_args_list] == [30, 60, 120, 240, 480]
    delivery = WebhookDelivery.objects.get()
    assert (delivery.state, delivery.attempts, delivery.response_status) == ("failed", 6, 500)
    assert "HTTP 500" in delivery.error and delivery.response_body == "database is down"
    # every attempt carried the same delivery id, each freshly signed
    ids = {r["headers"]["X-Loyalty-Delivery"] for r in receiver.requests}
    assert ids == {str(delivery.pk)}
    secret = endpoint.secret_plain()
    assert all(webhook_signature_verify(secret, r["headers"]["X-Loyalty-Signature"], r["body"])
               for r in receiver.requests)

    # when the POS is fixed and staff resend it
    receiver.status, receiver.reply = 204, b""
    with django_capture_on_commit_callbacks(execute=True):
        delivery = webhook_delivery_resend(delivery)
    # then it is delivered again, the same id and payload
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts, delivery.response_status, delivery.error) == (
        "delivered", 7, 204, "")
    last = receiver.requests[-1]
    assert last["headers"]["X-Loyalty-Delivery"] == str(delivery.pk)
    assert body_of(last)["data"]["points_balance"] == 10


def test_webhook_delivery_attempt_records_each_try(company, persona, receiver, endpoint):
    # given a pending delivery (emitted directly, not sent: on_commit never runs here)
    [delivery] = webhook_event_emit(company=company, event="points.changed",
                                    payload={"persona_id": persona.pk, "points_balance": 1,
                                             "lifetime_points": 1})
    receiver.status = 503
    # when it is attempted twice and fails, then once more and succeeds
    for _ in range(2):
        with pytest.raises(WebhookDeliveryFailed):
            webhook_delivery_attempt(delivery.pk)
    receiver.status = 200
    webhook_delivery_attempt(delivery.pk)
    delivery.refresh_from_db()
    # then every try is counted and the last answer kept
    assert (delivery.state, delivery.attempts, delivery.response_status) == ("delivered", 3, 200)
    # and a delivered delivery is not sent again by a late duplicate task
    webhook_delivery_attempt(delivery.pk)
    assert len(receiver.requests) == 3


def test_webhook_unreachable_endpoint_records_the_error(company, persona, outbound_allow):
    # given an endpoint on a port nobody listens on (allowed, so the connection is tried)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    outbound_allow(f"127.0.0.1:{port}")
    webhook_endpoint_create(company=company, url=f"http://127.0.0.1:{port}/x", events=["points.changed"])
    [delivery] = webhook_event_emit(company=company, event="points.changed", payload={"persona_id": 1})
    # when it is attempted
    with pytest.raises(WebhookDeliveryFailed):
        webhook_delivery_attempt(delivery.pk)
    # then the error is kept with no status
    delivery.refresh_from_db()
    assert delivery.attempts == 1 and delivery.response_status is None
    assert "Could not reach" in delivery.error


def test_webhook_endpoint_turned_off_stops_pending_deliveries(company, persona, receiver, endpoint):
    [delivery] = webhook_event_emit(company=company, event="points.changed", payload={"persona_id": 1})
    webhook_endpoint_update(endpoint=endpoint, is_active=False)
    webhook_delivery_attempt(delivery.pk)
    delivery.refresh_from_db()
    assert delivery.state == "failed" and receiver.requests == []


# --- persona.updated -----------------------------------------------------------------

def test_webhook_persona_enroll_emits_persona_updated(company, receiver, eager,
                                                      django_capture_on_commit_callbacks):
    webhook_endpoint_create(company=company, url=receiver.url("/p"), events=["persona.updated"])
    guest = PersonaFactory(company=company, is_member=False, enrolled_at=None)
    with django_capture_on_commit_callbacks(execute=True):
        persona_enroll(company=company, persona_id=guest.pk)
        persona_enroll(company=company, persona_id=guest.pk)  # already a member: no event
    [request] = receiver.to("/p")
    assert request["headers"]["X-Loyalty-Event"] == "persona.updated"
    data = body_of(request)["data"]
    assert data["persona_id"] == guest.pk and data["is_member"] is True and data["change"] == "enrolled"


# --- signatures ----------------------------------------------------------------------

def test_webhook_signature_verify_refuses_tampering_and_replays():
    body = b'{"id":1}'
    header = webhook_signature_header("s3cret", body)
    assert webhook_signature_verify("s3cret", header, body)
    assert webhook_signature_verify("s3cret", header, body.decode())
    assert not webhook_signature_verify("s3cret", header, b'{"id":2}')
    assert not webhook_signature_verify("s3cret", "v1=abc", body)
    assert not webhook_signature_verify("s3cret", "", body)
    old = webhook_signature_header("s3cret", body, timestamp=int(time.time()) - 301)
    assert not webhook_signature_verify("s3cret", old, body)
    assert webhook_signature_verify("s3cret", old, body, tolerance=600)


# --- pages ---------------------------------------------------------------------------

def test_webhook_pages_are_admin_only(client, company, login, marketer_user, budtender_user):
    endpoint = webhook_endpoint_create(company=company, url="https://pos.example/h",
                                       events=["points.changed"])
    for user in (marketer_user, budtender_user):
        login(client, user)
        for url in (reverse("webhook_list"), reverse("webhook_create"),
                    reverse("webhook_detail", args=[endpoint.pk])):
            assert client.get(url).status_code == 403
        assert reverse("webhook_list") not in client.get(reverse("persona_list")).content.decode()


def test_webhook_pages_another_company_is_404(admin_client, other_company):
    # given another company's endpoint with a delivery
    foreign = webhook_endpoint_create(company=other_company, url="https://pos.example/h",
                                      events=["points.changed"])
    [delivery] = webhook_event_emit(company=other_company, event="points.changed", payload={"x": 1})
    # then none of its pages or actions exist for this admin
    for name in ("webhook_detail", "webhook_edit", "webhook_delete"):
        assert admin_client.get(reverse(name, args=[foreign.pk])).status_code == 404
    assert admin_client.post(reverse("webhook_delete", args=[foreign.pk])).status_code == 404
    assert admin_client.post(reverse("webhook_rotate_secret", args=[foreign.pk])).status_code == 404
    assert admin_client.get(reverse("webhook_delivery_detail", args=[delivery.pk])).status_code == 404
    assert admin_client.post(reverse("webhook_delivery_resend", args=[delivery.pk])).status_code == 404
    foreign.refresh_from_db()
    assert foreign.url == "https://pos.example/h"
    assert WebhookDelivery.objects.get().state == "pending"


def test_webhook_pages_create_show_secret_rotate_delete(admin_client, company):
    # when the admin adds an endpoint through the form
    response = admin_client.post(reverse("webhook_create"), {
        "url": "https://pos.example/hook", "events": ["points.changed", "persona.updated"],
        "is_active": "on"})
    endpoint = company.webhook_endpoints.get()
    assert response.status_code == 302 and response.url == reverse("webhook_detail", args=[endpoint.pk])
    assert endpoint.events == ["persona.updated", "points.changed"]
    # then the page after it shows the secret in full, once
    page = admin_client.get(response.url).content.decode()
    assert endpoint.secret_plain() in page
    # and later visits only its last characters
    again = admin_client.get(response.url).content.decode()
    assert endpoint.secret_plain() not in again and endpoint.secret_plain()[-4:] in again
    # a bad URL re-renders the form with the message
    bad = admin_client.post(reverse("webhook_create"),
                            {"url": "ftp://x.example", "events": ["points.changed"]})
    assert bad.status_code == 400 and "http:// or https://" in bad.content.decode()
    # rotating (htmx) swaps in the new secret
    old = endpoint.secret_plain()
    rotated = admin_client.post(reverse("webhook_rotate_secret", args=[endpoint.pk]), HTTP_HX_REQUEST="true")
    endpoint.refresh_from_db()
    assert endpoint.secret_plain() != old and endpoint.secret_plain() in rotated.content.decode()
    assert "<html" not in rotated.content.decode()
    # editing turns it off
    admin_client.post(reverse("webhook_edit", args=[endpoint.pk]),
                      {"url": "https://pos.example/hook", "events": ["points.changed"]})
    endpoint.refresh_from_db()
    assert endpoint.is_active is False and endpoint.events == ["points.changed"]
    # and delete removes it
    assert admin_client.post(reverse("webhook_delete", args=[endpoint.pk])).status_code == 302
    assert not company.webhook_endpoints.exists()


def test_webhook_delivery_log_shows_status_and_resends(admin_client, company, receiver, eager,
                                                       django_capture_on_commit_callbacks):
    # given a delivery the POS refused with a 500
    endpoint = webhook_endpoint_create(company=company, url=receiver.url("/pos"), events=["points.changed"])
    [delivery] = webhook_event_emit(company=company, event="points.changed",
                                    payload={"persona_id": 7, "points_balance": 42, "lifetime_points": 42})
    receiver.status, receiver.reply = 500, b"boom"
    with pytest.raises(WebhookDeliveryFailed):
        webhook_delivery_attempt(delivery.pk)
    # when the admin opens the endpoint page
    page = admin_client.get(reverse("webhook_detail", args=[endpoint.pk]))
    html = page.content.decode()
    # then the log shows the event, the state and the status code
    assert page.status_code == 200 and 'data-testid="delivery-table"' in html
    assert "points.changed" in html and "Retrying" in html
    assert '<td class="num" data-testid="delivery-status">500</td>' in html
    # the detail shows the payload and the response
    detail = admin_client.get(reverse("webhook_delivery_detail", args=[delivery.pk])).content.decode()
    assert "&quot;points_balance&quot;: 42" in detail and "boom" in detail
    # and "Resend" (htmx, from the log row) sends it again and swaps the row
    receiver.status = 200
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(reverse("webhook_delivery_resend", args=[delivery.pk]),
                                     HTTP_HX_REQUEST="true", HTTP_HX_TARGET=f"delivery-{delivery.pk}")
    assert response.status_code == 200 and response.content.decode().lstrip().startswith("<tr")
    delivery.refresh_from_db()
    assert delivery.state == "delivered" and len(receiver.requests) == 2
    log = admin_client.get(reverse("webhook_detail", args=[endpoint.pk])).content.decode()
    assert "Delivered" in log and '<td class="num" data-testid="delivery-status">200</td>' in log


def test_webhook_delivery_log_keeps_the_latest_100_in_pages(admin_client, company):
    endpoint = webhook_endpoint_create(company=company, url="https://pos.example/h",
                                       events=["points.changed"])
    webhook_event_emit(company=company, event="points.changed", payload={"persona_id": 0})
    for n in range(1, 105):
        webhook_event_emit(company=company, event="points.changed", payload={"persona_id": n})
    first = admin_client.get(reverse("webhook_detail", args=[endpoint.pk]))
    assert first.context["page"].paginator.count == 100
    assert len(first.context["page"].object_list) == 25
    last = admin_client.get(reverse("webhook_detail", args=[endpoint.pk]), {"page": 4},
                            HTTP_HX_REQUEST="true", HTTP_HX_TARGET="delivery-log")
    html = last.content.decode()
    assert html.lstrip().startswith('<section class="card table-card" id="delivery-log">')
    assert "Page 4 of 4" in html


def test_webhook_nav_link_for_admins(admin_client, client, company):
    assert reverse("webhook_list") in admin_client.get(reverse("webhook_list")).content.decode()
    member = MembershipFactory(company=company, role=Role.BUDTENDER).user
    client.force_login(member)
    assert reverse("webhook_list") not in client.get(reverse("persona_list")).content.decode()


def test_webhook_deliveries_requeue_sends_only_old_never_attempted_deliveries(company, receiver, endpoint,
                                                                              eager):
    # given deliveries whose queueing failed long ago, one just made, one attempted (its
    # retries are queued) and one delivered
    def delivery(age_minutes, **fields):
        made = WebhookDelivery.objects.create(endpoint=endpoint, event="points.changed", payload={"n": 1},
                                              **fields)
        WebhookDelivery.objects.filter(pk=made.pk).update(
            created_at=timezone.now() - dt.timedelta(minutes=age_minutes))
        return made.pk

    lost = [delivery(30), delivery(6)]
    fresh = delivery(1)
    retrying = delivery(30, attempts=2)
    done = delivery(30, state=WebhookDelivery.State.DELIVERED, attempts=1)

    # when the sweep runs (threshold 5 minutes)
    queued = webhook_deliveries_requeue()

    # then the two lost ones are sent, oldest first, and the others are left alone
    assert queued == 2
    assert [r["headers"]["X-Loyalty-Delivery"] for r in receiver.to("/pos")] == [str(pk) for pk in lost]
    states = dict(WebhookDelivery.objects.values_list("pk", "state"))
    assert [states[pk] for pk in lost] == ["delivered", "delivered"]
    assert (states[fresh], states[retrying], states[done]) == ("pending", "pending", "delivered")
