"""Report files in an Amazon S3 bucket or any S3-compatible server (MinIO, Ceph, moto...).

A custom endpoint URL is a merchant's URL the server calls, so it must be on the public
internet (stores.outbound): it is checked when the connection is saved, again when a client
is made for a test or a sync (after DNS resolution), and every socket the client opens is
checked for the address it actually connected to (botocore has no setting for this, so the
client's connection classes are swapped; see `_guard_connections`).
"""

from __future__ import annotations

from urllib.parse import urlparse

import boto3
from botocore.awsrequest import (
    AWSHTTPConnection,
    AWSHTTPConnectionPool,
    AWSHTTPSConnection,
    AWSHTTPSConnectionPool,
)
from botocore.config import Config
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ParamValidationError,
    ReadTimeoutError,
    ValidationError,
)

from stores.errors import OutboundRefused
from stores.outbound import outbound_socket_check, outbound_url_check

from ..connectors import REPORT_FEATURES, Listing
from .base import ConnectionProblem, ProviderError, ReportFile, ReportProvider

# S3 error codes, grouped by what the merchant has to do about them.
_BAD_CREDENTIAL_CODES = {
    "InvalidAccessKeyId", "SignatureDoesNotMatch", "InvalidToken", "ExpiredToken", "TokenRefreshRequired",
}
_NOT_FOUND_CODES = {"NoSuchBucket", "NotFound", "404"}
_NO_PERMISSION_CODES = {"AccessDenied", "AllAccessDisabled", "AccountProblem", "403"}
_WRONG_REGION_CODES = {
    "PermanentRedirect", "AuthorizationHeaderMalformed", "IllegalLocationConstraintException",
}


class GuardedHTTPConnection(AWSHTTPConnection):
    def _new_conn(self):
        # urllib3's hook that opens the TCP socket: check its peer before a byte is sent.
        sock = super()._new_conn()
        outbound_socket_check(sock, host=self.host, port=self.port)
        return sock


class GuardedHTTPSConnection(AWSHTTPSConnection):
    def _new_conn(self):
        # Before the TLS handshake: not even a ClientHello reaches a private address.
        sock = super()._new_conn()
        outbound_socket_check(sock, host=self.host, port=self.port)
        return sock


class GuardedHTTPConnectionPool(AWSHTTPConnectionPool):
    ConnectionCls = GuardedHTTPConnection


class GuardedHTTPSConnectionPool(AWSHTTPSConnectionPool):
    ConnectionCls = GuardedHTTPSConnection


GUARDED_POOLS = {"http": GuardedHTTPConnectionPool, "https": GuardedHTTPSConnectionPool}


def _guard_connections(client) -> None:
    """Make every connection of this client (and only this one) check its peer address.
    botocore builds its pool manager with fixed classes and offers no option, so they are
    swapped on the client's own HTTP session; a botocore without these attributes fails
    here, loudly, instead of running unguarded."""
    http = client._endpoint.http_session
    http._pool_classes_by_scheme = GUARDED_POOLS
    http._manager.pool_classes_by_scheme = GUARDED_POOLS


def _refusal(exc: BaseException) -> OutboundRefused | None:
    """The OutboundRefused a botocore error carries (botocore wraps what urllib3 raised)."""
    seen = exc
    for _ in range(5):
        if seen is None or isinstance(seen, OutboundRefused):
            return seen
        wrapped = getattr(seen, "kwargs", {}).get("error") if isinstance(seen, BotoCoreError) else None
        seen = wrapped or seen.__cause__ or seen.__context__
    return None


