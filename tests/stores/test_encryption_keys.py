"""Secrets at rest under a list of keys: saved under the newest, read under any, moved to
the newest by `manage.py rotate_encryption_keys`, and never stored in clear."""

import io
import json

import pytest
from cryptography.fernet import Fernet
from django.apps import apps
from django.conf import settings
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import override_settings

from integrations.models import Connection, CovaCredential
from integrations.services.connections import connection_create
from integrations.services.cova import cova_connection_create, cova_credential_save
from loyalty.models import WebhookDelivery, WebhookEndpoint
from loyalty.services.webhooks import (
    webhook_delivery_attempt,
    webhook_endpoint_create,
    webhook_event_emit,
    webhook_signature_verify,
)
from stores import services as stores_services
from stores.crypto import ENCRYPTED_FIELDS, token_is_current
from tests.loyalty.test_webhooks import Receiver

OLD, NEW, STRANGER = (Fernet.generate_key().decode() for _ in range(3))
S3_SECRETS = {"access_key_id": "AKIAOLDKEY", "secret_access_key": "s3-secret-under-old-key"}


def keys(*keys):
    return override_settings(FIELD_ENCRYPTION_KEYS=list(keys))


def rotate(out: io.StringIO | None = None, **options) -> list[str]:
    out = out or io.StringIO()
    call_command("rotate_encryption_keys", stdout=out, **options)
    return out.getvalue().splitlines()


def raw_column(table: str, column: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table} ORDER BY id")  # noqa: S608 (our own names)
        return [row[0] for row in cursor.fetchall()]


@pytest.fixture
def saved_under_old_key(company):
    """An S3 connection, a Cova credential and a webhook endpoint, all saved under OLD."""
    with keys(OLD):
        s3 = connection_create(company=company, name="Bucket", provider="s3",
                               settings={"bucket": "reports", "region": "us-east-1"}, credentials=S3_SECRETS)
        cova = cova_credential_save(connection=cova_connection_create(company=company), client_id="cid",
                                    client_secret="cova-client-secret", username="clerk",
                                    password="cova-password", cova_company_id="123456")
        endpoint = webhook_endpoint_create(company=company, url="https://pos.example/hook",
                                           events=["points.changed"], secret="webhook-secret-under-old-key")
    return s3, cova, endpoint


def read_everything(s3, cova, endpoint) -> tuple:
    s3 = Connection.objects.get(pk=s3.pk)
    cova = CovaCredential.objects.get(pk=cova.pk)
    endpoint = WebhookEndpoint.objects.get(pk=endpoint.pk)
    return s3.credentials_plain(), cova.secrets_plain(), endpoint.secret_plain()


EXPECTED = (S3_SECRETS, {"client_secret": "cova-client-secret", "password": "cova-password"},
            "webhook-secret-under-old-key")


def test_encrypted_fields_every_encrypted_column_is_registered():
    # given every model field named like an encrypted column
    named = {(model._meta.label, f.name) for model in apps.get_models() for f in model._meta.fields
             if f.name.endswith("_encrypted")}
    # then the rotation command knows each of them
    assert named == set(ENCRYPTED_FIELDS)
    assert ("loyalty.WebhookEndpoint", "secret_encrypted") in named


def test_rotate_encryption_keys_moves_every_secret_to_the_newest_key(saved_under_old_key):
    # given secrets saved under OLD, and NEW put in front of it
    with keys(NEW, OLD):
        assert read_everything(*saved_under_old_key) == EXPECTED
        # when the command runs
        lines = rotate()
    # then it reports each table
    assert "integrations.Connection: 1 re-encrypted, 0 already current" in lines
    assert "integrations.CovaCredential: 1 re-encrypted, 0 already current" in lines
    assert "loyalty.WebhookEndpoint: 1 re-encrypted, 0 already current" in lines
    # and with OLD dropped from the list, everything still reads
    with keys(NEW):
        assert read_everything(*saved_under_old_key) == EXPECTED
    # while OLD alone no longer opens them
    with keys(OLD), pytest.raises(Exception, match="cannot be decrypted"):
        read_everything(*saved_under_old_key)


def test_rotate_encryption_keys_rerun_finds_nothing_to_do(saved_under_old_key):
    # given a finished rotation
    with keys(NEW, OLD):
        rotate()
        # when it runs again
        lines = rotate()
    # then nothing is re-encrypted
    assert "integrations.Connection: 0 re-encrypted, 1 already current" in lines
    assert "integrations.CovaCredential: 0 re-encrypted, 1 already current" in lines
    assert "loyalty.WebhookEndpoint: 0 re-encrypted, 1 already current" in lines


