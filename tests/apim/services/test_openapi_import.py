"""apim.services.openapi_import: API, routes and request-validator from an OpenAPI document.

Idempotent, all or nothing, tenant-scoped.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from apim.exceptions import ApplicationError, Conflict
from apim.models import API, ApiStatus, AuditEvent, Route, Tenant
from apim.openapi_documents import InvalidOpenApiDocument
from apim.services.catalog import api_create
from apim.services.openapi_import import literal_prefix, openapi_import, slug_from_title
from policies.models import PolicyAttachment
from tests.apim.commands.support import unchanged
from tests.factories import UpstreamFactory

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "openapi"
PETSTORE = (FIXTURES / "petstore.yaml").read_bytes()
ORDERS_31 = (FIXTURES / "orders-3.1.yaml").read_bytes()


def routes_of(api: API) -> set[tuple[str, tuple[str, ...], str]]:
    return {(r.path, tuple(r.methods), r.name) for r in Route.objects.filter(api=api)}


def validators_of(api: API) -> list[dict]:
    return list(PolicyAttachment.objects.filter(api=api, policy="request-validator").values_list("config", flat=True))


@pytest.mark.parametrize(
    ("template", "prefix"),
    [
        ("/pets", "/pets"),
        ("/pets/{petId}", "/pets"),
        ("/pets/{petId}/photos", "/pets"),
        ("/{tenant}/items", "/"),
        ("/", "/"),
        ("/v1/things:batchGet", "/v1"),
        ("/a/b/a", "/a/b"),
        ("/files/", "/files"),
        ("/a/./b", "/a"),
    ],
)
def test_literal_prefix(template, prefix):
    assert literal_prefix(template) == prefix


def test_paths_extensions_are_not_routes(tenant):
    raw = PETSTORE.replace(b"paths:\n", b"paths:\n  x-internal:\n    get: {description: not a path}\n", 1)
    result = openapi_import(tenant=tenant, raw=raw, actor=None)
    assert {r.path for r in Route.objects.filter(api=result.api)} == {"/pets"}


def test_slug_from_title():
    assert slug_from_title("Swagger Petstore") == "swagger-petstore"
    assert slug_from_title("  Ünïcode -- API!! v2 ") == "n-code-api-v2"
    assert slug_from_title("x" * 100) == "x" * 64


def test_petstore_creates_api_routes_and_validator(tenant):
    upstream = UpstreamFactory(tenant=tenant)
    result = openapi_import(tenant=tenant, raw=PETSTORE, upstream=upstream.name, actor=None)
    api = result.api
    assert result.created and not result.dry_run and result.operations == 3
    assert (api.name, api.title, api.version, api.base_path) == (
        "swagger-petstore",
        "Swagger Petstore",
        "1.0.0",
        "/swagger-petstore",
    )
    assert api.status == ApiStatus.DRAFT
    assert api.upstream == upstream
    assert api.openapi_document["paths"]["/pets/{petId}"]["get"]["operationId"] == "showPetById"
    assert routes_of(api) == {
        ("/pets", ("GET",), "listPets, showPetById"),
        ("/pets", ("POST",), "createPets"),
    }
    assert validators_of(api) == [{"openapi": True, "strict": True}]
    assert [(c.kind, c.action) for c in result.changes] == [
        ("api", "create"),
        ("route", "create"),
        ("route", "create"),
        ("policy", "create"),
    ]
    assert result.warnings == []


def test_servers_are_never_used_for_the_upstream(tenant):
    result = openapi_import(tenant=tenant, raw=ORDERS_31, actor=None)
    assert result.api.upstream is None
    assert "169.254" not in json.dumps([result.warnings, [c.label for c in result.changes]])
    assert any("has no upstream yet" in w for w in result.warnings)


def test_reimport_changes_nothing(tenant):
    upstream = UpstreamFactory(tenant=tenant)
    openapi_import(tenant=tenant, raw=PETSTORE, upstream=upstream.name, actor=None)
    version = Tenant.objects.get(pk=tenant.pk).config_version
    audit = AuditEvent.objects.count()
    with unchanged():
        again = openapi_import(tenant=tenant, raw=PETSTORE, actor=None)
    assert not again.created and not again.changed
    assert {c.action for c in again.changes} == {"unchanged"}
    assert Tenant.objects.get(pk=tenant.pk).config_version == version
    assert AuditEvent.objects.count() == audit
    assert again.api.upstream == upstream, "re-import without --upstream keeps the operator's upstream"


def test_reimport_of_a_changed_document_updates_and_deletes(tenant):
    api = openapi_import(tenant=tenant, raw=PETSTORE, actor=None).api
    changed = PETSTORE.replace(b"version: 1.0.0", b"version: 1.1.0").replace(
        b"operationId: createPets", b"operationId: addPet"
    )
    # Drop the whole /pets/{petId} path item.
    changed = changed[: changed.index(b"  /pets/{petId}:")] + changed[changed.index(b"components:") :]
    result = openapi_import(tenant=tenant, raw=changed, actor=None)
    assert result.api.pk == api.pk and not result.created
    assert API.objects.get(pk=api.pk).version == "1.1.0"
    assert routes_of(api) == {("/pets", ("GET",), "listPets"), ("/pets", ("POST",), "addPet")}
    assert sorted((c.kind, c.action) for c in result.changes) == [
        ("api", "update"),
        ("policy", "unchanged"),
        ("route", "update"),
        ("route", "update"),
    ]


def test_routes_not_in_the_document_are_removed_and_disabled_ones_stay_disabled(tenant):
    api = openapi_import(tenant=tenant, raw=PETSTORE, actor=None).api
    Route.objects.create(tenant=tenant, api=api, path="/legacy", methods=["GET"])
    Route.objects.filter(api=api, methods=["POST"]).update(enabled=False)
    result = openapi_import(tenant=tenant, raw=PETSTORE, actor=None)
    assert ("route", "delete") in [(c.kind, c.action) for c in result.changes]
    assert not Route.objects.filter(api=api, path="/legacy").exists()
    assert Route.objects.get(api=api, methods=["POST"]).enabled is False


def test_an_operator_validator_config_is_replaced_by_the_document(tenant):
    api = openapi_import(tenant=tenant, raw=PETSTORE, actor=None).api
    PolicyAttachment.objects.filter(api=api).update(config={"body_schema": {"type": "object"}})
    result = openapi_import(tenant=tenant, raw=PETSTORE, actor=None)
    assert ("policy", "update") in [(c.kind, c.action) for c in result.changes]
    assert validators_of(api) == [{"openapi": True, "strict": True}]


def test_31_document(tenant):
    result = openapi_import(tenant=tenant, raw=ORDERS_31, api_name="shop-orders", base_path="/shop", actor=None)
    api = result.api
    assert (api.name, api.version, api.description, api.base_path) == (
        "shop-orders",
        "2.1",
        "Orders of the shop",
        "/shop",
    )
    assert routes_of(api) == {
        ("/orders", ("DELETE",), "deleteOrder"),
        ("/orders", ("GET",), "listOrders, showOrder"),
        ("/orders", ("POST",), "createOrder, cancelOrder"),
        ("/status", ("GET",), "status"),
    }
    assert result.operations == 6
    assert result.warnings[0] == "TRACE /status: the gateway does not route TRACE; no route was made for it."


def test_dry_run_writes_nothing_and_reports(tenant):
    with unchanged():
        result = openapi_import(tenant=tenant, raw=PETSTORE, dry_run=True, actor=None)
    assert result.dry_run and result.created
    assert [c.action for c in result.changes] == ["create"] * 4
    assert not API.objects.filter(tenant=tenant).exists()


def test_the_api_name_and_base_path_can_be_chosen_and_base_path_is_kept(tenant):
    openapi_import(tenant=tenant, raw=PETSTORE, api_name="pets", base_path="/animals", actor=None)
    again = openapi_import(tenant=tenant, raw=PETSTORE, api_name="pets", actor=None)
    assert again.api.base_path == "/animals" and not again.changed


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"info: {title: x, version: '1'}\npaths: {}\n", InvalidOpenApiDocument),
        (
            PETSTORE.replace(b"type: integer\n            maximum: 100", b"type: integer\n            maximum: x"),
            InvalidOpenApiDocument,
        ),
        (PETSTORE.replace(b'"#/components/schemas/Pets"', b'"https://evil.example/p.yaml"'), InvalidOpenApiDocument),
        (PETSTORE.replace(b"  /pets/{petId}:", b"  /pets:"), InvalidOpenApiDocument),
        (PETSTORE + b"#" * (5 * 1024 * 1024), InvalidOpenApiDocument),
        (b'{"openapi": "3.0.3", "info": {"title": "Empty", "version": "1"}, "paths": {}}', InvalidOpenApiDocument),
    ],
    ids=["missing-openapi", "bad-schema", "external-ref", "duplicate-keys", "too-large", "no-operations"],
)
def test_invalid_documents_write_nothing(tenant, raw, error):
    with unchanged(), pytest.raises(error) as caught:
        openapi_import(tenant=tenant, raw=raw, actor=None)
    assert caught.value.errors


def test_a_document_the_validator_cannot_compile_is_refused(tenant, monkeypatch):
    from policies.base import ConfigError

    def refuse(document):
        raise ConfigError("openapi", "the OpenAPI document's $ref chain is too long or circular")

    monkeypatch.setattr("apim.services.openapi_import.openapi_compile_check", refuse)
    with unchanged(), pytest.raises(InvalidOpenApiDocument) as caught:
        openapi_import(tenant=tenant, raw=PETSTORE, actor=None)
    assert "request-validator cannot use this document" in caught.value.message


def test_a_taken_base_path_is_refused_and_nothing_written(tenant):
    api_create(tenant=tenant, name="other", title="Other", base_path="/swagger-petstore", actor=None)
    with unchanged(), pytest.raises(ValidationError) as caught:
        openapi_import(tenant=tenant, raw=PETSTORE, actor=None)
    assert "base_path" in caught.value.message_dict


def test_a_title_that_makes_no_name_asks_for_one(tenant):
    raw = PETSTORE.replace(b"title: Swagger Petstore", b'title: "!!!"')
    with unchanged(), pytest.raises(ApplicationError) as caught:
        openapi_import(tenant=tenant, raw=raw, actor=None)
    assert "Name the API explicitly" in caught.value.message


def test_ambiguous_versions_are_refused(tenant):
    api_create(tenant=tenant, name="swagger-petstore", title="P", version="0.9", base_path="/p09", actor=None)
    api_create(tenant=tenant, name="swagger-petstore", title="P", version="0.8", base_path="/p08", actor=None)
    with unchanged(), pytest.raises(Conflict):
        openapi_import(tenant=tenant, raw=PETSTORE, actor=None)


def test_tenant_isolation(tenant, other_tenant):
    theirs = openapi_import(tenant=other_tenant, raw=PETSTORE, actor=None).api
    foreign_upstream = UpstreamFactory(tenant=other_tenant)
    # Another tenant's upstream, by name or id, is unknown here; nothing is written anywhere.
    for ref in (foreign_upstream.name, str(foreign_upstream.pk)):
        with unchanged(), pytest.raises(ApplicationError) as caught:
            openapi_import(tenant=tenant, raw=PETSTORE, upstream=ref, actor=None)
        assert caught.value.details == {"upstream": [f"No upstream {ref!r} in this tenant."]}
    mine = openapi_import(tenant=tenant, raw=PETSTORE, actor=None)
    assert mine.created and mine.api.pk != theirs.pk and mine.api.tenant_id == tenant.pk
    assert all(r.tenant_id == tenant.pk for r in Route.objects.filter(api=mine.api))
    assert PolicyAttachment.objects.get(api=mine.api).tenant_id == tenant.pk
    assert routes_of(theirs) == routes_of(mine.api)
    assert Route.objects.filter(api=theirs).count() == 2, "the other tenant's routes were touched"


def test_retired_apis_are_not_updated(tenant):
    from apim.services.catalog import api_transition

    api = openapi_import(tenant=tenant, raw=PETSTORE, upstream=UpstreamFactory(tenant=tenant).name, actor=None).api
    api.upstream.targets.create(tenant=tenant, url="http://127.0.0.1:9")
    for status in ("published", "deprecated", "retired"):
        api_transition(api=api, to=status, actor=None)
    fresh = openapi_import(
        tenant=tenant, raw=PETSTORE.replace(b"version: 1.0.0", b"version: 2.0.0"), base_path="/pets2", actor=None
    )
    assert fresh.created and fresh.api.pk != api.pk
    assert Route.objects.filter(api=api).count() == 2
