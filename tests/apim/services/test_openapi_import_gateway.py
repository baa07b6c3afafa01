"""An imported OpenAPI document enforced by a real gateway (the database-backed runtime) in front of a real upstream."""

from __future__ import annotations

import base64
import json
import time
from pathlib import Path

import httpx
import pytest

from apim.models import Tenant
from apim.services.catalog import api_publish, upstream_create
from apim.services.openapi_import import openapi_import
from apim.services.tenants import tenant_create
from gateway.headers import TrustedProxies
from gateway.runtime import GatewayRuntime
from tests.gateway.proxy.test_config_reload import RuntimeServer
from tests.gateway.servers import echo_server  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openapi"


def wait_status(client: httpx.Client, method: str, url: str, expected: int, **kwargs) -> httpx.Response:
    deadline = time.monotonic() + 10
    while True:
        response = client.request(method, url, **kwargs)
        if response.status_code == expected or time.monotonic() > deadline:
            return response
        time.sleep(0.05)


def test_petstore_through_the_gateway(echo_server):  # noqa: F811
    tenant = tenant_create(slug="petshop", name="Pet shop", is_default=True, actor=None)
    upstream_create(tenant=tenant, name="pets-backend", targets=[echo_server.origin], actor=None)
    raw = (FIXTURES / "petstore.yaml").read_bytes()
    api = openapi_import(tenant=tenant, raw=raw, upstream="pets-backend", base_path="/petstore", actor=None).api
    api_publish(api=api, actor=None)
    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.5)
    with RuntimeServer(runtime) as base, httpx.Client(base_url=base, timeout=5, trust_env=False) as client:
        listed = wait_status(client, "GET", "/petstore/pets?limit=10", 200)
        assert listed.status_code == 200, listed.text
        assert listed.json()["target"] == "/pets?limit=10"

        valid = b'{"id": 1, "name": "Rex", "tag": "dog"}'
        created = client.post("/petstore/pets", content=valid, headers={"Content-Type": "application/json"})
        assert created.status_code == 200, created.text
        assert created.json()["method"] == "POST"
        assert base64.b64decode(created.json()["body_b64"]) == valid, "a valid body is forwarded byte for byte"

        invalid = client.post("/petstore/pets", json={"name": 5, "tag": "dog"})
        assert invalid.status_code == 400
        error = invalid.json()["error"]
        assert error["code"] == "invalid_request"
        assert sorted(error["details"]["errors"], key=lambda e: e["path"]) == [
            {"in": "body", "path": "", "message": "'id' is a required property"},
            {"in": "body", "path": "/name", "message": "5 is not of type 'string'"},
        ]

        duplicate = client.post(
            "/petstore/pets",
            content=b'{"id": 1, "name": "Rex", "name": 7}',
            headers={"Content-Type": "application/json"},
        )
        assert duplicate.status_code == 400
        assert "duplicate key 'name'" in duplicate.json()["error"]["details"]["errors"][0]["message"]

        too_many = client.get("/petstore/pets?limit=1000")
        assert too_many.status_code == 400
        assert too_many.json()["error"]["details"]["errors"] == [
            {"in": "query", "path": "/limit", "message": "1000 is greater than the maximum of 100"}
        ]

        one = client.get("/petstore/pets/7")
        assert one.status_code == 200 and one.json()["target"] == "/pets/7"
        refused = client.delete("/petstore/pets/7")
        assert refused.status_code == 405, "no route allows DELETE"
        assert refused.headers["allow"] == "GET, HEAD, POST"

        # The POST route on the prefix /pets admits /pets/7; the strict validator knows the document does not.
        not_an_operation = client.post("/petstore/pets/7", json={"id": 1, "name": "Rex"})
        assert not_an_operation.status_code == 405
        assert not_an_operation.headers["allow"] == "GET, HEAD"
        assert not_an_operation.json()["error"]["code"] == "method_not_allowed"
        unknown = client.get("/petstore/pets/7/photos")
        assert unknown.status_code == 404
        assert unknown.json()["error"]["code"] == "not_found"
        assert client.head("/petstore/pets?limit=5").status_code == 200
        assert client.head("/petstore/pets?limit=500").status_code == 400

        # Re-importing the same document changes nothing the gateway sees.
        version = Tenant.objects.get(pk=tenant.pk).config_version
        assert not openapi_import(tenant=tenant, raw=raw, actor=None).changed
        assert Tenant.objects.get(pk=tenant.pk).config_version == version
        assert client.post("/petstore/pets", json={"name": 5}).status_code == 400


def test_openapi_31_document_through_the_gateway(echo_server):  # noqa: F811
    tenant = tenant_create(slug="shop", name="Shop", is_default=True, actor=None)
    upstream_create(tenant=tenant, name="orders-backend", targets=[echo_server.origin], actor=None)
    raw = (FIXTURES / "orders-3.1.yaml").read_bytes()
    api = openapi_import(tenant=tenant, raw=raw, upstream="orders-backend", actor=None).api
    api_publish(api=api, actor=None)
    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.5)
    with RuntimeServer(runtime) as base, httpx.Client(base_url=base, timeout=5, trust_env=False) as client:
        body = {"sku": "A-1", "quantity": 2, "note": None}
        ok = wait_status(client, "POST", "/orders/orders", 200, json=body, headers={"X-Request-Id": "req-00001"})
        assert ok.status_code == 200, ok.text
        assert json.loads(base64.b64decode(ok.json()["body_b64"])) == body

        no_header = client.post("/orders/orders", json=body)
        assert no_header.status_code == 400
        assert no_header.json()["error"]["details"]["errors"] == [
            {"in": "header", "path": "/x-request-id", "message": "the required header parameter is missing"}
        ]
        zero = client.post("/orders/orders", json={**body, "quantity": 0}, headers={"X-Request-Id": "req-00001"})
        assert zero.status_code == 400
        assert zero.json()["error"]["details"]["errors"][0]["path"] == "/quantity"

        assert client.get("/orders/orders/12").status_code == 200
        not_int = client.get("/orders/orders/twelve")
        assert not_int.status_code == 400
        assert not_int.json()["error"]["details"]["errors"][0]["in"] == "path"
        assert client.get("/orders/orders?limit=0").status_code == 400
        assert client.post("/orders/orders/12/cancel").status_code == 200
        assert client.get("/orders/status").status_code == 200
        assert client.request("TRACE", "/orders/status").status_code == 405, "TRACE gets no route"
        assert client.get("/orders/orders/12/cancel").status_code == 405
