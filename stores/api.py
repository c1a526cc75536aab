"""What every JSON API under /api/ shares: the one error shape, the request body limits,
and the JSON parser that enforces them.

Every refusal is `{"code", "detail", "field", "request_id", ...}`: `code` is stable for
programs, `detail` is for people, `field` names the input at fault (null when none) and
`request_id` is the `X-Request-ID` of the call, also in the server's log lines. Errors may
carry more keys (`fields` for invalid bodies, `path` in a rule tree, `candidates`...).
"""

from __future__ import annotations

import codecs
import io
import json
import re
from http import HTTPStatus

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, JsonResponse
from rest_framework import exceptions, parsers
from rest_framework.response import Response
from rest_framework.settings import api_settings

from .errors import DomainError
from .requestid import request_id_current

API_PREFIX = "/api/"
# Deeper bodies are refused before parsing: Python's parser recurses once per level and
# fails (a 500) near 1,000. Our deepest real body, an audience rule tree, is about 15.
JSON_MAX_DEPTH = 32

# A JSON string, escapes included. Its closing quote is optional, so an unclosed one is
# consumed in one pass rather than rescanned from every quote inside it; the unrolled form
# reads a 1 MB string in milliseconds.
_JSON_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"?', re.DOTALL)
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")

# Codes for errors that reach the API without passing the handler below (Django's own 404
# for an unknown path, a 500, a body refused before any view ran).
_CODES = {400: "bad_request", 401: "not_authenticated", 403: "permission_denied", 404: "not_found",
          405: "method_not_allowed", 406: "not_acceptable", 413: "body_too_large",
          415: "unsupported_media_type", 429: "throttled", 500: "server_error"}


def error_body(*, code: str, detail: str, field: str | None = None, extra: dict | None = None) -> dict:
    extra = dict(extra or {})
    field = extra.pop("field", field)
    return {"code": code, "detail": detail, "field": field, **extra, "request_id": request_id_current()}


def error_response(status: int, *, code: str, detail: str, field: str | None = None) -> JsonResponse:
    """The error shape outside DRF (middleware, Django's own errors)."""
    return JsonResponse(error_body(code=code, detail=detail, field=field), status=status)


def body_too_large_detail() -> str:
    return f"The request body is larger than the API accepts ({settings.API_MAX_BODY_BYTES} bytes)."


class BodyTooLarge(exceptions.APIException):
    status_code = 413
    default_code = "body_too_large"
    default_detail = "The request body is too large."


def json_depth_check(text: str, limit: int = JSON_MAX_DEPTH) -> None:
    """Raises ParseError when arrays and objects nest deeper than `limit`. Counts brackets
    outside strings, without recursing, so any depth is measured safely."""
    depth = 0
    for char in _NOT_BRACKETS.sub("", _JSON_STRING.sub("", text)):
        if char in "[{":
            depth += 1
            if depth > limit:
                raise exceptions.ParseError(f"JSON nests deeper than {limit} levels.", code="json_too_deep")
        else:
            depth -= 1


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, after two checks: the body is at most API_MAX_BODY_BYTES (also
    when no Content-Length announced it) and nests at most JSON_MAX_DEPTH deep."""

    def parse(self, stream, media_type=None, parser_context=None):
        limit = settings.API_MAX_BODY_BYTES
        raw = stream.read(limit + 1)
        if len(raw) > limit:
            raise BodyTooLarge(body_too_large_detail())
        encoding = (parser_context or {}).get("encoding", settings.DEFAULT_CHARSET)
        try:
            text = codecs.decode(raw, encoding)
        except (LookupError, ValueError) as exc:
            raise exceptions.ParseError(f"JSON parse error - {exc}") from None
        json_depth_check(text)
        return super().parse(io.BytesIO(raw), media_type, parser_context)


def _first_error(errors, path: str = "") -> tuple[str | None, str]:
    """The dotted path and message of the first invalid field in DRF's nested errors."""
    if isinstance(errors, dict):
        for key, value in errors.items():
            if value:
                inner = path if key == api_settings.NON_FIELD_ERRORS_KEY else f"{path}.{key}".lstrip(".")
                return _first_error(value, inner)
    if isinstance(errors, list) and errors:
        if isinstance(errors[0], str):
            return path or None, str(errors[0])
        for index, value in enumerate(errors):
            if value:
                return _first_error(value, f"{path}.{index}".lstrip("."))
    return path or None, str(errors)


def api_exception_handler(exc, context):
    """DRF's handler, answering in the one error shape."""
    # Imported here: rest_framework.views reads DEFAULT_PARSER_CLASSES, this module's parser.
    from rest_framework.views import exception_handler as drf_exception_handler

    if isinstance(exc, DomainError):
        status = 404 if exc.code == "not_found" else exc.status
        return Response(error_body(code=exc.code, detail=exc.message, extra=exc.extra), status=status)
    if isinstance(exc, Http404):
        return Response(error_body(code="not_found", detail=str(exc) or "Not found."), status=404)
    response = drf_exception_handler(exc, context)
    if response is None:
        return None  # a bug: Django answers 500 and logs it, ApiErrorsMiddleware makes that JSON
    if isinstance(exc, exceptions.ValidationError):
        field, message = _first_error(response.data)
        detail = f"{field}: {message}" if field else message
        response.data = error_body(code="invalid", detail=detail, field=field,
                                   extra={"fields": response.data})
    else:
        codes = exc.get_codes() if isinstance(exc, exceptions.APIException) else None
        code = codes if isinstance(codes, str) else getattr(exc, "default_code", "error")
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        response.data = error_body(code=code, detail=str(detail))
    return response


def not_found(request, exception=None):
    """Django's 404 handler: under /api/ the JSON error at once (an unknown path, or a path
    whose converter refused a part, e.g. personas/null/balance), never the HTML page; that
    page needs the site's templates and static files, which an API answer must not."""
    if request.path_info.startswith(API_PREFIX):
        return error_response(404, code="not_found", detail="Not found.")
    from django.views.defaults import page_not_found

    return page_not_found(request, exception)


class ApiErrorsMiddleware:
    """Under /api/: refuses a body over API_MAX_BODY_BYTES before anything reads it, and
    turns every error Django answers itself (an unknown path's 404, a 500, a CSRF 403, the
    debug pages) into the JSON error shape. Other paths pass untouched."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        if not request.path_info.startswith(API_PREFIX):
            return self.get_response(request)
        try:
            length = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        if length > settings.API_MAX_BODY_BYTES:
            return error_response(413, code="body_too_large", detail=body_too_large_detail())
        response = self.get_response(request)
        is_json = response.get("Content-Type", "").startswith("application/json")
        if response.status_code >= 400 and not is_json:
            response = self._as_json(response)
        return response

    def process_exception(self, request, exception):
        if isinstance(exception, RequestDataTooBig) and request.path_info.startswith(API_PREFIX):
            return error_response(413, code="body_too_large", detail=body_too_large_detail())
        return None

    @staticmethod
    def _as_json(response):
        """The same response (its headers kept, and Django's note that it was logged), with
        the JSON error shape as its content."""
        status = response.status_code
        try:
            phrase = HTTPStatus(status).phrase
        except ValueError:
            phrase = "Error"
        body = error_body(code=_CODES.get(status, "error"), detail=f"{phrase}.")
        if response.streaming:
            return JsonResponse(body, status=status)
        response.content = json.dumps(body).encode()
        response["Content-Type"] = "application/json"
        if response.has_header("Content-Length"):  # CommonMiddleware's, for the page replaced
            response["Content-Length"] = str(len(response.content))
        return response
