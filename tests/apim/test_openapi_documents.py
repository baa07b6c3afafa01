"""apim.openapi_documents: strict, bounded parsing and real validation of OpenAPI documents (no database)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apim import openapi_documents
from apim.openapi_documents import DocumentTooLarge, InvalidOpenApiDocument, openapi_document_load

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "openapi"
PETSTORE = (FIXTURES / "petstore.yaml").read_bytes()
ORDERS_31 = (FIXTURES / "orders-3.1.yaml").read_bytes()


def refused(raw: bytes, **kwargs) -> InvalidOpenApiDocument:
    with pytest.raises(InvalidOpenApiDocument) as caught:
        openapi_document_load(raw, **kwargs)
    exc = caught.value
    assert exc.errors, "a refusal must say why"
    assert exc.as_envelope()["error"]["details"]["errors"] == exc.errors
    return exc


def test_petstore_30_loads_as_plain_json():
    document = openapi_document_load(PETSTORE)
    assert document["openapi"] == "3.0.0"
    assert sorted(document["paths"]) == ["/pets", "/pets/{petId}"]
    assert json.loads(json.dumps(document)) == document


def test_a_31_document_loads():
    document = openapi_document_load(ORDERS_31)
    assert document["info"]["summary"] == "Orders of the shop"
    assert "webhooks" in document


def test_json_documents_load_too():
    document = openapi_document_load(json.dumps(openapi_document_load(PETSTORE)).encode())
    assert document["info"]["title"] == "Swagger Petstore"


def test_yaml_integer_keys_become_strings_and_dates_text():
    raw = PETSTORE.replace(b"'201':", b"201:").replace(b"version: 1.0.0", b"version: 1.0.0\n  x-released: 2024-01-31")
    document = openapi_document_load(raw)
    assert "201" in document["paths"]["/pets"]["post"]["responses"]
    assert document["info"]["x-released"] == "2024-01-31"


def test_missing_openapi_field():
    exc = refused(b"info: {title: x, version: '1'}\npaths: {}\n")
    assert exc.errors[0]["path"] == "/openapi"
    assert "no 'openapi' field" in exc.message


def test_swagger_2_and_other_versions_are_refused():
    assert "Swagger 2.0" in refused(b"swagger: '2.0'\ninfo: {title: x, version: '1'}\n").message
    assert "not supported" in refused(PETSTORE.replace(b'openapi: "3.0.0"', b'openapi: "4.0.0"')).message


def test_schema_violation_reports_the_validators_message_at_its_path():
    exc = refused(PETSTORE.replace(b"maximum: 100\n            format", b"maximum: lots\n            format"))
    assert exc.errors[0] == {
        "path": "/paths/~1pets/get/parameters/0/schema/maximum",
        "message": "'lots' is not of type 'number'",
    }
    assert exc.message.startswith("The OpenAPI document is invalid at /paths/~1pets/get/parameters/0/schema/maximum")


def test_missing_required_field_is_reported():
    exc = refused(PETSTORE.replace(b"  title: Swagger Petstore\n", b""))
    assert {"path": "/info", "message": "'title' is a required property"} in exc.errors


def test_semantic_error_from_the_validator():
    exc = refused(PETSTORE.replace(b"- name: petId", b"- name: id"))
    assert any("Path parameter 'petId'" in e["message"] for e in exc.errors)


@pytest.mark.parametrize(
    "ref",
    [
        "https://evil.example/pets.yaml#/Pet",
        "http://169.254.169.254/latest/meta-data",
        "file:///etc/passwd",
        "other.yaml#/components/schemas/Pet",
        "//evil.example/x",
    ],
)
def test_external_references_are_refused_never_fetched(ref):
    raw = PETSTORE.replace(b'"#/components/schemas/Pets"', json.dumps(ref).encode())
    exc = refused(raw)
    assert "never fetched" in exc.message
    assert exc.errors == [
        {
            "path": "/paths/~1pets/get/responses/200/content/application~1json/schema/$ref",
            "message": f"external reference {ref!r}: only references inside the document (#/...) are allowed",
        }
    ]


def test_dangling_local_reference_is_refused_at_its_place():
    exc = refused(PETSTORE.replace(b"$ref: '#/components/schemas/Pet'", b"$ref: '#/components/schemas/Nope'"))
    assert exc.errors[0]["path"] == "/paths/~1pets/post/requestBody/content/application~1json/schema/$ref"
    assert "points nowhere" in exc.errors[0]["message"]


def test_a_schema_id_does_not_make_the_validator_fetch():
    """A 3.1 ``$id`` rebases references; pytest-socket fails any connection outside loopback."""
    document = {
        "openapi": "3.1.0",
        "info": {"title": "x", "version": "1"},
        "paths": {
            "/a": {
                "post": {
                    "requestBody": {
                        "content": {
                            "application/json": {"schema": {"$id": "http://127.0.0.1:9/s.json", "$ref": "#/info"}}
                        }
                    },
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
    }
    assert openapi_document_load(json.dumps(document).encode())["paths"]


@pytest.mark.parametrize("validator", [openapi_documents._V30Validator, openapi_documents._V31Validator])
@pytest.mark.parametrize("uri", ["http://127.0.0.1:9/x.json", "https://example.com/x", "file:///etc/passwd"])
def test_the_validator_has_no_way_to_fetch(validator, uri):
    handlers = validator.resolver_handlers
    assert set(handlers) == {"<all_urls>", "http", "https", "file"}
    for handler in handlers.values():
        with pytest.raises(InvalidOpenApiDocument, match="only references inside the document"):
            handler(uri)


def test_duplicate_yaml_keys_are_refused_with_the_line():
    exc = refused(PETSTORE.replace(b"  /pets/{petId}:", b"  /pets:"))
    assert "line 63" in exc.message and "'/pets'" in exc.message


def test_duplicate_json_keys_are_refused():
    exc = refused(b'{"openapi": "3.0.3", "openapi": "3.1.0", "info": {}, "paths": {}}')
    assert "duplicate key 'openapi'" in exc.message


def test_a_quoted_and_an_unquoted_key_are_the_same_key():
    exc = refused(b"openapi: 3.0.0\nx:\n  '200': a\n  200: b\n")
    assert exc.message == "The key '200' appears twice (once unquoted)."
    assert exc.errors[0]["path"] == "/x"


def test_too_large_is_refused_before_parsing():
    with pytest.raises(DocumentTooLarge) as caught:
        openapi_document_load(PETSTORE, max_bytes=1000)
    assert caught.value.status == 413
    assert "limit of 1000 bytes" in caught.value.message


def test_alias_bomb_is_refused_not_expanded():
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    for n in range(1, 9):
        lines.append(f"a{n}: &a{n} [{', '.join([f'*a{n - 1}'] * 10)}]")
    assert "more than 1000000 values" in refused("\n".join(lines).encode()).message


def test_recursive_alias_is_refused():
    assert "nested more than" in refused(b"a: &a [*a]\n").message


def test_python_tags_are_not_constructed():
    exc = refused(b"!!python/object/apply:os.system ['true']\n")
    assert "neither valid JSON nor valid YAML" in exc.message


@pytest.mark.parametrize(
    ("raw", "fragment"),
    [
        (b"", "empty"),
        (b"\xff\xfe\x00", "not UTF-8"),
        (b"openapi: [\n", "neither valid JSON nor valid YAML"),
        (b'{"openapi": NaN}', "not valid JSON"),
        (b"- just\n- a list\n", "must be a JSON or YAML object"),
        (b"1.5: x\n", "Keys must be strings"),
    ],
)
def test_malformed_input(raw, fragment):
    assert fragment in refused(raw).message


def _with_schemas(schemas: dict) -> bytes:
    return json.dumps(
        {
            "openapi": "3.0.3",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/n": {
                    "post": {
                        "requestBody": {
                            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/N"}}}
                        },
                        "responses": {"200": {"description": "ok"}},
                    }
                }
            },
            "components": {"schemas": schemas},
        }
    ).encode()


def test_recursive_schemas_are_fine():
    tree = {
        "type": "object",
        "properties": {"children": {"type": "array", "items": {"$ref": "#/components/schemas/N"}}},
    }
    assert openapi_document_load(_with_schemas({"N": tree}))["components"]["schemas"]["N"] == tree


def test_reference_cycles_are_refused_not_followed_forever():
    cycle = {"N": {"$ref": "#/components/schemas/M"}, "M": {"$ref": "#/components/schemas/N"}}
    assert "cycle" in refused(_with_schemas(cycle)).message
    paths = {
        "openapi": "3.1.0",
        "info": {"title": "t", "version": "1"},
        "paths": {"/a": {"$ref": "#/paths/~1b"}, "/b": {"$ref": "#/paths/~1a"}},
    }
    assert "cycle" in refused(json.dumps(paths).encode()).message
