"""S3Provider against a real S3 server (moto's, over HTTP): listing, streaming, and every failure
mapped to the ConnectionProblem a merchant can act on."""

import datetime as dt
import hashlib
import socket
import time

import pytest

from integrations.providers.base import ConnectionProblem, ProviderError, ReportFile
from integrations.providers.s3 import S3Provider

from . import s3_server as server
from .s3_server import FAKE_KEY_ID, FAKE_SECRET, create_iam_user, iam_authentication

# pytest finds fixtures by name in the test module.
s3_server = server.s3_server
s3_bucket = server.s3_bucket


def make_provider(endpoint_url, bucket, prefix="", key_id=FAKE_KEY_ID, secret=FAKE_SECRET, **settings):
    return S3Provider(
        settings={"bucket": bucket, "prefix": prefix, "endpoint_url": endpoint_url, "region": "", **settings},
        credentials={"access_key_id": key_id, "secret_access_key": secret},
    )


def closed_port_url() -> str:
    # Bind, note the port and close: nothing listens there for the rest of the test.
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def test_declares_the_interface():
    assert S3Provider.kind == "s3"
    assert S3Provider.required_headers == ("ReceiptId", "customerId")
    assert S3Provider.deletion_removes_data is True
    assert [f[0] for f in S3Provider.setting_fields] == ["bucket", "prefix", "endpoint_url", "region"]
    assert [f[0] for f in S3Provider.credential_fields] == ["access_key_id", "secret_access_key"]
    assert all(len(f) == 3 for f in S3Provider.setting_fields + S3Provider.credential_fields)


def test_lists_only_csv_keys_under_the_prefix(s3_bucket):
    endpoint, bucket, client = s3_bucket
    bodies = {
        "daily/a.csv": b"ReceiptId,customerId\n1,c1\n",
        "daily/B.CSV": b"ReceiptId,customerId\n2,c2\n3,c3\n",
        "daily/sub/c.csv": b"ReceiptId,customerId\n",
        "daily/notes.txt": b"not a report",
        "daily/a.csv.bak": b"old",
        "weekly/w.csv": b"ReceiptId,customerId\n",
    }
    for key, body in bodies.items():
        client.put_object(Bucket=bucket, Key=key, Body=body)

    files = make_provider(endpoint, bucket, prefix="daily/").list_files()

    # Sorted by key: "B" sorts before "a".
    assert [f.key for f in files] == ["daily/B.CSV", "daily/a.csv", "daily/sub/c.csv"]
    for f in files:
        assert f.size == len(bodies[f.key])
        # A single-part upload's ETag is the MD5 of the body, without S3's quotes.
        assert f.etag == hashlib.md5(bodies[f.key]).hexdigest()
        assert f.etag == client.head_object(Bucket=bucket, Key=f.key)["ETag"].strip('"')
        assert isinstance(f.modified_at, dt.datetime) and f.modified_at.tzinfo is not None


