"""Report files in a OneDrive / SharePoint folder, read through Microsoft Graph.

The app signs in with the client-credentials grant (an Entra ID app registration with a
client secret and the Files.Read.All or Sites.Selected application permission), lists
one folder's children and downloads a file through Graph's pre-authenticated URL.
"""

from __future__ import annotations

import datetime as dt
import io
from urllib.parse import quote, urlsplit

import requests
import urllib3
from django.conf import settings as django_settings

from ..connectors import REPORT_FEATURES, Listing
from .base import ConnectionProblem, ProviderError, ReportFile, ReportProvider
from .http import ApiClient, credential_key, json_or_none

GRAPH_SCOPE = "https://graph.microsoft.com/.default"
LIST_SELECT = "id,name,eTag,cTag,size,lastModifiedDateTime,file,folder"
# Drive addresses that work with an app-only token; /me/drive needs a signed-in user.
DRIVE_PATH_PREFIXES = ("/drives/", "/users/", "/sites/", "/groups/")
# Token-endpoint error codes that mean the app id or secret is wrong, expired or unknown.
BAD_CLIENT_ERRORS = ("invalid_client", "unauthorized_client")
BAD_CLIENT_AADSTS = ("AADSTS7000215", "AADSTS7000222", "AADSTS700016", "AADSTS7000216")
# Tenant id that does not exist, or is not even a GUID / domain name.
BAD_TENANT_AADSTS = ("AADSTS90002", "AADSTS900023", "AADSTS90013")


