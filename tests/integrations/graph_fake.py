"""A local stand-in for Microsoft Graph and the Microsoft identity platform.

It speaks only what OneDriveProvider uses, with the real JSON shapes and error bodies:
the client-credentials token endpoint, a folder's children (with @odata.nextLink paging)
and an item's /content, which answers 302 to a pre-authenticated download URL. The
download URL is served by a second listener on another port (another origin, like the
real SharePoint host) and refuses any request that carries an Authorization header.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import secrets
import threading
import time
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, parse_qsl, unquote, urlencode, urlsplit

import pytest

DEFAULT_TENANT = "7f3c2a91-5b8e-4d6f-a1c0-3e9b8d2f6a45"
DEFAULT_CLIENT_ID = "0c8a5e6d-2f41-4b37-9d1e-a6b5c4d3e2f1"
DEFAULT_SECRET = "Qx8~fake.client-secret_Zr2VwT9nLmKp"
DEFAULT_DRIVE = "/users/reports@contoso.com/drive"
GRAPH_SCOPE = "https://graph.microsoft.com/.default"


def _item_id() -> str:
    # Drive item ids look like "01BYE5RZ6QN3ZWBTUFOFD3GSPGOHDJD36K".
    return "01" + secrets.token_hex(16).upper()


def _now() -> str:
    return dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class FakeItem:
    name: str
    data: bytes = b""
    is_folder: bool = False
    id: str = field(default_factory=_item_id)
    guid: str = field(default_factory=lambda: str(uuid.uuid4()).upper())
    version: int = 1  # bumps on any change: eTag
    content_version: int = 1  # bumps only when the bytes change: cTag
    modified: str = field(default_factory=_now)

    def as_json(self, child_count: int = 0) -> dict:
        body = {
            "id": self.id,
            "name": self.name,
            "eTag": f'"{{{self.guid}}},{self.version}"',
            "cTag": f'"c:{{{self.guid}}},{self.content_version}"',
            "size": len(self.data),
            "lastModifiedDateTime": self.modified,
        }
        if self.is_folder:
            body["folder"] = {"childCount": child_count}
        else:
            digest = hashlib.sha1(self.data).hexdigest().upper()
            body["file"] = {"mimeType": "text/csv" if self.name.lower().endswith(".csv")
                            else "application/octet-stream", "hashes": {"sha1Hash": digest}}
        return body


class GraphFake:
    """In-memory drive plus the identity platform. Tests change it through its methods and
    read what the client sent from `token_requests`, `graph_requests`, `download_requests`."""

    def __init__(self):
        self.lock = threading.Lock()
        self.page_size = 200
        self.token_lifetime = 3599
        self.stall_seconds = 0.0  # delay before each Graph answer, to provoke read timeouts
        # True serves downloads from the Graph listener itself (same origin), to prove the
        # client drops the bearer token by itself and not only because the host changed.
        self.download_on_graph_host = False
        self.drive_paths = {DEFAULT_DRIVE, "/drives/b!fakeDriveId-0123456789"}
        self.clients: dict[str, dict[str, str]] = {}
        self.tokens: dict[str, float] = {}  # access token -> expiry (time.time())
        self.folders: dict[str, FakeItem] = {}  # folder path -> folder item
        self.files: dict[str, dict[str, FakeItem]] = {}  # folder path -> name -> file item
        self.denied: set[str] = set()
        self.downloads: dict[str, bytes] = {}  # download token -> bytes
        self.next_graph_error: tuple[int, str, str] | None = None
        self.token_requests: list[dict[str, str]] = []
        self.graph_requests: list[tuple[str, dict[str, str]]] = []
        self.download_requests: list[tuple[str, dict[str, str]]] = []
        self.set_client(DEFAULT_TENANT, DEFAULT_CLIENT_ID, DEFAULT_SECRET)
        self._servers = [self._serve(), self._serve()]
        graph_port = self._servers[0].server_address[1]
        self.origin = f"http://127.0.0.1:{graph_port}"
        self.download_origin = f"http://127.0.0.1:{self._servers[1].server_address[1]}"
        self.base_url = f"{self.origin}/v1.0"
        self.login_url = f"{self.origin}/login"

    # -- test controls -------------------------------------------------------------------

    def set_client(self, tenant_id: str, client_id: str, client_secret: str) -> None:
        with self.lock:
            self.clients.setdefault(tenant_id, {})[client_id] = client_secret

    def revoke_tokens(self) -> None:
        with self.lock:
            self.tokens.clear()

    def put_file(self, folder_path: str, name: str, data: bytes) -> FakeItem:
        folder = folder_path.strip("/")
        with self.lock:
            self._make_folders(folder)
            item = self.files.setdefault(folder, {}).get(name)
            if item is None:
                item = self.files[folder][name] = FakeItem(name=name, data=data)
            elif item.data != data:
                item.data = data
                item.version += 1
                item.content_version += 1
                item.modified = _now()
            return item

    def touch_metadata(self, folder_path: str, name: str) -> None:
        """A metadata-only change (e.g. a description edit): eTag moves, cTag stays."""
        with self.lock:
            self.files[folder_path.strip("/")][name].version += 1

    def delete_file(self, folder_path: str, name: str) -> None:
        with self.lock:
            del self.files[folder_path.strip("/")][name]

    def make_folder(self, folder_path: str) -> None:
        with self.lock:
            self._make_folders(folder_path.strip("/"))

    def deny(self, folder_path: str) -> None:
        with self.lock:
            self.denied.add(folder_path.strip("/"))

    def fail_next_graph_request(self, status: int, code: str, message: str = "") -> None:
        self.next_graph_error = (status, code, message or code)

    def close(self) -> None:
        for server in self._servers:
            server.shutdown()
            server.server_close()

    # -- internals -----------------------------------------------------------------------

    def _make_folders(self, folder: str) -> None:
        parts = folder.split("/") if folder else []
        for depth in range(1, len(parts) + 1):
            path = "/".join(parts[:depth])
            self.folders.setdefault(path, FakeItem(name=parts[depth - 1], is_folder=True))

    def _is_denied(self, folder: str) -> bool:
        return any(folder == d or folder.startswith(d + "/") for d in self.denied)

    def _serve(self) -> ThreadingHTTPServer:
        fake = self

        class Handler(_Handler):
            pass

        Handler.fake = fake
        server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        server.daemon_threads = True
        # A short poll interval keeps shutdown (and so each test's teardown) fast.
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
        return server


class _Handler(BaseHTTPRequestHandler):
    fake: GraphFake
    protocol_version = "HTTP/1.1"
    timeout = 10  # drop idle keep-alive connections

    def log_message(self, format, *args):  # noqa: A002 - the stdlib's signature
        pass

    # -- plumbing ------------------------------------------------------------------------

    def _send(self, status: int, body: bytes, content_type: str, headers: dict | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, body: dict, headers: dict | None = None) -> None:
        self._send(status, json.dumps(body).encode(), "application/json", headers)

    def _graph_error(self, status: int, code: str, message: str) -> None:
        self._json(status, {"error": {"code": code, "message": message, "innerError": {
            "date": _now(), "request-id": str(uuid.uuid4()), "client-request-id": str(uuid.uuid4()),
        }}})

    def _token_error(self, status: int, error: str, aadsts: int, description: str) -> None:
        trace, correlation = uuid.uuid4(), uuid.uuid4()
        self._json(status, {
            "error": error,
            "error_description": (f"AADSTS{aadsts}: {description}\r\nTrace ID: {trace}\r\n"
                                  f"Correlation ID: {correlation}\r\nTimestamp: {_now()}"),
            "error_codes": [aadsts],
            "timestamp": _now(),
            "trace_id": str(trace),
            "correlation_id": str(correlation),
            "error_uri": f"https://login.microsoftonline.com/error?code={aadsts}",
        })

    # -- routes --------------------------------------------------------------------------

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length).decode()
        path = unquote(urlsplit(self.path).path)
        parts = path.strip("/").split("/")
        if parts[:1] == ["login"] and parts[2:] == ["oauth2", "v2.0", "token"]:
            form = {k: v[0] for k, v in parse_qs(raw).items()}
            self._token(parts[1], form)
        else:
            self._json(404, {"error": "not_found"})

    def _token(self, tenant: str, form: dict[str, str]) -> None:
        fake = self.fake
        with fake.lock:
            fake.token_requests.append(dict(form))
            clients = fake.clients.get(tenant)
        client_id = form.get("client_id", "")
        if clients is None:
            return self._token_error(400, "invalid_request", 90002,
                                     f"Tenant '{tenant}' not found. Check to make sure you have the correct "
                                     "tenant ID and are signing into the correct cloud.")
        if form.get("grant_type") != "client_credentials":
            return self._token_error(400, "unsupported_grant_type", 70003,
                                     "The app requested an unsupported grant type.")
        if form.get("scope") != GRAPH_SCOPE:
            return self._token_error(400, "invalid_scope", 1002012,
                                     f"The provided value for scope {form.get('scope')} is not valid. "
                                     "Client credential flows must have a scope value with /.default "
                                     "suffixed to the resource identifier (application ID URI).")
        if client_id not in clients:
            return self._token_error(400, "unauthorized_client", 700016,
                                     f"Application with identifier '{client_id}' was not found in the "
                                     f"directory '{tenant}'.")
        if form.get("client_secret") != clients[client_id]:
            return self._token_error(401, "invalid_client", 7000215,
                                     "Invalid client secret provided. Ensure the secret being sent in the "
                                     "request is the client secret value, not the client secret ID, for a "
                                     f"secret added to app '{client_id}'.")
        token = "eyJ0eXAiOiJKV1Qi." + secrets.token_urlsafe(32)
        with fake.lock:
            fake.tokens[token] = time.time() + fake.token_lifetime
        self._json(200, {"token_type": "Bearer", "expires_in": fake.token_lifetime,
                         "ext_expires_in": fake.token_lifetime, "access_token": token})

    def do_GET(self):
        url = urlsplit(self.path)
        path = unquote(url.path)
        if path.startswith("/download/"):
            return self._download(path.removeprefix("/download/"))
        if not path.startswith("/v1.0/"):
            return self._graph_error(400, "BadRequest", f"Invalid version: {path.split('/')[1]}")
        fake = self.fake
        with fake.lock:
            fake.graph_requests.append((self.path, dict(self.headers)))
            expires = fake.tokens.get(self.headers.get("Authorization", "").removeprefix("Bearer "))
            failure, fake.next_graph_error = fake.next_graph_error, None
        if fake.stall_seconds:
            time.sleep(fake.stall_seconds)
        if not self.headers.get("Authorization"):
            return self._graph_error(401, "InvalidAuthenticationToken", "Access token is empty.")
        if expires is None or expires < time.time():
            return self._graph_error(401, "InvalidAuthenticationToken",
                                     "Lifetime validation failed, the token is expired.")
        if failure:
            return self._graph_error(*failure)
        rest = path.removeprefix("/v1.0")
        if "/root:/" in rest and rest.endswith(":/children"):
            drive, folder = rest.split("/root:/", 1)
            return self._children(drive, folder.removesuffix(":/children").strip("/"), url.query)
        if rest.endswith("/content") and "/items/" in rest:
            drive, item_id = rest.removesuffix("/content").split("/items/", 1)
            return self._content(drive, item_id)
        return self._graph_error(400, "invalidRequest", "Invalid request")

    def _check_drive(self, drive: str) -> bool:
        if drive in self.fake.drive_paths:
            return True
        if drive.startswith("/users/"):
            self._graph_error(404, "ResourceNotFound", f"User '{drive.split('/')[2]}' not found.")
        else:
            self._graph_error(400, "invalidRequest",
                              "The provided drive id appears to be malformed, or does not represent a "
                              "valid drive.")
        return False

    def _children(self, drive: str, folder: str, query: str) -> None:
        fake = self.fake
        if not self._check_drive(drive):
            return
        params = dict(parse_qsl(query))
        with fake.lock:
            if folder not in fake.folders:
                return self._graph_error(404, "itemNotFound", "The resource could not be found.")
            if fake._is_denied(folder):
                return self._graph_error(403, "accessDenied", "Access denied")
            prefix = folder + "/"
            children = []
            for path, item in fake.folders.items():
                if path.startswith(prefix) and "/" not in path.removeprefix(prefix):
                    count = len(fake.files.get(path, {})) + sum(
                        1 for p in fake.folders if p.startswith(path + "/") and "/" not in p[len(path) + 1:])
                    children.append(item.as_json(child_count=count))
            children += [item.as_json() for item in fake.files.get(folder, {}).values()]
            page_size = fake.page_size
        children.sort(key=lambda c: c["name"].lower())
        if "$select" in params:
            keep = set(params["$select"].split(","))
            children = [{k: v for k, v in c.items() if k in keep} for c in children]
        start = int(params.get("$skiptoken") or 0)
        size = min(page_size, int(params.get("$top") or page_size))
        body = {
            "@odata.context": f"{fake.base_url}/$metadata#Collection(driveItem)",
            "value": children[start:start + size],
        }
        if start + size < len(children):
            params["$skiptoken"] = str(start + size)
            body["@odata.nextLink"] = f"{fake.origin}{urlsplit(self.path).path}?{urlencode(params)}"
        self._json(200, body)

    def _content(self, drive: str, item_id: str) -> None:
        fake = self.fake
        if not self._check_drive(drive):
            return
        with fake.lock:
            found = [(folder, item) for folder, items in fake.files.items()
                     for item in items.values() if item.id == item_id]
            if not found:
                return self._graph_error(404, "itemNotFound", "The resource could not be found.")
            folder, item = found[0]
            if fake._is_denied(folder):
                return self._graph_error(403, "accessDenied", "Access denied")
            token = secrets.token_urlsafe(24)
            fake.downloads[token] = item.data
            origin = fake.origin if fake.download_on_graph_host else fake.download_origin
        self._send(302, b"", "text/plain", {"Location": f"{origin}/download/{token}"})

    def _download(self, token: str) -> None:
        fake = self.fake
        with fake.lock:
            fake.download_requests.append((self.path, dict(self.headers)))
            data = fake.downloads.get(token)
        if self.headers.get("Authorization"):
            # The real pre-authenticated URL refuses a bearer token meant for Graph.
            return self._json(401, {"error": {"code": "invalidRequest",
                                              "message": "Unexpected Authorization header."}})
        if data is None:
            return self._json(404, {"error": {"code": "itemNotFound", "message": "Link expired."}})
        self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        for start in range(0, len(data), 16 * 1024):
            self.wfile.write(data[start:start + 16 * 1024])


@pytest.fixture
def graph_server(outbound_allow):
    fake = GraphFake()
    # Local servers: let this test's requests reach Graph and its download host.
    outbound_allow(fake.origin)
    outbound_allow(fake.download_origin)
    yield fake
    fake.close()


def onedrive_settings(fake: GraphFake, folder_path: str) -> tuple[dict, dict]:
    """Settings and credentials for a OneDriveProvider that reads `folder_path` on `fake`."""
    settings = {
        "tenant_id": DEFAULT_TENANT,
        "drive_path": DEFAULT_DRIVE,
        "folder_path": folder_path,
        "graph_base_url": fake.base_url,
        "login_base_url": fake.login_url,
    }
    credentials = {"client_id": DEFAULT_CLIENT_ID, "client_secret": DEFAULT_SECRET}
    return settings, credentials
