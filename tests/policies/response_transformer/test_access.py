"""response-transformer through a real gateway: edited headers and JSON bodies, correctly re-framed."""

from __future__ import annotations

import json

from tests.gateway.harness import Api
from tests.gateway.servers import GZIP_PLAIN

CONFIG = {
    "remove": {"headers": ["X-Status"], "json": ["headers", "body_b64"]},
    "rename": {"json": {"method": "verb"}},
    "replace": {"json": {"target": "hidden"}},
    "add": {"headers": {"X-Env": "test"}, "json": {"edited": True}},
}


def _api(echo_server, config=None):
    return Api(base_path="/svc", targets=[echo_server.origin], policies=[("response-transformer", config or CONFIG)])


def test_json_response_is_edited_with_a_matching_content_length(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    response = http.get(f"{gateway.url}/svc/doc")
    assert response.status_code == 200
    document = response.json()
    assert "headers" not in document and "body_b64" not in document
    assert document["verb"] == "GET" and "method" not in document
    assert document["target"] == "hidden"
    assert document["edited"] is True
    assert response.headers["content-length"] == str(len(response.content))
    assert response.headers["x-env"] == "test"


def test_header_edits_apply_to_bodyless_answers(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    response = http.get(f"{gateway.url}/svc/status/204")
    assert response.status_code == 204
    assert response.content == b""
    assert "x-status" not in response.headers
    assert response.headers["x-env"] == "test"


def test_head_is_not_given_an_edited_length(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    response = http.head(f"{gateway.url}/svc/head-check")
    assert response.status_code == 200
    received = [r for r in echo_server.requests if r.path == "/head-check"][-1]
    # The upstream's own Content-Length for the JSON it would have sent, untouched.
    assert response.headers["content-length"] == str(len(json.dumps(received.as_json()).encode()))
    assert response.content == b""


def test_non_json_and_encoded_responses_are_relayed_unchanged(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    response = http.get(f"{gateway.url}/svc/gzip")
    assert response.headers["content-encoding"] == "gzip"
    assert response.content == GZIP_PLAIN
    cookies = http.get(f"{gateway.url}/svc/set-cookies")
    assert cookies.content == b"cookies"


def test_an_edit_that_changes_nothing_still_frames_the_body_correctly(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"remove": {"json": ["absent"]}}))
    response = http.get(f"{gateway.url}/svc/identity")
    assert response.json()["target"] == "/identity"
    assert response.headers["content-length"] == str(len(response.content))
