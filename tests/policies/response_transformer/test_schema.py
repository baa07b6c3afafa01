"""response-transformer config: what an operator may save, and the messages when it is wrong."""

from __future__ import annotations

import pytest

from policies.base import ConfigError
from policies.validation import parse_config


def test_headers_and_json_ops_are_parsed():
    parsed = parse_config(
        "response-transformer",
        {"remove": {"headers": ["Server"], "json": ["secret"]}, "add": {"headers": {"X-Env": "prod"}}},
    )
    assert parsed.headers.remove == frozenset({b"server"})
    assert parsed.json.remove == ("secret",)


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "is not valid under any of the given schemas"),
        ({"add": {"query": {"a": "b"}}}, "add: Additional properties are not allowed ('query' was unexpected)"),
        ({"add": {"headers": {"Content-Length": "1"}}}, "add.headers.Content-Length: 'Content-Length' cannot be"),
        ({"remove": {"headers": ["X-Request-Id"]}}, "remove.headers[0]: 'X-Request-Id' cannot be changed"),
        ({"add": {"headers": {"X-A": "line\nbreak"}}}, "add.headers.X-A: header values may contain only"),
        ({"replace": {"headers": {"Set Cookie": "x"}}}, "'Set Cookie' is not a valid header name"),
    ],
)
def test_bad_configs_name_the_field(config, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_config("response-transformer", config)
    assert fragment in str(excinfo.value)
