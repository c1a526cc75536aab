"""A real S3-compatible server for the tests: moto's server, run in a thread of the test process.

pytest finds fixtures by name in the test module, so bind them there (an assignment, not an
import, keeps ruff's F811 quiet when a test takes the fixture as an argument):

    from . import s3_server as server
    s3_server = server.s3_server
    s3_bucket = server.s3_bucket
"""

from __future__ import annotations

import contextlib
import json
import urllib.request
import uuid

import boto3
import pytest
from moto.server import ThreadedMotoServer

# moto's server accepts any credentials until IAM authentication is switched on.
FAKE_KEY_ID = "testing"
FAKE_SECRET = "testing"
REGION = "us-east-1"


def aws_client(service: str, endpoint_url: str, key_id: str = FAKE_KEY_ID, secret: str = FAKE_SECRET):
    return boto3.session.Session().client(
        service, endpoint_url=endpoint_url, region_name=REGION,
        aws_access_key_id=key_id, aws_secret_access_key=secret,
    )


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint URL of a moto server on a free port, e.g. "http://127.0.0.1:40123"."""
    # Port 0: the OS picks a free port, and get_host_and_port() reports which one.
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(s3_server, outbound_allow):
    """(endpoint_url, bucket_name, boto3 S3 client) for a fresh, empty bucket of this test's own.
    The server is on 127.0.0.1, so its host:port is allow-listed for this test's connections."""
    outbound_allow(s3_server)
    client = aws_client("s3", s3_server)
    bucket = f"reports-{uuid.uuid4().hex[:16]}"
    client.create_bucket(Bucket=bucket)
    yield s3_server, bucket, client
    # The server lives for the whole session; leave it as we found it.
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", []):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)


def create_iam_user(endpoint_url: str, statements: list[dict] | None = None) -> tuple[str, str]:
    """Make an IAM user with an inline policy of these statements (none: no rights at all) and
    return its (access key id, secret access key). Call it before `iam_authentication`."""
    iam = aws_client("iam", endpoint_url)
    name = f"user-{uuid.uuid4().hex[:12]}"
    iam.create_user(UserName=name)
    if statements:
        iam.put_user_policy(UserName=name, PolicyName="reports",
                            PolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": statements}))
    key = iam.create_access_key(UserName=name)["AccessKey"]
    return key["AccessKeyId"], key["SecretAccessKey"]


def _reset_auth(endpoint_url: str, count: str) -> str:
    # moto's documented server-mode switch: authenticate every request after `count` more.
    # text/plain, or werkzeug reads the body as a form and moto sees an empty count.
    request = urllib.request.Request(f"{endpoint_url}/moto-api/reset-auth", data=count.encode(),
                                     method="POST", headers={"Content-Type": "text/plain"})
    with urllib.request.urlopen(request, timeout=5) as response:
        return json.load(response)["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]


@contextlib.contextmanager
def iam_authentication(endpoint_url: str):
    """Inside the block the server checks signatures and IAM policies like AWS does; the
    "testing" credentials are then unknown keys. Auth is server-wide, so keep the block short."""
    previous = _reset_auth(endpoint_url, "0")
    try:
        yield
    finally:
        _reset_auth(endpoint_url, previous)
