"""key-auth config: what an operator may save, and the messages when it is wrong."""

from __future__ import annotations

import pytest

from policies.base import ConfigError
from policies.plugins.key_auth import KeyAuthConfig, KeyAuthPolicy
from policies.validation import check_scope, parse_config


def test_defaults():
    config = parse_config("key-auth", {})
    assert config == KeyAuthConfig(
        headers=("X-API-Key",),
        query_param=None,
        hide_credentials=True,
        require_subscription=True,
        forward_identity=True,
        failure_limit=10,
        failure_window_seconds=60,
    )


def test_every_option():
    config = parse_config(
        "key-auth",
        {
            "headers": ["apikey", "X-Key"],
            "query_param": "api_key",
            "hide_credentials": False,
            "require_subscription": False,
            "forward_identity": False,
            "failure_limit": 0,
            "failure_window_seconds": 300,
        },
    )
    assert config.headers == ("apikey", "X-Key")
    assert config.query_param == "api_key"
    assert (config.hide_credentials, config.require_subscription, config.forward_identity) == (False, False, False)
    assert (config.failure_limit, config.failure_window_seconds) == (0, 300)


def test_null_query_param_means_none():
    assert parse_config("key-auth", {"query_param": None}).query_param is None


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"header": ["X-API-Key"]}, "config: Additional properties are not allowed ('header' was unexpected)"),
        ({"headers": []}, "headers: [] should be non-empty"),
        ({"headers": "X-API-Key"}, "headers: 'X-API-Key' is not of type 'array'"),
        ({"headers": ["X API Key"]}, "headers[0]: 'X API Key' does not match"),
        ({"headers": ["X-Key", ""]}, "headers[1]: '' does not match"),
        ({"headers": ["X-Key", "X-Key"]}, "headers: ['X-Key', 'X-Key'] has non-unique elements"),
        ({"headers": ["X-Key", "x-key"]}, "headers[1]: 'x-key' is listed twice (names ignore case)"),
        ({"headers": ["Host"]}, "headers[0]: 'Host' is set by the gateway and cannot carry a key"),
        ({"headers": ["X-API-Key", "X-Consumer-ID"]}, "headers[1]: 'X-Consumer-ID' is set by the gateway"),
        ({"query_param": "api key"}, "query_param: 'api key' does not match"),
        ({"query_param": ""}, "query_param: '' does not match"),
        ({"hide_credentials": "yes"}, "hide_credentials: 'yes' is not of type 'boolean'"),
        ({"require_subscription": 1}, "require_subscription: 1 is not of type 'boolean'"),
        ({"failure_limit": -1}, "failure_limit: -1 is less than the minimum of 0"),
        ({"failure_limit": 2.5}, "failure_limit: 2.5 is not of type 'integer'"),
        ({"failure_window_seconds": 0}, "failure_window_seconds: 0 is less than the minimum of 1"),
    ],
)
def test_bad_configs_name_the_field(config, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_config("key-auth", config)
    assert fragment in str(excinfo.value)


def test_every_field_is_described_and_unknown_fields_are_refused():
    assert KeyAuthPolicy.schema["additionalProperties"] is False
    for name, field in KeyAuthPolicy.schema["properties"].items():
        assert field.get("description"), name


def test_cannot_be_attached_to_a_consumer():
    assert check_scope("key-auth", "api") is None
    assert check_scope("key-auth", "tenant") is None
    assert "cannot be attached to a consumer" in check_scope("key-auth", "consumer")


def test_compiling_without_a_key_store_fails_the_build_clearly():
    from policies.base import ApiInfo, CompileEnv

    with pytest.raises(RuntimeError, match="no 'keys' service"):
        KeyAuthPolicy.compile(parse_config("key-auth", {}), CompileEnv(api=ApiInfo(api_id="a", tenant_id="t")))
