"""POST /api/v1/apis/import-openapi/: raw YAML/JSON body or multipart upload; admin role; envelope errors."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from django.core import serializers
from django.core.files.uploadedfile import SimpleUploadedFile

from apim.models import API, AuditEvent, Route, Tenant, Upstream
from policies.models import PolicyAttachment

URL = "/api/v1/apis/import-openapi/"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "openapi"
PETSTORE = (FIXTURES / "petstore.yaml").read_bytes()


@contextlib.contextmanager
def unchanged() -> Iterator[None]:
    """The catalog, policies, audit trail and tenants are as they were (tokens may record their use)."""

    def dump() -> str:
        models = (Tenant, API, Route, Upstream, PolicyAttachment, AuditEvent)
        return "\n".join(serializers.serialize("json", m._default_manager.order_by("pk")) for m in models)

    before = dump()
    yield
    assert dump() == before


def test_raw_yaml_creates_then_reimport_changes_nothing(world_a):
    client = world_a.client("admin")
    response = client.post(URL, data=PETSTORE, content_type="application/yaml")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["created"] is True and body["dry_run"] is False and body["operations"] == 3
    assert body["api"]["name"] == "swagger-petstore" and body["api"]["status"] == "draft"
    assert [(c["kind"], c["action"], c["label"]) for c in body["changes"]] == [
        ("api", "create", "swagger-petstore 1.0.0"),
        ("route", "create", "GET /pets"),
        ("route", "create", "POST /pets"),
        ("policy", "create", "request-validator (api)"),
    ]
    api = API.objects.get(pk=body["api"]["id"])
    assert api.tenant_id == world_a.tenant.pk
    assert {str(r.pk) for r in Route.objects.filter(api=api)} == {c["id"] for c in body["changes"][1:3]}
    with unchanged():
        again = client.post(URL, data=PETSTORE, content_type="application/yaml")
    assert again.status_code == 200
    assert {c["action"] for c in again.json()["changes"]} == {"unchanged"}


def test_json_body(world_a):
    import yaml

    document = yaml.safe_load(PETSTORE)
    response = world_a.client("admin").post(f"{URL}?api=pets&base_path=/pets-api", document, format="json")
    assert response.status_code == 201, response.content
    assert (response.json()["api"]["name"], response.json()["api"]["base_path"]) == ("pets", "/pets-api")


def test_multipart_upload_with_the_operators_upstream(world_a):
    upstream = world_a.objects["upstream"]
    upload = SimpleUploadedFile("petstore.yaml", PETSTORE, content_type="application/yaml")
    response = world_a.client("owner").post(URL, {"file": upload, "upstream": upstream.name}, format="multipart")
    assert response.status_code == 201, response.content
    assert response.json()["api"]["upstream"] == str(upstream.pk)


def test_staff_name_the_tenant(world_a, staff):
    from tests.api.conftest import bearer

    _, token = staff
    response = bearer(token, world_a.tenant).post(URL, data=PETSTORE, content_type="application/yaml")
    assert response.status_code == 201, response.content
    assert API.objects.get(pk=response.json()["api"]["id"]).tenant_id == world_a.tenant.pk
    without = bearer(token).post(URL, data=PETSTORE, content_type="application/yaml")
    assert without.status_code == 400 and without.json()["error"]["code"] == "tenant_required"


def test_invalid_document_is_refused_with_the_validators_messages(world_a):
    raw = PETSTORE.replace(b"maximum: 100\n            format", b"maximum: lots\n            format")
    with unchanged():
        response = world_a.client("admin").post(URL, data=raw, content_type="application/yaml")
    assert response.status_code == 400
    error = response.json()["error"]
    assert response.json()["success"] is False
    assert error["code"] == "invalid_openapi"
    assert error["details"]["errors"][0] == {
        "path": "/paths/~1pets/get/parameters/0/schema/maximum",
        "message": "'lots' is not of type 'number'",
    }


def test_external_ref_is_refused(world_a):
    raw = PETSTORE.replace(b'"#/components/schemas/Pets"', b'"http://169.254.169.254/latest/meta-data"')
    with unchanged():
        response = world_a.client("admin").post(URL, data=raw, content_type="application/yaml")
    assert response.status_code == 400
    assert "never fetched" in response.json()["error"]["message"]


@pytest.mark.parametrize("how", ["raw", "multipart"])
def test_too_large_is_413(world_a, settings, how):
    settings.APIM_OPENAPI_MAX_BYTES = 1000
    client = world_a.client("admin")
    with unchanged():
        if how == "raw":
            response = client.post(URL, data=PETSTORE, content_type="application/yaml")
        else:
            upload = SimpleUploadedFile("p.yaml", PETSTORE, content_type="application/yaml")
            response = client.post(URL, {"file": upload}, format="multipart")
    assert response.status_code == 413, response.content
    assert response.json()["error"]["code"] == "document_too_large"


def test_a_huge_request_is_refused_before_it_is_read(world_a, settings):
    settings.APIM_OPENAPI_MAX_BYTES = 1000
    raw = PETSTORE * 100
    response = world_a.client("admin").post(URL, data=raw, content_type="application/yaml")
    assert response.status_code == 413
    assert f"The request is {len(raw)} bytes" in response.json()["error"]["message"]


def test_empty_body(world_a):
    response = world_a.client("admin").post(URL)
    assert response.status_code == 400
    assert response.json()["error"]["details"] == {"file": ["No document was sent."]}


def test_dry_run_writes_nothing(world_a):
    with unchanged():
        response = world_a.client("admin").post(f"{URL}?dry_run=true", data=PETSTORE, content_type="application/yaml")
    assert response.status_code == 200
    body = response.json()
    assert body["dry_run"] is True and body["created"] is True and body["api"] is None
    assert {c["id"] for c in body["changes"]} == {None}


def test_bad_option_is_a_field_error(world_a):
    response = world_a.client("admin").post(f"{URL}?dry_run=perhaps", data=PETSTORE, content_type="application/yaml")
    assert response.status_code == 400
    assert "dry_run" in response.json()["error"]["details"]


@pytest.mark.parametrize("role", ["viewer", "developer"])
def test_non_operators_are_refused(world_a, role):
    with unchanged():
        response = world_a.client(role).post(URL, data=PETSTORE, content_type="application/yaml")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "permission_denied"


def test_read_only_token_is_refused(world_a):
    from apim.services.tokens import token_issue
    from tests.api.conftest import bearer

    token = token_issue(user=world_a.users["admin"], name="ro", read_only=True, actor=None).plaintext
    with unchanged():
        response = bearer(token, world_a.tenant).post(URL, data=PETSTORE, content_type="application/yaml")
    assert response.status_code == 403


def test_another_tenants_upstream_is_unknown(world_a, world_b):
    foreign = world_b.objects["upstream"]
    client = world_a.client("admin")
    for ref in (foreign.name, str(foreign.pk)):
        with unchanged():
            response = client.post(f"{URL}?upstream={ref}", data=PETSTORE, content_type="application/yaml")
        assert response.status_code == 400
        assert response.json()["error"]["details"] == {"upstream": [f"No upstream {ref!r} in this tenant."]}


def test_same_api_name_in_two_tenants_is_two_apis(world_a, world_b):
    a = world_a.client("admin").post(URL, data=PETSTORE, content_type="application/yaml").json()
    b = world_b.client("admin").post(URL, data=PETSTORE, content_type="application/yaml").json()
    assert a["created"] and b["created"] and a["api"]["id"] != b["api"]["id"]
    assert PolicyAttachment.objects.get(api_id=a["api"]["id"]).tenant_id == world_a.tenant.pk
    assert PolicyAttachment.objects.get(api_id=b["api"]["id"]).tenant_id == world_b.tenant.pk


def test_document_is_stored_without_servers_being_used(world_a):
    response = world_a.client("admin").post(URL, data=PETSTORE, content_type="application/yaml")
    api = API.objects.get(pk=response.json()["api"]["id"])
    assert api.upstream_id is None
    assert api.openapi_document["servers"] == [{"url": "http://petstore.swagger.io/v1"}]
    assert "no upstream yet" in json.dumps(response.json()["warnings"])