def test_lists_the_whole_bucket_without_a_prefix(s3_bucket):
    endpoint, bucket, client = s3_bucket
    for key in ("top.csv", "daily/a.csv", "readme.md"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    assert [f.key for f in make_provider(endpoint, bucket).list_files()] == ["daily/a.csv", "top.csv"]


def test_follows_every_page(s3_bucket):
    endpoint, bucket, client = s3_bucket
    for n in range(3):
        client.put_object(Bucket=bucket, Key=f"r/{n}.csv", Body=b"x")
    provider = make_provider(endpoint, bucket, prefix="r/")
    provider.page_size = 2

    assert [f.key for f in provider.list_files()] == ["r/0.csv", "r/1.csv", "r/2.csv"]


def test_open_streams_the_bytes_exactly(s3_bucket):
    endpoint, bucket, client = s3_bucket
    # A BOM, CRLF line ends and non-ASCII text must come back untouched.
    body = "\ufeffReceiptId,customerId,Name\r\n".encode() + b"".join(
        f"{n},c{n},Jos\u00e9 \u00d1u\u00f1ez\r\n".encode() for n in range(20000))
    client.put_object(Bucket=bucket, Key="big.csv", Body=body)
    provider = make_provider(endpoint, bucket)
    [file] = provider.list_files()

    stream = provider.open(file)
    chunks = []
    while chunk := stream.read(64 * 1024):
        assert len(chunk) <= 64 * 1024
        chunks.append(chunk)
    stream.close()

    assert len(chunks) > 1
    assert b"".join(chunks) == body


def test_a_changed_object_gets_a_different_etag(s3_bucket):
    endpoint, bucket, client = s3_bucket
    provider = make_provider(endpoint, bucket)
    client.put_object(Bucket=bucket, Key="r.csv", Body=b"ReceiptId,customerId\n1,c1\n")
    [before] = provider.list_files()
    client.put_object(Bucket=bucket, Key="r.csv", Body=b"ReceiptId,customerId\n1,c2\n")
    [after] = provider.list_files()

    assert before.key == after.key and before.size == after.size
    assert before.etag != after.etag


def test_open_a_file_that_is_gone(s3_bucket):
    endpoint, bucket, client = s3_bucket
    provider = make_provider(endpoint, bucket)

    with pytest.raises(ProviderError) as caught:
        provider.open(ReportFile(key="gone.csv", etag="x", size=1))

    assert caught.value.problem == ConnectionProblem.NOT_FOUND
    assert "gone.csv" in caught.value.message and bucket in caught.value.message


def test_test_says_how_many_files_are_there(s3_bucket):
    endpoint, bucket, client = s3_bucket
    for key in ("daily/1.csv", "daily/2.csv", "daily/3.csv", "daily/x.txt", "4.csv"):
        client.put_object(Bucket=bucket, Key=key, Body=b"x")

    assert make_provider(endpoint, bucket, prefix="daily/").test() == (
        f"Bucket '{bucket}' is reachable: 3 CSV files under 'daily/'.")
    assert make_provider(endpoint, bucket, prefix="nothing/").test() == (
        f"Bucket '{bucket}' is reachable: 0 CSV files under 'nothing/'.")
    assert make_provider(endpoint, bucket, prefix="daily/1").test() == (
        f"Bucket '{bucket}' is reachable: 1 CSV file under 'daily/1'.")


def test_unreachable_endpoint_fails_fast(outbound_allow):
    endpoint = closed_port_url()
    outbound_allow(endpoint)
    provider = make_provider(endpoint, "reports")

    started = time.monotonic()
    with pytest.raises(ProviderError) as caught:
        provider.test()

    assert time.monotonic() - started < 10
    assert caught.value.problem == ConnectionProblem.UNREACHABLE
    assert caught.value.retryable
    assert endpoint in caught.value.message and "'reports'" in caught.value.message


def test_unknown_host_is_unreachable():
    with pytest.raises(ProviderError) as caught:
        make_provider("http://no-such-host.invalid:9000", "reports").list_files()

    assert caught.value.problem == ConnectionProblem.UNREACHABLE
    assert "no-such-host.invalid" in caught.value.message


def test_nonexistent_bucket_is_not_found(s3_server, outbound_allow):
    outbound_allow(s3_server)
    with pytest.raises(ProviderError) as caught:
        make_provider(s3_server, "no-such-bucket-here").test()

    assert caught.value.problem == ConnectionProblem.NOT_FOUND
    assert caught.value.message == f"Bucket 'no-such-bucket-here' does not exist at {s3_server}."
    assert not caught.value.retryable


@pytest.mark.parametrize(("settings", "credentials", "words"), [
    ({"bucket": ""}, {}, "bucket name is missing"),
    ({"bucket": "  "}, {}, "bucket name is missing"),
    ({}, {"access_key_id": ""}, "access key id is missing"),
    ({}, {"secret_access_key": None}, "secret access key is missing"),
    ({}, {"access_key_id": "", "secret_access_key": ""},
     "access key id and the secret access key are missing"),
    ({"endpoint_url": "minio.local:9000"}, {}, "'minio.local:9000' is not a valid http(s) URL"),
    ({"endpoint_url": "ftp://minio.local"}, {}, "'ftp://minio.local' is not a valid http(s) URL"),
    ({"region": "us east 1"}, {}, "us east 1"),
    ({"bucket": "a/b"}, {}, "'a/b' is not valid"),
])
def test_missing_or_malformed_settings_are_misconfigured(settings, credentials, words, outbound_allow):
    # A closed port: had the provider gone to the network, this would say UNREACHABLE instead.
    endpoint = closed_port_url()
    outbound_allow(endpoint)
    provider = S3Provider(
        settings={"bucket": "reports", "endpoint_url": endpoint, **settings},
        credentials={"access_key_id": "AKIAEXAMPLE", "secret_access_key": "s3cret-value", **credentials},
    )

    with pytest.raises(ProviderError) as caught:
        provider.list_files()

    assert caught.value.problem == ConnectionProblem.MISCONFIGURED
    assert words in caught.value.message.lower() or words in caught.value.message
    assert "s3cret-value" not in caught.value.message


def list_and_open_statements(bucket):
    return [
        {"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"},
        {"Effect": "Allow", "Action": "s3:GetObject", "Resource": f"arn:aws:s3:::{bucket}/*"},
    ]


def test_a_user_with_the_right_policy_lists_and_reads(s3_bucket):
    endpoint, bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="r.csv", Body=b"ReceiptId,customerId\n")
    key_id, secret = create_iam_user(endpoint, list_and_open_statements(bucket))
    provider = make_provider(endpoint, bucket, key_id=key_id, secret=secret)

    with iam_authentication(endpoint):
        [file] = provider.list_files()
        with provider.open(file) as stream:
            assert stream.read() == b"ReceiptId,customerId\n"


