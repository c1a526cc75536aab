"""What every call under /api/ can count on, whatever it sends: one JSON error shape
{code, detail, field, request_id}, a body size limit, a nesting limit, and an
X-Request-ID that also marks the server's log lines for the call."""

import io
import json
import logging

import pytest
from django.conf import settings
from django.test import Client
from rest_framework.exceptions import ParseError

from loyalty import api as pos_api
from stores.api import BodyTooLarge, JSONParser
from stores.services import api_key_create

API = "/api/pos/v1/"
SHAPE = {"code", "detail", "field", "request_id"}


@pytest.fixture
def pos(company):
    _, raw = api_key_create(company=company, name="Register 1", level=1)
    return Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_ACCOUNT_UID=str(company.account_uid),
                  raise_request_exception=False)


def nested(depth: int) -> str:
    """A lookup body whose deepest value sits `depth` arrays and objects down."""
    return '{"phone": ' + "[" * (depth - 1) + "1" + "]" * (depth - 1) + "}"


def error(response, status: int) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert body.keys() >= SHAPE, body
    assert body["request_id"] == response["X-Request-ID"]
    return body


def test_api_json_deeper_than_32_levels_is_a_400_naming_the_depth(pos):
    # given a body nested 33 levels
    # when it is posted
    response = pos.post(API + "lookup", nested(33), content_type="application/json")
    # then it is refused for its depth, before parsing
    assert error(response, 400)["code"] == "json_too_deep"


def test_api_json_32_levels_deep_is_parsed(pos):
    # given a body nested 32 levels (a phone that is a list: invalid, but readable)
    # when it is posted
    response = pos.post(API + "lookup", nested(32), content_type="application/json")
    # then the serializer refuses the field; the depth was fine
    body = error(response, 400)
    assert (body["code"], body["field"]) == ("invalid", "phone")


def test_api_json_nested_a_thousand_levels_is_a_400_not_a_500(pos):
    # given bodies nested 1,000 and 100,000 levels, closed and unclosed
    for text in (nested(1000), "[" * 100_000, '{"a": "[[[[", "b": ' + "{" * 5000):
        # when each is posted
        response = pos.post(API + "lookup", text, content_type="application/json")
        # then each is a 400 about depth
        assert error(response, 400)["code"] == "json_too_deep"


def test_api_json_brackets_inside_strings_do_not_count_as_depth(pos):
    # given a phone made of 100 brackets and escaped quotes
    text = json.dumps({"email": "[" * 100 + '\\"{' * 100})
    # when it is posted
    response = pos.post(API + "lookup", text, content_type="application/json")
    # then the email is looked at (invalid), not the depth
    body = error(response, 400)
    assert (body["code"], body["field"]) == ("invalid", "email")


def test_api_body_over_the_limit_is_a_413_json(pos):
    # given a 5 MB body
    big = json.dumps({"phone": "1" * 5 * 1024 * 1024})
    # when it is posted
    response = pos.post(API + "lookup", big, content_type="application/json")
    # then it is a JSON 413 (not Django's HTML 400) saying the limit
    body = error(response, 413)
    assert body["code"] == "body_too_large" and str(settings.API_MAX_BODY_BYTES) in body["detail"]


def test_api_body_limit_holds_without_a_content_length():
    # given a parser reading a stream with more bytes than the limit and no length announced
    stream = io.BytesIO(b'{"a": "' + b"x" * settings.API_MAX_BODY_BYTES + b'"}')
    # when it parses / then it stops at the limit
    with pytest.raises(BodyTooLarge):
        JSONParser().parse(stream)
    with pytest.raises(ParseError, match="deeper than 32"):
        JSONParser().parse(io.BytesIO(b"[" * 40 + b"]" * 40))
    assert JSONParser().parse(io.BytesIO(b'{"a": [1, {"b": "]]"}]}')) == {"a": [1, {"b": "]]"}]}


def test_api_unknown_path_is_a_404_json(pos):
    # when a path under /api/ names nothing
    response = pos.get("/api/pos/v1/no-such-call")
    # then the answer is the JSON error shape
    assert error(response, 404)["code"] == "not_found"
    assert error(pos.post("/api/nothing/here", "{}", content_type="application/json"), 404)


