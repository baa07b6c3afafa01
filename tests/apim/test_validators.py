"""apim.validators: each bad input is refused with a message that says what is wrong."""

import pytest
from django.core.exceptions import ValidationError

from apim.validators import (
    validate_base_path,
    validate_host,
    validate_host_list,
    validate_methods,
    validate_name,
    validate_route_path,
    validate_scopes,
    validate_upstream_url,
)


@pytest.mark.parametrize("value", ["/orders", "/v1/orders", "/a.b/c~d/e-f_g", "/x"])
def test_base_path_accepts(value):
    validate_base_path(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("orders", "must start with '/'"),
        ("", "must start with '/'"),
        ("/", "cannot be '/' alone"),
        ("/orders/", "must not end with '/'"),
        ("/a//b", "empty segment"),
        ("/a/../b", "dot segment"),
        ("/a/./b", "dot segment"),
        ("/..", "dot segment"),
        ("/a/b/a", "repeats the segment"),
        ("/a%2fb", "may only contain"),
        ("/a b", "may only contain"),
        ("/a;b", "may only contain"),
        ("/a\\b", "may only contain"),
        ("/a\x00b", "may only contain"),
        ("/__apim", "reserves"),
        ("/__apim/health", "reserves"),
        ("/" + "a" * 200, "longer than 200"),
    ],
)
def test_base_path_refuses(value, message):
    with pytest.raises(ValidationError, match=message):
        validate_base_path(value)


def test_route_path_allows_root():
    validate_route_path("/")
    with pytest.raises(ValidationError, match="Route path"):
        validate_route_path("/a//b")


@pytest.mark.parametrize(
    "value", ["api.example.com", "EXAMPLE.com.", "*.example.com", "localhost", "10.0.0.1", "[::1]"]
)
def test_host_accepts(value):
    validate_host(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "empty"),
        ("example.com:8080", "port"),
        ("exa mple.com", "not a valid"),
        ("-a.com", "not a valid"),
        ("a..b", "not a valid"),
    ],
)
def test_host_refuses(value, message):
    with pytest.raises(ValidationError, match=message):
        validate_host(value)


def test_host_list_refuses_duplicates_and_non_lists():
    with pytest.raises(ValidationError, match="twice"):
        validate_host_list(["a.com", "A.com."])
    with pytest.raises(ValidationError, match="list"):
        validate_host_list("a.com")


@pytest.mark.parametrize("value", ["http://127.0.0.1:9000", "https://api.example.com/base", "http://[::1]:80"])
def test_upstream_url_accepts(value):
    validate_upstream_url(value)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("ftp://example.com", "http:// or https://"),
        ("example.com", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("http://user:pw@example.com", "credentials"),
        ("http://user@example.com", "credentials"),
        ("http://", "needs a host"),
        ("http://example.com/?a=1", "query string"),
        ("http://example.com/#x", "query string"),
        ("http://example.com:99999", "not a valid URL"),
        ("http://exa mple.com", "spaces"),
    ],
)
def test_upstream_url_refuses(value, message):
    with pytest.raises(ValidationError, match=message):
        validate_upstream_url(value)


@pytest.mark.parametrize("value", ["Orders", "-orders", "orders-", "or ders", "a" * 65, ""])
def test_name_refuses(value):
    with pytest.raises(ValidationError, match="not a valid name"):
        validate_name(value)


def test_methods_and_scopes():
    validate_methods(["GET", "post"])
    with pytest.raises(ValidationError, match="not a supported method"):
        validate_methods(["FETCH"])
    with pytest.raises(ValidationError, match="twice"):
        validate_methods(["GET", "get"])
    validate_scopes(["orders:read", "admin/*"])
    with pytest.raises(ValidationError, match="not a valid scope"):
        validate_scopes(["has space"])
