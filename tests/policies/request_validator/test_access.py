"""request-validator through a real gateway: valid requests pass untouched, invalid ones get 400 with details."""

from __future__ import annotations

import base64

from tests.gateway.harness import Api

ORDER_SCHEMA = {
    "type": "object",
    "required": ["items"],
    "additionalProperties": False,
    "properties": {
        "items": {
            "type": "array",
            "minItems": 1,
            "items": {
                "type": "object",
                "required": ["sku", "qty"],
                "properties": {"sku": {"type": "string"}, "qty": {"type": "integer", "minimum": 1}},
            },
        },
        "note": {"type": ["string", "null"]},
    },
}

OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "orders", "version": "1"},
    "paths": {
        "/orders": {
            "post": {
                "parameters": [{"$ref": "#/components/parameters/Tenant"}],
                "requestBody": {
                    "required": True,
                    "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Order"}}},
                },
            },
            "get": {
                "parameters": [
                    {"name": "limit", "in": "query", "required": True, "schema": {"type": "integer", "maximum": 100}},
                    {"name": "tag", "in": "query", "schema": {"type": "array", "items": {"type": "string"}}},
                ]
            },
        },
        "/orders/{orderId}": {
            "parameters": [{"name": "orderId", "in": "path", "required": True, "schema": {"type": "integer"}}],
            "get": {},
        },
        "/orders/export": {"get": {}},
    },
    "components": {
        "parameters": {
            "Tenant": {
                "name": "X-Tenant",
                "in": "header",
                "required": True,
                "schema": {"type": "string", "pattern": "^t-"},
            }
        },
        "schemas": {
            "Order": {
                "type": "object",
                "required": ["items"],
                "properties": {
                    "items": {"type": "array", "items": {"$ref": "#/components/schemas/Item"}},
                    "coupon": {"type": "string", "nullable": True},
                },
            },
            "Item": {
                "type": "object",
                "required": ["qty"],
                "properties": {"qty": {"type": "integer", "minimum": 1, "exclusiveMinimum": False}},
            },
        },
    },
}


def _api(echo_server, config, *, extra=(), openapi=None):
    return Api(
        base_path="/svc",
        targets=[echo_server.origin],
        openapi=openapi,
        policies=[("request-validator", config), *extra],
    )


def _errors(response):
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"]["code"] == "invalid_request"
    return body["error"]["details"]["errors"]


def test_valid_body_is_forwarded_byte_for_byte(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"body_schema": ORDER_SCHEMA}))
    raw = '{ "items" : [ {"sku": "caf\u00e9", "qty": 2.0} ],\n "note": null }'.encode()
    response = http.post(f"{gateway.url}/svc/orders", content=raw, headers={"Content-Type": "application/json"})
    assert response.status_code == 200
    assert base64.b64decode(response.json()["body_b64"]) == raw


def test_invalid_body_gets_400_with_pointer_paths(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"body_schema": ORDER_SCHEMA}))
    response = http.post(f"{gateway.url}/svc/orders", json={"items": [{"sku": "a", "qty": 0}, {"qty": "x"}], "x": 1})
    errors = _errors(response)
    by_path = {(e["in"], e["path"]): e["message"] for e in errors}
    assert by_path[("body", "/items/0/qty")] == "0 is less than the minimum of 1"
    assert ("body", "/items/1/qty") in by_path
    assert "'sku' is a required property" in by_path[("body", "/items/1")]
    assert "'x' was unexpected" in by_path[("body", "")]


def test_duplicate_keys_are_rejected_not_resolved(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"body_schema": ORDER_SCHEMA}))
    raw = b'{"items": [{"sku": "a", "qty": 1, "qty": -5}]}'
    response = http.post(f"{gateway.url}/svc/orders", content=raw, headers={"Content-Type": "application/json"})
    assert _errors(response) == [
        {"in": "body", "path": "", "message": "duplicate key 'qty': object keys must be unique"}
    ]


def test_malformed_missing_and_deep_bodies_are_400(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"body_schema": ORDER_SCHEMA}))
    url = f"{gateway.url}/svc/orders"
    json_type = {"Content-Type": "application/json"}
    assert "not valid JSON" in _errors(http.post(url, content=b'{"items": [', headers=json_type))[0]["message"]
    assert _errors(http.post(url, headers=json_type))[0]["message"] == "a request body is required"
    deep = b"[" * 100 + b"]" * 100
    assert "nested more than 64" in _errors(http.post(url, content=deep, headers=json_type))[0]["message"]
    very_deep = b"[" * 100_000 + b"]" * 100_000
    assert "nested more than 64" in _errors(http.post(url, content=very_deep, headers=json_type))[0]["message"]