class S3Provider(ReportProvider):
    kind = "s3"
    label = "Amazon S3 bucket (or S3-compatible)"
    listing = Listing("S3 reports", "Reports",
                      "Nightly CSV reports your POS drops in an Amazon S3 bucket (or MinIO, Wasabi…).",
                      "S3", "#c7511f", REPORT_FEATURES, keywords="amazon aws bucket csv minio wasabi")
    choice_help = "Or any S3-compatible storage (MinIO, Wasabi…). Needs the bucket, region and an access key."
    required_headers = ("ReceiptId", "customerId")
    deletion_removes_data = True
    setting_fields = (
        ("bucket", "Bucket", "The bucket name only, e.g. green-leaf-reports."),
        ("prefix", "Prefix (optional)",
         "Only read files whose key starts with this, e.g. reports/. Leave blank for the whole bucket."),
        ("endpoint_url", "Endpoint URL (optional)",
         "For an S3-compatible server, e.g. https://minio.example.com:9000. Leave blank for Amazon S3."),
        ("region", "Region", "The bucket's region, e.g. us-east-1 (the default)."),
    )
    url_settings = (("endpoint_url", "S3 endpoint URL"),)
    credential_fields = (
        ("access_key_id", "Access key ID", "An access key allowed to list and read the bucket."),
        ("secret_access_key", "Secret access key", "The secret that goes with the access key ID."),
    )

    # Keys per list request; S3's maximum. Tests lower it to see several pages followed.
    page_size = 1000

    def __init__(self, *, settings: dict, credentials: dict, company_slug: str = ""):
        super().__init__(settings=settings, credentials=credentials, company_slug=company_slug)
        self._client = None

    # -- settings -------------------------------------------------------------------------

    def _setting(self, name: str) -> str:
        return str(self.settings.get(name) or "").strip()

    @property
    def bucket(self) -> str:
        return self._setting("bucket")

    @property
    def prefix(self) -> str:
        # S3 keys rarely start with "/", and "/reports/" would silently match nothing.
        return self._setting("prefix").lstrip("/")

    @property
    def endpoint_url(self) -> str:
        return self._setting("endpoint_url").rstrip("/")

    @property
    def region(self) -> str:
        return self._setting("region") or "us-east-1"

    @property
    def where(self) -> str:
        """Where the bucket lives, for messages."""
        return self.endpoint_url or f"Amazon S3 ({self.region})"

    def _check_settings(self) -> None:
        # Every check here runs before any network call, so a half-filled form fails at once.
        if not self.bucket:
            raise ProviderError(ConnectionProblem.MISCONFIGURED, "The bucket name is missing.")
        missing = [label for name, label, _help in self.credential_fields
                   if not str(self.credentials.get(name) or "").strip()]
        if missing:
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                f"The {' and the '.join(m.lower() for m in missing)} "
                                f"{'is' if len(missing) == 1 else 'are'} missing.")
        if self.endpoint_url:
            url = urlparse(self.endpoint_url)
            if url.scheme not in ("http", "https") or not url.hostname:
                raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                    f"The endpoint URL '{self.endpoint_url}' is not a valid http(s) URL, "
                                    "e.g. https://minio.example.com:9000.")
            try:
                outbound_url_check(self.endpoint_url, what="S3 endpoint URL")
            except OutboundRefused as exc:
                raise ProviderError(ConnectionProblem.MISCONFIGURED, exc.message) from exc

    # -- client ---------------------------------------------------------------------------

    @property
    def client(self):
        if self._client is None:
            self._check_settings()
            config = Config(
                connect_timeout=5,
                read_timeout=60,
                # Few retries: a sync run retries later with backoff, a form test must answer fast.
                retries={"max_attempts": 2},
                signature_version="s3v4",
                # Custom servers rarely have wildcard DNS for virtual-hosted bucket names.
                s3={"addressing_style": "path"} if self.endpoint_url else {},
                # Blank endpoint means Amazon S3, whatever AWS_ENDPOINT_URL says on this host.
                ignore_configured_endpoint_urls=True,
                # A merchant's endpoint is reached directly, never through this host's proxy.
                proxies={} if self.endpoint_url else None,
            )
            try:
                # A session of its own: the default one is shared and not thread-safe.
                self._client = boto3.session.Session().client(
                    "s3",
                    endpoint_url=self.endpoint_url or None,
                    region_name=self.region,
                    aws_access_key_id=self.credentials["access_key_id"].strip(),
                    aws_secret_access_key=self.credentials["secret_access_key"].strip(),
                    config=config,
                )
            except (ValidationError, ValueError) as exc:
                raise ProviderError(
                    ConnectionProblem.MISCONFIGURED,
                    f"Cannot build an S3 client for {self.where}: {self._scrub(exc)}",
                ) from exc
            if self.endpoint_url:
                _guard_connections(self._client)
        return self._client

    # -- the interface --------------------------------------------------------------------

    def test(self) -> str:
        count = len(self.list_files())
        where = f" under '{self.prefix}'" if self.prefix else ""
        return f"Bucket '{self.bucket}' is reachable: {count} CSV file{'s' if count != 1 else ''}{where}."

    def list_files(self) -> list[ReportFile]:
        client = self.client
        files = []
        try:
            pages = client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix, PaginationConfig={"PageSize": self.page_size},
            )
            for page in pages:
                for obj in page.get("Contents", []):
                    if not obj["Key"].lower().endswith(".csv"):
                        continue
                    files.append(ReportFile(
                        key=obj["Key"],
                        etag=obj.get("ETag", "").strip('"'),
                        size=obj.get("Size", 0),
                        modified_at=obj.get("LastModified"),
                    ))
        except (BotoCoreError, ClientError) as exc:
            raise self._provider_error(exc) from exc
        return sorted(files, key=lambda f: f.key)

    def open(self, file: ReportFile):
        client = self.client
        try:
            return client.get_object(Bucket=self.bucket, Key=file.key)["Body"]
        except (BotoCoreError, ClientError) as exc:
            raise self._provider_error(exc, key=file.key) from exc

    # -- errors ---------------------------------------------------------------------------

    def _scrub(self, value) -> str:
        # S3 never echoes the secret, but an exception text is not ours to trust.
        text = str(value)
        secret = str(self.credentials.get("secret_access_key") or "").strip()
        # Real secrets are long (AWS 40 characters, MinIO at least 8); masking a one-letter
        # typo would only garble the text.
        return text.replace(secret, "***") if len(secret) >= 8 else text

    def _provider_error(self, exc: Exception, key: str = "") -> ProviderError:
        bucket, where = self.bucket, self.where
        refused = _refusal(exc)
        if refused is not None:
            return ProviderError(ConnectionProblem.MISCONFIGURED,
                                 f"Not connecting to {where} for bucket '{bucket}': {refused.message}")
        if isinstance(exc, ParamValidationError):
            return ProviderError(ConnectionProblem.MISCONFIGURED,
                                 f"Bucket name '{bucket}' is not valid: {self._scrub(exc)}")
        # ConnectTimeoutError is an EndpointConnectionError too, so it goes first.
        if isinstance(exc, ConnectTimeoutError):
            return ProviderError(ConnectionProblem.UNREACHABLE,
                                 f"Timed out connecting to {where} for bucket '{bucket}'.")
        if isinstance(exc, EndpointConnectionError):
            # Refused connections and unknown host names both land here.
            return ProviderError(ConnectionProblem.UNREACHABLE,
                                 f"Cannot connect to {where} for bucket '{bucket}': check the endpoint "
                                 "URL and that the server is running and reachable from here.")
        if isinstance(exc, ReadTimeoutError):
            return ProviderError(ConnectionProblem.UNREACHABLE,
                                 f"{where} did not answer in time for bucket '{bucket}'.")
        if isinstance(exc, HTTPClientError):
            # ConnectionClosedError and friends: the server hung up mid-request.
            return ProviderError(ConnectionProblem.UNREACHABLE,
                                 f"{where} closed the connection for bucket '{bucket}': {self._scrub(exc)}")
        if isinstance(exc, BotoCoreError):
            return ProviderError(ConnectionProblem.UNREACHABLE,
                                 f"S3 request to {where} for bucket '{bucket}' failed: {self._scrub(exc)}")

        error = exc.response.get("Error", {})
        code = str(error.get("Code") or "")
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0
        server_says = self._scrub(error.get("Message") or code or f"HTTP {status}")
        access_key = str(self.credentials.get("access_key_id") or "").strip()

        if code in _BAD_CREDENTIAL_CODES:
            return ProviderError(ConnectionProblem.BAD_CREDENTIALS,
                                 f"{where} rejected access key '{access_key}' for bucket '{bucket}' "
                                 f"({code}): check the access key ID and secret access key.")
        if code == "NoSuchKey" and key:
            return ProviderError(ConnectionProblem.NOT_FOUND,
                                 f"File '{key}' is no longer in bucket '{bucket}' at {where}.")
        if code in _NOT_FOUND_CODES or status == 404:
            return ProviderError(ConnectionProblem.NOT_FOUND, f"Bucket '{bucket}' does not exist at {where}.")
        if code in _NO_PERMISSION_CODES or status == 403:
            action = f"read '{key}' in" if key else "list"
            return ProviderError(ConnectionProblem.NO_PERMISSION,
                                 f"Access key '{access_key}' may not {action} bucket '{bucket}' at {where} "
                                 f"({code or 'HTTP 403'}): {server_says}")
        if code == "InvalidBucketName":
            return ProviderError(ConnectionProblem.MISCONFIGURED,
                                 f"Bucket name '{bucket}' is not valid at {where}: {server_says}")
        if code in _WRONG_REGION_CODES or status == 301:
            return ProviderError(ConnectionProblem.MISCONFIGURED,
                                 f"Bucket '{bucket}' is not in region {self.region} at {where} ({code}): "
                                 f"{server_says}")
        if status >= 500:
            return ProviderError(ConnectionProblem.UNREACHABLE,
                                 f"{where} failed for bucket '{bucket}' ({code or status}): {server_says}")
        return ProviderError(ConnectionProblem.MISCONFIGURED,
                             f"{where} refused the request for bucket '{bucket}' "
                             f"({code or status}): {server_says}")
