"""cors through a real gateway: preflights answered here, actual answers labelled for allowed origins only."""

from __future__ import annotations

import uuid

from tests.gateway.harness import Api

APP = "https://app.example.com"
CONFIG = {
    "origins": [APP, "https://*.example.org"],
    "methods": ["GET", "POST"],
    "headers": ["Content-Type", "X-Api-Key"],
    "exposed_headers": ["X-Total-Count"],
    "credentials": True,
    "max_age": 600,
}


def _api(echo_server, config=None, *, extra=(), routes=None):
    return Api(
        base_path="/svc",
        targets=[echo_server.origin],
        routes=routes if routes is not None else [("/items", frozenset({"GET", "POST"}))],
        policies=[("cors", config or CONFIG), *extra],
    )


def _path():
    return f"/svc/items/{uuid.uuid4().hex}"


def _reached(echo_server, path):
    upstream_path = path.removeprefix("/svc")
    return [r for r in echo_server.requests if r.path == upstream_path]


def _preflight(http, url, origin, method="POST", headers="content-type, x-api-key"):
    return http.options(
        url,
        headers={"Origin": origin, "Access-Control-Request-Method": method, "Access-Control-Request-Headers": headers},
    )


def test_preflight_is_answered_at_the_gateway_for_a_route_without_options(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    path = _path()
    response = _preflight(http, f"{gateway.url}{path}", APP)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-methods"] == "GET, POST"
    assert response.headers["access-control-allow-headers"] == "Content-Type, X-Api-Key"
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-max-age"] == "600"
    assert "Origin" in response.headers["vary"]
    assert "Access-Control-Request-Headers" in response.headers["vary"]
    assert response.content == b""
    assert _reached(echo_server, path) == []


def test_preflight_from_a_wildcard_subdomain_echoes_that_origin(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    response = _preflight(http, f"{gateway.url}{_path()}", "https://shop.eu.example.org")
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == "https://shop.eu.example.org"


def test_preflight_from_a_disallowed_origin_gets_no_cors_headers_and_is_not_forwarded(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    for origin in ("https://evil.example.net", "https://app.example.com.evil.net", "null", "https://example.org"):
        path = _path()
        response = _preflight(http, f"{gateway.url}{path}", origin)
        assert response.status_code == 204
        assert not [h for h in response.headers if h.startswith("access-control-")], origin
        assert "Origin" in response.headers["vary"]
        assert _reached(echo_server, path) == []


def test_actual_request_from_allowed_origin_is_labelled(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    response = http.get(f"{gateway.url}{_path()}", headers={"Origin": APP})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    assert response.headers["access-control-expose-headers"] == "X-Total-Count"
    assert response.headers["vary"] == "Origin"


def test_actual_request_from_other_origin_reaches_upstream_without_cors_headers(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    path = _path()
    response = http.get(f"{gateway.url}{path}", headers={"Origin": "https://evil.example.net"})
    assert response.status_code == 200
    assert "access-control-allow-origin" not in response.headers
    assert response.headers["vary"] == "Origin"
    assert len(_reached(echo_server, path)) == 1
    # Without any Origin the answer still says it varies by Origin (shared caches).
    assert http.get(f"{gateway.url}{_path()}").headers["vary"] == "Origin"


def test_gateway_errors_carry_cors_headers_so_the_browser_can_read_them(gateway, echo_server, http):
    gateway.configure(_api(echo_server, extra=[("ip-restriction", {"deny": ["127.0.0.0/8"]})]))
    response = http.get(f"{gateway.url}{_path()}", headers={"Origin": APP})
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "ip_denied"
    assert response.headers["access-control-allow-origin"] == APP
    assert response.headers["access-control-allow-credentials"] == "true"
    # The preflight itself is answered before the IP rule: CORS runs first (priority 2100 > 2050).
    assert _preflight(http, f"{gateway.url}{_path()}", APP).status_code == 204


def test_star_without_credentials_answers_star_and_requested_headers(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"origins": ["*"]}))
    preflight = _preflight(http, f"{gateway.url}{_path()}", "https://anyone.test", headers="x-one, x-two")
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert preflight.headers["access-control-allow-headers"] == "x-one, x-two"
    assert "access-control-allow-credentials" not in preflight.headers
    actual = http.get(f"{gateway.url}{_path()}", headers={"Origin": "https://anyone.test"})
    assert actual.headers["access-control-allow-origin"] == "*"
    assert "vary" not in actual.headers


def test_options_without_preflight_headers_is_routed_normally(gateway, echo_server, http):
    gateway.configure(_api(echo_server, routes=[]))
    path = _path()
    response = http.options(f"{gateway.url}{path}", headers={"Origin": APP})
    assert response.status_code == 200
    assert response.json()["method"] == "OPTIONS"
    assert response.headers["access-control-allow-origin"] == APP


def test_preflight_continue_forwards_the_preflight(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"origins": [APP], "preflight_continue": True}, routes=[]))
    path = _path()
    response = _preflight(http, f"{gateway.url}{path}", APP)
    assert response.status_code == 200
    assert response.json()["method"] == "OPTIONS"
    assert len(_reached(echo_server, path)) == 1


def test_a_new_snapshot_changes_the_allowed_origins(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    other = "https://other.example.com"
    assert "access-control-allow-origin" not in _preflight(http, f"{gateway.url}{_path()}", other).headers
    gateway.configure(_api(echo_server, {**CONFIG, "origins": [other]}))
    assert _preflight(http, f"{gateway.url}{_path()}", other).headers["access-control-allow-origin"] == other
    assert "access-control-allow-origin" not in _preflight(http, f"{gateway.url}{_path()}", APP).headers


def test_upstream_cors_headers_are_replaced_by_the_policy(gateway, echo_server, http):
    # response-transformer (800) adds what a CORS-unaware upstream might send; the cors policy's
    # response hook runs after it (response hooks run innermost first) and owns these headers.
    upstream_like = {"add": {"headers": {"Access-Control-Allow-Origin": "*", "Access-Control-Max-Age": "1"}}}
    gateway.configure(_api(echo_server, extra=[("response-transformer", upstream_like)]))
    allowed = http.get(f"{gateway.url}{_path()}", headers={"Origin": APP})
    assert allowed.headers.get_list("access-control-allow-origin") == [APP]
    assert "access-control-max-age" not in allowed.headers
    refused = http.get(f"{gateway.url}{_path()}", headers={"Origin": "https://evil.example.net"})
    assert "access-control-allow-origin" not in refused.headers