def test_wrong_content_type_gets_415(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"body_schema": ORDER_SCHEMA}))
    response = http.post(f"{gateway.url}/svc/orders", content=b"items=1", headers={"Content-Type": "text/plain"})
    assert response.status_code == 415
    assert response.json()["error"]["details"] == {"allowed": ["application/json"]}


def test_methods_without_a_body_schema_pass(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"body_schema": ORDER_SCHEMA}))
    assert http.get(f"{gateway.url}/svc/orders").status_code == 200
    assert http.delete(f"{gateway.url}/svc/orders/1").status_code == 200


def test_errors_are_capped(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"body_schema": ORDER_SCHEMA}))
    response = http.post(f"{gateway.url}/svc/orders", json={"items": [{"sku": 1, "qty": 0}] * 50})
    assert len(_errors(response)) == 20


def test_body_over_the_size_limit_gets_413_not_400(gateway, echo_server, http):
    gateway.configure(
        _api(echo_server, {"body_schema": ORDER_SCHEMA}, extra=[("request-size-limit", {"max_bytes": 100})])
    )

    def parts():
        yield b'{"items": [], "note": "'
        for _ in range(50):
            yield b"x" * 10
        yield b'"}'

    response = http.post(f"{gateway.url}/svc/orders", content=parts(), headers={"Content-Type": "application/json"})
    assert response.status_code == 413


def test_it_validates_the_request_as_transformed(gateway, echo_server, http):
    gateway.configure(
        _api(
            echo_server,
            {"body_schema": ORDER_SCHEMA},
            extra=[("request-transformer", {"add": {"json": {"items": [{"sku": "gw", "qty": 1}]}}})],
        )
    )
    assert http.post(f"{gateway.url}/svc/orders", json={}).status_code == 200


def test_openapi_operation_body_with_refs_and_nullable(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"openapi": True}, openapi=OPENAPI))
    url = f"{gateway.url}/svc/orders"
    ok = http.post(url, json={"items": [{"qty": 1}], "coupon": None}, headers={"X-Tenant": "t-1"})
    assert ok.status_code == 200
    errors = _errors(http.post(url, json={"items": [{"qty": 0}]}, headers={"X-Tenant": "t-1"}))
    assert errors == [{"in": "body", "path": "/items/0/qty", "message": "0 is less than the minimum of 1"}]
    missing_header = _errors(http.post(url, json={"items": []}))
    assert missing_header == [
        {"in": "header", "path": "/x-tenant", "message": "the required header parameter is missing"}
    ]
    bad_header = _errors(http.post(url, json={"items": []}, headers={"X-Tenant": "u-1"}))
    assert bad_header[0]["path"] == "/x-tenant"
    assert _errors(http.post(url, headers={"X-Tenant": "t-1"}))[0]["message"] == "a request body is required"
    wrong_type = http.post(url, content=b"<order/>", headers={"X-Tenant": "t-1", "Content-Type": "application/xml"})
    assert wrong_type.status_code == 415
    assert wrong_type.json()["error"]["details"] == {"allowed": ["application/json"]}


def test_openapi_query_and_path_parameters(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"openapi": True}, openapi=OPENAPI))
    base = f"{gateway.url}/svc/orders"
    assert http.get(f"{base}?limit=10&tag=a&tag=b").status_code == 200
    assert _errors(http.get(base)) == [
        {"in": "query", "path": "/limit", "message": "the required query parameter is missing"}
    ]
    assert _errors(http.get(f"{base}?limit=ten"))[0] == {
        "in": "query",
        "path": "/limit",
        "message": "'ten' is not of type 'integer'",
    }
    assert _errors(http.get(f"{base}?limit=500"))[0]["message"] == "500 is greater than the maximum of 100"
    assert http.get(f"{base}/42").status_code == 200
    assert _errors(http.get(f"{base}/abc"))[0] == {
        "in": "path",
        "path": "/orderId",
        "message": "'abc' is not of type 'integer'",
    }
    # A concrete path wins over the template; an unknown operation is not validated.
    assert http.get(f"{base}/export").status_code == 200
    assert http.delete(f"{base}/abc").status_code == 200


def test_openapi_without_a_document_closes_the_api_with_503(gateway, echo_server, http):
    gateway.configure(_api(echo_server, {"openapi": True}, openapi=None))
    response = http.get(f"{gateway.url}/svc/orders")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "policy_unavailable"
