"""`make run` sends the demo's text messages through the real Twilio client to the local
fake, which it starts as a process of its own."""

import json
import socket
import subprocess
import time
import urllib.request

import pytest
from django.test import override_settings

from config import launcher
from members.sms import sms_send
from members.twilio_fake import DEFAULT_ACCOUNT_SID

pytestmark = pytest.mark.django_db


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_listening(port: int) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise AssertionError(f"nothing listens on {port}")


def test_run_points_sms_at_the_twilio_fake_it_starts(company, monkeypatch):
    port = _free_port()
    monkeypatch.setattr(launcher, "DEMO_TWILIO_PORT", port)
    env = {"OUTBOUND_ALLOW_HOSTS": launcher.DEMO_OUTBOUND_ALLOW_HOSTS}

    command = launcher.demo_sms_env(env)

    assert env["SMS_PROVIDER"] == "twilio" and env["TWILIO_API_BASE"] == f"http://127.0.0.1:{port}"
    assert env["OUTBOUND_ALLOW_HOSTS"] == f"127.0.0.1:8765,127.0.0.1:{port}"
    fake = subprocess.Popen(command, stdout=subprocess.DEVNULL, start_new_session=True)
    try:
        _wait_listening(port)
        with override_settings(SMS_PROVIDER=env["SMS_PROVIDER"], TWILIO_ACCOUNT_SID=env["TWILIO_ACCOUNT_SID"],
                               TWILIO_AUTH_TOKEN=env["TWILIO_AUTH_TOKEN"], TWILIO_FROM=env["TWILIO_FROM"],
                               TWILIO_API_BASE=env["TWILIO_API_BASE"],
                               OUTBOUND_ALLOW_HOSTS=env["OUTBOUND_ALLOW_HOSTS"].split(",")):
            sent = sms_send(company=company, to="+13035550142", body="Your code is 123456", purpose="sign_in")
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/fake/messages.json", timeout=5) as answer:
            [message] = json.load(answer)["messages"]
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    assert (message["account_sid"], message["to"], message["body"]) == (
        DEFAULT_ACCOUNT_SID, "+13035550142", "Your code is 123456")
    # and the operator's Sent messages page has it too
    assert (sent.state, sent.provider, sent.provider_id) == ("sent", "twilio", message["sid"])


def test_run_leaves_a_chosen_provider_alone():
    env = {"SMS_PROVIDER": "outbox"}
    assert launcher.demo_sms_env(env) is None
    assert env == {"SMS_PROVIDER": "outbox"}