def test_unknown_access_key_is_bad_credentials(s3_bucket):
    endpoint, bucket, _client = s3_bucket

    with iam_authentication(endpoint), pytest.raises(ProviderError) as caught:
        make_provider(endpoint, bucket, key_id="AKIAUNKNOWNKEY000000", secret="some-secret").test()

    assert caught.value.problem == ConnectionProblem.BAD_CREDENTIALS
    assert "InvalidAccessKeyId" in caught.value.message
    assert bucket in caught.value.message and endpoint in caught.value.message
    assert "some-secret" not in caught.value.message
    assert not caught.value.retryable


def test_wrong_secret_is_bad_credentials(s3_bucket):
    endpoint, bucket, _client = s3_bucket
    key_id, secret = create_iam_user(endpoint, list_and_open_statements(bucket))
    wrong = secret[:-4] + "XXXX"

    with iam_authentication(endpoint), pytest.raises(ProviderError) as caught:
        make_provider(endpoint, bucket, key_id=key_id, secret=wrong).list_files()

    assert caught.value.problem == ConnectionProblem.BAD_CREDENTIALS
    assert "SignatureDoesNotMatch" in caught.value.message and key_id in caught.value.message
    assert wrong not in caught.value.message and secret not in caught.value.message


def test_a_user_without_rights_has_no_permission(s3_bucket):
    endpoint, bucket, _client = s3_bucket
    key_id, secret = create_iam_user(endpoint, statements=None)

    with iam_authentication(endpoint), pytest.raises(ProviderError) as caught:
        make_provider(endpoint, bucket, key_id=key_id, secret=secret).test()

    assert caught.value.problem == ConnectionProblem.NO_PERMISSION
    assert "AccessDenied" in caught.value.message
    assert f"may not list bucket '{bucket}' at {endpoint}" in caught.value.message
    assert secret not in caught.value.message


def test_a_user_who_may_only_list_cannot_open(s3_bucket):
    endpoint, bucket, client = s3_bucket
    client.put_object(Bucket=bucket, Key="r.csv", Body=b"x")
    list_only = [{"Effect": "Allow", "Action": "s3:ListBucket", "Resource": f"arn:aws:s3:::{bucket}"}]
    key_id, secret = create_iam_user(endpoint, list_only)
    provider = make_provider(endpoint, bucket, key_id=key_id, secret=secret)

    with iam_authentication(endpoint):
        [file] = provider.list_files()
        with pytest.raises(ProviderError) as caught:
            provider.open(file)

    assert caught.value.problem == ConnectionProblem.NO_PERMISSION
    assert f"may not read 'r.csv' in bucket '{bucket}'" in caught.value.message
