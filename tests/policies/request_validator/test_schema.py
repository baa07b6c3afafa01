"""request-validator config: what an operator may save, and the messages when it is wrong."""

from __future__ import annotations

import pytest

from policies.base import ApiInfo, CompileEnv, ConfigError
from policies.plugins.request_validator import RequestValidatorPolicy
from policies.validation import parse_config


def test_body_schema_config_is_parsed_with_defaults():
    parsed = parse_config("request-validator", {"body_schema": {"type": "object"}})
    assert parsed.content_types == ("application/json",)
    assert parsed.methods == frozenset({"POST", "PUT", "PATCH"})
    assert parsed.body_required is True
    assert parse_config("request-validator", {"openapi": True}).openapi is True


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "is not valid under any of the given schemas"),
        ({"openapi": False}, "is not valid under any of the given schemas"),
        (
            {"body_schema": {"type": "object", "properties": {"qty": {"type": "integr"}}}},
            "body_schema.properties.qty.type: not a valid JSON Schema",
        ),
        ({"body_schema": {"minLength": -1}}, "body_schema.minLength: not a valid JSON Schema"),
        ({"body_schema": []}, "body_schema: [] is not of type 'object'"),
        ({"body_schema": {}, "openapi": True}, "body_schema: use either body_schema or openapi"),
        ({"body_schema": {}, "content_types": ["json"]}, "content_types[0]: 'json' is not a media type"),
        ({"body_schema": {}, "methods": ["post"]}, "methods[0]: 'post' is not an HTTP method in upper case"),
        ({"body_schema": {}, "strictly": True}, "Additional properties are not allowed ('strictly' was unexpected)"),
        ({"body_schema": {}, "strict": True}, "strict: strict applies to openapi: true"),
        ({"openapi": True, "strict": "yes"}, "'yes' is not of type 'boolean'"),
    ],
)
def test_bad_configs_name_the_field(config, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_config("request-validator", config)
    assert fragment in str(excinfo.value)


def _compile(document):
    parsed = parse_config("request-validator", {"openapi": True})
    return RequestValidatorPolicy.compile(parsed, CompileEnv(api=ApiInfo(api_id="a", tenant_id="t", openapi=document)))


@pytest.mark.parametrize(
    ("document", "fragment"),
    [
        (None, "the API has no OpenAPI document"),
        ({"swagger": "2.0", "paths": {}}, "must be OpenAPI 3.x"),
        ({"openapi": "3.1.0"}, "has no paths"),
        (
            {"openapi": "3.1.0", "paths": {"/a": {"post": {"requestBody": {"$ref": "#/components/requestBodies/X"}}}}},
            "'#/components/requestBodies/X' points nowhere",
        ),
        (
            {
                "openapi": "3.1.0",
                "paths": {"/a": {"get": {"parameters": [{"name": "q", "in": "query", "schema": {"$ref": "#/nope"}}]}}},
            },
            "'#/nope' points nowhere",
        ),
        (
            {"openapi": "3.0.3", "paths": {"/a": {"get": {"parameters": [{"$ref": "other.yaml#/p"}]}}}},
            "only local $ref",
        ),
    ],
)
def test_unusable_openapi_documents_fail_the_compile_with_a_reason(document, fragment):
    with pytest.raises(ConfigError) as excinfo:
        _compile(document)
    assert fragment in str(excinfo.value)