class OneDriveProvider(ReportProvider):
    kind = "onedrive"
    label = "OneDrive folder"
    listing = Listing("OneDrive reports", "Reports",
                      "Nightly CSV reports in a OneDrive or SharePoint folder, read through Microsoft Graph.",
                      "On", "#0f6cbd", REPORT_FEATURES, keywords="microsoft sharepoint graph csv")
    choice_help = "A OneDrive or SharePoint folder, read through Microsoft Graph with an app registration."
    required_headers = ("TransactionID", "Patient Number")
    deletion_removes_data = False
    setting_fields = (
        ("tenant_id", "Tenant id", "The Microsoft Entra tenant (directory) id or its domain, "
                                   "e.g. contoso.onmicrosoft.com."),
        ("drive_path", "Drive", "Which drive holds the folder: /users/reports@contoso.com/drive "
                                "or /drives/{drive-id}. /me/drive does not work for an app."),
        ("folder_path", "Folder path", "The folder inside the drive, e.g. POS Reports/Daily."),
        ("graph_base_url", "Graph URL", "Leave empty for https://graph.microsoft.com/v1.0."),
        ("login_base_url", "Sign-in URL", "Leave empty for https://login.microsoftonline.com."),
    )
    url_settings = (("graph_base_url", "Graph URL"), ("login_base_url", "Sign-in URL"))
    credential_fields = (
        ("client_id", "Application (client) id", "From the app registration's overview page."),
        ("client_secret", "Client secret", "The secret's value, not its secret id."),
    )

    download_chunk_size = 64 * 1024

    def __init__(self, *, settings: dict, credentials: dict, company_slug: str = ""):
        super().__init__(settings=settings, credentials=credentials, company_slug=company_slug)
        self._http = _GraphHttp(self)

    @property
    def connect_timeout(self) -> float:
        return self._http.timeout[0]

    @connect_timeout.setter
    def connect_timeout(self, seconds: float) -> None:
        self._http.timeout = (float(seconds), self._http.timeout[1])

    @property
    def read_timeout(self) -> float:
        return self._http.timeout[1]

    @read_timeout.setter
    def read_timeout(self, seconds: float) -> None:
        self._http.timeout = (self._http.timeout[0], float(seconds))

    # -- settings ------------------------------------------------------------------------

    def _setting(self, name: str) -> str:
        return str(self.settings.get(name) or "").strip()

    @property
    def tenant_id(self) -> str:
        tenant = self._setting("tenant_id")
        if not tenant:
            raise ProviderError(ConnectionProblem.MISCONFIGURED, "The tenant id is missing.")
        return tenant

    @property
    def drive_path(self) -> str:
        raw = self._setting("drive_path")
        if not raw and self._setting("drive_id"):
            raw = "/drives/" + self._setting("drive_id")
        if not raw:
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                "The drive is missing; use /users/{user or UPN}/drive or /drives/{drive-id}.")
        path = "/" + raw.strip("/")
        if not path.startswith(DRIVE_PATH_PREFIXES):
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                f"Drive '{raw}' cannot be read by an app; use /users/{{user or UPN}}/drive "
                                "or /drives/{drive-id}.")
        return "/".join(quote(segment, safe="@!") for segment in path.split("/"))

    @property
    def folder_path(self) -> str:
        folder = self._setting("folder_path").strip("/")
        if not folder:
            raise ProviderError(ConnectionProblem.MISCONFIGURED, "The folder path is missing.")
        return folder

    def _base_url(self, name: str, default: str) -> str:
        url = (self._setting(name) or default).rstrip("/")
        if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                f"'{url}' is not a valid URL; it must start with https://.")
        return url

    @property
    def graph_base_url(self) -> str:
        return self._base_url("graph_base_url", "https://graph.microsoft.com/v1.0")

    @property
    def login_base_url(self) -> str:
        return self._base_url("login_base_url", "https://login.microsoftonline.com")

    def _check_settings(self) -> None:
        # Reading each property raises on a bad setting, before the first network call.
        _ = (self.tenant_id, self.drive_path, self.folder_path, self.graph_base_url, self.login_base_url)
        for name, label in (("client_id", "client id"), ("client_secret", "client secret")):
            if not str(self.credentials.get(name) or "").strip():
                raise ProviderError(ConnectionProblem.MISCONFIGURED, f"The {label} is missing.")

    # -- ReportProvider ------------------------------------------------------------------

    def test(self) -> str:
        files = self.list_files()
        return (f"OneDrive folder '{self.folder_path}' is reachable: "
                f"{len(files)} CSV file{'s' if len(files) != 1 else ''}.")

    def list_files(self) -> list[ReportFile]:
        self._check_settings()
        folder = self.folder_path
        quoted_folder = "/".join(quote(part, safe="") for part in folder.split("/"))
        url = f"{self.graph_base_url}{self.drive_path}/root:/{quoted_folder}:/children"
        params: dict | None = {"$select": LIST_SELECT}
        files = []
        while url:
            body = self._graph_json(url, params, what=f"folder '{folder}'")
            for item in body.get("value", []):
                name = item.get("name", "")
                if "file" not in item or not name.lower().endswith(".csv"):
                    continue
                files.append(ReportFile(
                    key=f"{folder}/{name}",
                    # cTag changes only with the content; eTag also with renames and metadata.
                    etag=item.get("cTag") or item.get("eTag") or "",
                    size=int(item.get("size") or 0),
                    modified_at=_parse_time(item.get("lastModifiedDateTime")),
                    item_id=item["id"],
                ))
            url = body.get("@odata.nextLink") or ""
            params = None  # the next link already carries the query
            if url:
                self._check_same_origin(url)
        return sorted(files, key=lambda f: f.key)

    def open(self, file: ReportFile):
        self._check_settings()
        if not file.item_id:
            raise ProviderError(ConnectionProblem.MISCONFIGURED, f"File '{file.key}' has no drive item id.")
        url = f"{self.graph_base_url}{self.drive_path}/items/{quote(file.item_id, safe='!')}/content"
        # Follow the redirect ourselves: the pre-authenticated download URL must never see
        # our bearer token, whatever host it is on.
        response = self._graph_request(url, None, what=f"file '{file.key}'", allow_redirects=False,
                                       stream=True)
        if 300 <= response.status_code < 400:
            location = response.headers.get("Location", "")
            response.close()
            response = self._download(location, file)
        return io.BufferedReader(_ResponseStream(response, self._host(response.url)),
                                 buffer_size=self.download_chunk_size)

    # -- HTTP ----------------------------------------------------------------------------

    _host = staticmethod(ApiClient._host)

    def _send(self, method: str, url: str, **kwargs) -> requests.Response:
        return self._http._send(method, url, **kwargs)

    def _token_key(self) -> str:
        return credential_key(self.login_base_url, self.tenant_id, self.credentials.get("client_id"),
                              self.credentials.get("client_secret"))

    def _has_token(self) -> bool:
        return self._http.tokens.cached(self._token_key())

    def _token(self) -> str:
        return self._http._bearer(self._token_key(), self._fetch_token)

    def _fetch_token(self) -> tuple[str, float]:
        tenant, client_id = self.tenant_id, str(self.credentials["client_id"]).strip()
        url = f"{self.login_base_url}/{quote(tenant, safe='')}/oauth2/v2.0/token"
        response = self._send("POST", url, data={
            "client_id": client_id,
            "client_secret": str(self.credentials["client_secret"]).strip(),
            "scope": GRAPH_SCOPE,
            "grant_type": "client_credentials",
        })
        body = _json_or_empty(response)
        if response.status_code == 200 and body.get("access_token"):
            return str(body["access_token"]), int(body.get("expires_in") or 0)
        raise self._token_error(response, body, tenant, client_id)

    def _token_error(self, response, body: dict, tenant: str, client_id: str) -> ProviderError:
        host = self._host(response.url)
        if response.status_code >= 500 or response.status_code == 429:
            return ProviderError(ConnectionProblem.UNREACHABLE,
                                 f"Microsoft sign-in at {host} is unavailable (HTTP {response.status_code}).")
        error = str(body.get("error") or "")
        # The description's first line names the AADSTS code; later lines are trace ids.
        lines = str(body.get("error_description") or "").splitlines()
        detail = self._http._scrub(lines[0].strip() if lines else f"HTTP {response.status_code}")
        if any(code in detail for code in BAD_TENANT_AADSTS):
            return ProviderError(ConnectionProblem.MISCONFIGURED,
                                 f"Tenant '{tenant}' was not found by Microsoft sign-in: {detail}")
        if error in BAD_CLIENT_ERRORS or any(code in detail for code in BAD_CLIENT_AADSTS):
            return ProviderError(ConnectionProblem.BAD_CREDENTIALS,
                                 f"Microsoft sign-in rejected client id '{client_id}' in tenant "
                                 f"'{tenant}': {detail}")
        if not error:
            return ProviderError(ConnectionProblem.MISCONFIGURED, f"{host} did not answer like "
                                 f"Microsoft sign-in (HTTP {response.status_code}).")
        return ProviderError(ConnectionProblem.MISCONFIGURED,
                             f"Microsoft sign-in refused the token request ({error}): {detail}")

    def _graph_request(self, url: str, params: dict | None, *, what: str, **kwargs) -> requests.Response:
        """A GET to Graph with the bearer token; a non-2xx/3xx answer becomes ProviderError."""
        cached = self._has_token()
        headers = {"Authorization": f"Bearer {self._token()}"}
        response = self._send("GET", url, params=params, headers=headers, **kwargs)
        if response.status_code == 401 and cached:
            # A cached token may have been revoked or expired early: get a fresh one, once.
            response.close()
            self._http.tokens.drop(self._token_key())
            headers = {"Authorization": f"Bearer {self._token()}"}
            response = self._send("GET", url, params=params, headers=headers, **kwargs)
        if response.status_code < 400:
            return response
        problem = self._graph_error(response, what)
        response.close()
        raise problem

    def _graph_json(self, url: str, params: dict | None, *, what: str) -> dict:
        response = self._graph_request(url, params, what=what)
        body = _json_or_empty(response)
        if "value" not in body:
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                f"{self._host(url)} did not answer like Microsoft Graph "
                                f"(HTTP {response.status_code}).")
        return body

    def _graph_error(self, response: requests.Response, what: str) -> ProviderError:
        status = response.status_code
        error = _json_or_empty(response).get("error")
        error = error if isinstance(error, dict) else {}
        code = str(error.get("code") or "")
        detail = f"{code}: {error.get('message') or ''}".strip(": ") or f"HTTP {status}"
        drive = self._setting("drive_path") or self._setting("drive_id")
        if status == 401:
            return ProviderError(ConnectionProblem.BAD_CREDENTIALS,
                                 f"Microsoft Graph did not accept the app's token ({detail}).")
        if status == 403:
            return ProviderError(ConnectionProblem.NO_PERMISSION,
                                 f"The app may not read {what} in {drive}; grant it Files.Read.All "
                                 f"or access to this site ({detail}).")
        if status == 404 and code == "itemNotFound":
            return ProviderError(ConnectionProblem.NOT_FOUND,
                                 f"{what[:1].upper()}{what[1:]} was not found in {drive}.")
        if status == 404:
            return ProviderError(ConnectionProblem.NOT_FOUND, f"Drive {drive} was not found ({detail}).")
        if status == 429 or status >= 500:
            retry = response.headers.get("Retry-After")
            return ProviderError(ConnectionProblem.UNREACHABLE,
                                 f"Microsoft Graph is busy or unavailable (HTTP {status}"
                                 f"{f', retry after {retry} s' if retry else ''}).")
        return ProviderError(ConnectionProblem.MISCONFIGURED,
                             f"Microsoft Graph refused to read {what} in {drive} ({detail}).")

    def _check_same_origin(self, url: str) -> None:
        # A next link elsewhere would receive our bearer token; Graph never sends one.
        expected = urlsplit(self.graph_base_url)
        actual = urlsplit(url)
        if (actual.scheme, actual.netloc) != (expected.scheme, expected.netloc):
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                f"Microsoft Graph sent a next page link to another host ({actual.netloc}).")

    def _download(self, location: str, file: ReportFile) -> requests.Response:
        if urlsplit(location).scheme not in ("http", "https"):
            raise ProviderError(ConnectionProblem.MISCONFIGURED,
                                f"Microsoft Graph gave no download URL for file '{file.key}'.")
        # No Authorization header: the URL itself carries a short-lived grant.
        response = self._send("GET", location, stream=True)
        if response.status_code == 200:
            return response
        status = response.status_code
        response.close()
        host = self._host(location)
        if status == 404:
            problem = ConnectionProblem.NOT_FOUND
        elif status in (401, 403):
            # The pre-authenticated URL lapsed or was refused; the next run gets a new one.
            problem = ConnectionProblem.NO_PERMISSION
        else:
            problem = ConnectionProblem.UNREACHABLE
        raise ProviderError(problem, f"Downloading file '{file.key}' from {host} failed (HTTP {status}).")


