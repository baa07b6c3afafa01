"""request-size-limit config: what an operator may save, and the messages when it is wrong."""

from __future__ import annotations

import pytest

from policies.base import ConfigError
from policies.validation import check_scope, parse_config


def test_max_bytes_is_parsed():
    assert parse_config("request-size-limit", {"max_bytes": 1024}).max_bytes == 1024


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "'max_bytes' is a required property"),
        ({"max_bytes": 0}, "max_bytes: 0 is less than the minimum of 1"),
        ({"max_bytes": "10"}, "max_bytes: '10' is not of type 'integer'"),
        ({"max_bytes": True}, "max_bytes: True is not of type 'integer'"),
        ({"max_bytes": 1.5}, "max_bytes: 1.5 is not of type 'integer'"),
        ({"max_bytes": 2**41}, "max_bytes: 2199023255552 is greater than the maximum"),
        ({"max_bytes": 10, "unit": "kilobytes"}, "Additional properties are not allowed ('unit' was unexpected)"),
    ],
)
def test_bad_configs_name_the_field(config, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_config("request-size-limit", config)
    assert fragment in str(excinfo.value)


def test_it_runs_before_authentication_so_it_cannot_be_consumer_scoped():
    assert check_scope("request-size-limit", "api") is None
    assert check_scope("request-size-limit", "tenant") is None
    assert "cannot be attached to a consumer" in check_scope("request-size-limit", "consumer")
