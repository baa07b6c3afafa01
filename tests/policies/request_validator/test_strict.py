"""request-validator ``strict``: with ``openapi: true``, only the document's operations pass a real gateway."""

from __future__ import annotations

from tests.gateway.harness import Api

DOCUMENT = {
    "openapi": "3.0.3",
    "info": {"title": "items", "version": "1"},
    "paths": {
        "/items": {"get": {}, "post": {}},
        "/items/{id}": {"parameters": [{"name": "id", "in": "path", "required": True}], "get": {}, "put": {}},
    },
}


def configure(harness, echo_origin, **config):
    harness.configure(
        Api(
            base_path="/shop",
            targets=[echo_origin],
            openapi=DOCUMENT,
            policies=[("request-validator", {"openapi": True, **config})],
        )
    )


def test_strict_refuses_what_the_document_does_not_define(gateway, echo_server, http):
    configure(gateway, echo_server.origin, strict=True)
    base = gateway.url
    assert http.get(f"{base}/shop/items").status_code == 200
    assert http.put(f"{base}/shop/items/1").status_code == 200
    assert http.head(f"{base}/shop/items/1").status_code == 200, "HEAD is checked as the path's GET"
    wrong_method = http.delete(f"{base}/shop/items/1")
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "GET, HEAD, PUT"
    assert wrong_method.json()["error"] == {
        "code": "method_not_allowed",
        "message": "The API's OpenAPI document defines no such operation on this path.",
        "details": {"allowed": ["GET", "HEAD", "PUT"]},
    }
    unknown = http.get(f"{base}/shop/items/1/reviews")
    assert unknown.status_code == 404
    assert unknown.json()["error"]["code"] == "not_found"
    assert http.get(f"{base}/shop/other").status_code == 404


def test_without_strict_unknown_operations_pass_unvalidated(gateway, echo_server, http):
    configure(gateway, echo_server.origin)
    base = gateway.url
    assert http.delete(f"{base}/shop/items/1").status_code == 200
    assert http.get(f"{base}/shop/items/1/reviews").status_code == 200