class _GraphHttp(ApiClient):
    """Microsoft Graph and its sign-in, as OneDriveProvider calls them: one try each (a
    sync run is retried as a whole), messages naming the host, and every answer handed back
    for the provider to word."""

    raise_after_retries = False

    def __init__(self, provider: OneDriveProvider):
        super().__init__(timeout=(float(django_settings.GRAPH_CONNECT_TIMEOUT_SECONDS),
                                  float(django_settings.GRAPH_READ_TIMEOUT_SECONDS)), max_attempts=1,
                         token_skew_at_most_half=False)
        self._provider = provider

    def _secrets(self) -> tuple[str, ...]:
        return (str(self._provider.credentials.get("client_secret") or ""),)

    def _unreachable(self, problem: str, attempts: int, unsure: bool = False) -> ProviderError:
        return ProviderError(ConnectionProblem.UNREACHABLE, self._scrub(f"{problem}."), acted_maybe=unsure)


class _ResponseStream(io.RawIOBase):
    """The body of a streamed download; closing it closes the HTTP response."""

    def __init__(self, response: requests.Response, host: str):
        self._response = response
        self._host = host
        # Undo any Content-Encoding (gzip) so callers read the file's own bytes.
        response.raw.decode_content = True

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        try:
            data = self._response.raw.read(len(buffer))
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise ProviderError(ConnectionProblem.UNREACHABLE,
                                f"The download from {self._host} broke off.") from exc
        buffer[:len(data)] = data
        return len(data)

    def close(self) -> None:
        if not self.closed:
            self._response.close()
        super().close()


def _json_or_empty(response: requests.Response) -> dict:
    body = json_or_none(response)
    return body if isinstance(body, dict) else {}


def _parse_time(value):
    if not value:
        return None
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        return None