def test_api_pages_outside_api_keep_html_errors(client):
    # when a page outside /api/ is missing / then Django's HTML 404 is untouched
    response = client.get("/no-such-page/")
    assert response.status_code == 404 and not response["Content-Type"].startswith("application/json")
    assert response["X-Request-ID"]


def test_api_wrong_method_is_a_405_json(pos):
    # when a POST-only call is sent a GET
    response = pos.get(API + "lookup")
    # then it is a JSON 405 that says which methods work
    assert error(response, 405)["code"] == "method_not_allowed"
    assert "POST" in response["Allow"]


def test_api_body_that_is_not_json_is_a_415_json(pos):
    # when a body is sent as text/plain
    response = pos.post(API + "lookup", '{"phone": "3035550150"}', content_type="text/plain")
    # then it is a JSON 415
    assert error(response, 415)["code"] == "unsupported_media_type"


def test_api_authentication_and_level_errors_are_json(company):
    # given a wrong key, and a level-0 key calling lookup
    wrong = Client(HTTP_AUTHORIZATION="Bearer nope", HTTP_X_ACCOUNT_UID=str(company.account_uid))
    _, raw = api_key_create(company=company, name="Push", level=0)
    push = Client(HTTP_AUTHORIZATION=f"Bearer {raw}", HTTP_X_ACCOUNT_UID=str(company.account_uid))
    # when they call / then both errors have the shape
    assert error(wrong.get(API + "ping"), 401)["code"] == "authentication_failed"
    assert error(push.post(API + "lookup", {}, content_type="application/json"), 403)["code"] == \
        "permission_denied"
    assert error(Client().get(API + "ping"), 401)["code"] == "not_authenticated"


def test_api_invalid_body_names_the_field(pos, store):
    # given a transaction whose first item has no price
    body = {"transaction_id": "T-1", "store_id": store.pk, "subtotal": "5.00",
            "items": [{"product": "Gummies", "quantity": "1"}]}
    # when it is sent
    response = pos.post(API + "send_transaction", body, content_type="application/json")
    # then the error says where, and still lists every field's errors
    body = error(response, 400)
    assert body["field"] == "items.0.unit_price" and body["detail"].startswith("items.0.unit_price: ")
    assert "unit_price" in body["fields"]["items"]["0"]


def test_api_server_error_is_a_500_json_with_the_request_id_in_the_log(pos, monkeypatch, caplog):
    # given a call that fails inside the server
    def broken(self, request):
        raise RuntimeError("the database said no")
    monkeypatch.setattr(pos_api.PingView, "get", broken)
    # when it is called
    with caplog.at_level(logging.ERROR):
        response = pos.get(API + "ping")
    # then the caller gets JSON with a request id, and no detail of the failure
    body = error(response, 500)
    assert body["code"] == "server_error" and "database" not in response.content.decode()
    # and the server's one log line of that failure, with its traceback, carries the same id
    logged = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert [(r.request_id, bool(r.exc_info)) for r in logged] == [(body["request_id"], True)]
    line = logging.Formatter(settings.LOGGING["formatters"]["plain"]["format"]).format(logged[0])
    assert f"[{body['request_id']}]" in line and "the database said no" in line


def test_api_request_id_is_taken_from_the_caller_when_it_is_a_plain_token(pos):
    # when the POS sends its own request id / then it is echoed, in the header and the body
    response = pos.get(API + "no-such-call", HTTP_X_REQUEST_ID="pos-42.register:7")
    assert response["X-Request-ID"] == "pos-42.register:7"
    assert error(response, 404)["request_id"] == "pos-42.register:7"
    assert pos.get(API + "ping", HTTP_X_REQUEST_ID="pos-43")["X-Request-ID"] == "pos-43"
    # when it sends one that could break a log line / then a fresh one replaces it
    for bad in ("a b", "x" * 200, "id\nFAKE LOG LINE", ""):
        replaced = pos.get(API + "no-such-call", HTTP_X_REQUEST_ID=bad)["X-Request-ID"]
        assert replaced != bad and len(replaced) == 32
