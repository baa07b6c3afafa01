"""cors config: what an operator may save, and the messages when it is wrong."""

from __future__ import annotations

import pytest

from policies.base import ConfigError
from policies.plugins.cors import CorsHandler
from policies.validation import check_scope, parse_config


def test_origins_are_normalized_and_defaults_applied():
    config = parse_config(
        "cors", {"origins": ["https://App.Example.com:443", "http://localhost:8080", "https://*.example.org", "null"]}
    )
    assert config.origins == frozenset({"https://app.example.com", "http://localhost:8080", "null"})
    assert config.wildcards == (("https", ".example.org", ""),)
    assert config.methods == ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
    assert config.headers is None
    assert config.credentials is False
    assert config.max_age is None


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "'origins' is a required property"),
        ({"origins": []}, "origins: [] should be non-empty"),
        ({"origins": ["https://a.example.com/"]}, "origins[0]: 'https://a.example.com/' is not an origin"),
        ({"origins": ["*", "https://a.example.com/app"]}, "origins[1]: 'https://a.example.com/app' is not an origin"),
        ({"origins": ["a.example.com"]}, "origins[0]: 'a.example.com' is not an origin"),
        ({"origins": ["https://*.com"]}, "origins[0]: 'https://*.com' is not an origin"),
        ({"origins": ["^https://.*$"]}, "origins[0]"),
        ({"origins": ["*"], "credentials": True}, 'credentials: cannot be true when origins contains "*"'),
        ({"origins": ["*"], "methods": ["GET", "BAD METHOD"]}, "methods[1]: 'BAD METHOD' is not a valid"),
        ({"origins": ["*"], "headers": ["X-Ok", "X-Bad\r\nInjected: 1"]}, "headers[1]: "),
        ({"origins": ["*"], "exposed_headers": ["a b"]}, "exposed_headers[0]: 'a b' is not a valid"),
        ({"origins": ["*"], "max_age": -1}, "max_age: -1 is less than the minimum of 0"),
        ({"origins": ["*"], "max_age": "600"}, "max_age: '600' is not of type 'integer'"),
        ({"origins": ["*"], "credential": True}, "Additional properties are not allowed ('credential' was unexpected)"),
    ],
)
def test_bad_configs_name_the_field(config, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_config("cors", config)
    assert fragment in str(excinfo.value)


def test_origin_matching_never_reflects_what_is_not_listed():
    handler = CorsHandler(parse_config("cors", {"origins": ["https://app.example.com", "https://*.example.org:8443"]}))
    assert handler.allowed_origin(b"https://app.example.com") == b"https://app.example.com"
    assert handler.allowed_origin(b"https://app.example.com:443") == b"https://app.example.com:443"
    assert handler.allowed_origin(b"https://a.b.example.org:8443") == b"https://a.b.example.org:8443"
    for refused in (
        b"https://app.example.com.evil.net",
        b"http://app.example.com",
        b"https://evilapp.example.com",
        b"https://example.org:8443",  # the wildcard covers subdomains, not the apex
        b"https://a.example.org",  # wrong port
        b"https://evil.net/.example.org:8443",
        b"null",
        b"https://app.example.com, https://evil.net",
        "https://\u00e9.example.org:8443".encode(),
    ):
        assert handler.allowed_origin(refused) is None, refused


def test_star_answers_star_and_null_only_when_listed():
    assert CorsHandler(parse_config("cors", {"origins": ["*"]})).allowed_origin(b"https://x.test") == b"*"
    listed = CorsHandler(parse_config("cors", {"origins": ["null"], "credentials": True}))
    assert listed.allowed_origin(b"null") == b"null"


def test_cors_runs_before_authentication_so_it_cannot_be_consumer_scoped():
    assert "cannot be attached to a consumer" in check_scope("cors", "api+consumer")