def test_rotate_encryption_keys_continues_after_a_crash(company, monkeypatch):
    # given five endpoints under OLD
    with keys(OLD):
        for n in range(5):
            webhook_endpoint_create(company=company, url=f"https://pos.example/{n}",
                                    events=["points.changed"])
    # when the command dies on the fourth row, in batches of two
    calls = {"n": 0}
    real_rotate = stores_services.token_rotate

    def dies_on_the_fourth(token):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("the machine went away")
        return real_rotate(token)

    monkeypatch.setattr(stores_services, "token_rotate", dies_on_the_fourth)
    with keys(NEW, OLD), pytest.raises(RuntimeError):
        rotate(batch_size=2)
    # then the first batch is committed under NEW, the interrupted one is not
    with keys(NEW, OLD):
        current = [token_is_current(t) for t in raw_column("loyalty_webhookendpoint", "secret_encrypted")]
    assert current == [True, True, False, False, False]
    # and a rerun does the rest
    monkeypatch.setattr(stores_services, "token_rotate", real_rotate)
    with keys(NEW, OLD):
        lines = rotate(batch_size=2)
    assert "loyalty.WebhookEndpoint: 3 re-encrypted, 2 already current" in lines
    with keys(NEW):
        assert all(e.secret_plain() for e in WebhookEndpoint.objects.all())


def test_rotate_encryption_keys_reports_a_secret_no_key_opens(company, saved_under_old_key):
    # given a connection saved under a key that is not in the list
    with keys(STRANGER):
        lost = connection_create(company=company, name="Lost", provider="s3",
                                 settings={"bucket": "b", "region": "us-east-1"},
                                 credentials={"access_key_id": "AKIALOST", "secret_access_key": "lost-1234"})
    # when the command runs
    out = io.StringIO()
    with keys(NEW, OLD), pytest.raises(CommandError) as failure:
        rotate(out)
    # then it fails naming the table and the row, and says what to do
    message = str(failure.value)
    assert f"integrations.Connection.credentials_encrypted (id {lost.pk})" in message
    assert "Add the key they were saved under" in message
    lines = out.getvalue().splitlines()
    assert "integrations.Connection: 1 re-encrypted, 0 already current, 1 unreadable" in lines
    # and everything else was re-encrypted all the same
    assert "loyalty.WebhookEndpoint: 1 re-encrypted, 0 already current" in lines
    with keys(NEW):
        assert read_everything(*saved_under_old_key) == EXPECTED


@pytest.fixture
def receiver(monkeypatch, outbound_allow):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("no_proxy", "127.0.0.1,localhost")
    r = Receiver()
    r.thread.start()
    outbound_allow(r.url())  # a local server: let this test's deliveries reach it
    yield r
    r.server.shutdown()
    r.server.server_close()


def points_changed(company, balance: int) -> WebhookDelivery:
    [delivery] = webhook_event_emit(company=company, event="points.changed", payload={
        "persona_id": 1, "points_balance": balance, "lifetime_points": balance})
    return delivery


def test_webhook_secret_is_not_stored_in_clear_and_still_signs(company, receiver):
    # given an endpoint on a real local receiver, with a known secret
    secret = "a-webhook-signing-secret-0042"
    webhook_endpoint_create(company=company, url=receiver.url("/pos"), events=["points.changed"],
                            secret=secret)
    # then the database holds a Fernet token, not the secret
    [stored] = raw_column("loyalty_webhookendpoint", "secret_encrypted")
    assert secret not in stored and "0042" not in stored and stored.startswith("gAAAA")
    # and a delivery is signed with the secret itself
    delivery = points_changed(company, 5)
    webhook_delivery_attempt(delivery.pk)
    [request] = receiver.to("/pos")
    assert webhook_signature_verify(secret, request["headers"]["X-Loyalty-Signature"], request["body"])
    assert json.loads(request["body"])["id"] == delivery.pk
    # even after the keys are rotated and the old one dropped
    with keys(NEW, *settings.FIELD_ENCRYPTION_KEYS):
        rotate()
    with keys(NEW):
        second = points_changed(company, 6)
        webhook_delivery_attempt(second.pk)
    request = receiver.to("/pos")[-1]
    assert webhook_signature_verify(secret, request["headers"]["X-Loyalty-Signature"], request["body"])
    assert WebhookDelivery.objects.get(pk=second.pk).state == "delivered"


def test_webhook_secret_no_key_opens_fails_the_delivery_in_words(company):
    # given an endpoint whose secret was saved under a key since dropped
    with keys(STRANGER):
        webhook_endpoint_create(company=company, url="https://pos.example/hook", events=["points.changed"])
    delivery = points_changed(company, 5)
    # when it is sent
    webhook_delivery_attempt(delivery.pk)
    # then it fails, saying why, before any request
    delivery.refresh_from_db()
    assert (delivery.state, delivery.attempts) == ("failed", 0)
    assert "cannot be decrypted" in delivery.error
