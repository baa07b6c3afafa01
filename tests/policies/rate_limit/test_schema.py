"""rate-limit config: good configs parse into the frozen config, bad ones name the field."""

from __future__ import annotations

import dataclasses

import pytest

from policies.base import ConfigError
from policies.plugins.rate_limit import RateLimitConfig
from policies.validation import parse_config


def test_minimal_config_defaults():
    parsed = parse_config("rate-limit", {"limits": {"minute": 100}})
    assert parsed == RateLimitConfig(limits=(("minute", 100),), limit_by="consumer", fail_closed=False, headers=True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        parsed.limit_by = "ip"  # type: ignore[misc]


def test_every_period_and_option():
    parsed = parse_config(
        "rate-limit",
        {
            "limits": {"day": 10000, "second": 5, "hour": 1000, "minute": 100},
            "limit_by": "application",
            "fail_mode": "closed",
            "headers": False,
        },
    )
    assert parsed.limits == (("second", 5), ("minute", 100), ("hour", 1000), ("day", 10000))
    assert parsed.limit_by == "application"
    assert parsed.fail_closed is True
    assert parsed.headers is False


@pytest.mark.parametrize("limit_by", ["consumer", "credential", "application", "ip", "api"])
def test_limit_by_values(limit_by):
    assert parse_config("rate-limit", {"limits": {"second": 1}, "limit_by": limit_by}).limit_by == limit_by


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({}, "limits"),
        ({"limits": {}}, "limits"),
        ({"limits": {"minute": 0}}, "limits.minute"),
        ({"limits": {"minute": -5}}, "limits.minute"),
        ({"limits": {"minute": 1.5}}, "limits.minute"),
        ({"limits": {"minute": "100"}}, "limits.minute"),
        ({"limits": {"week": 100}}, "limits"),
        ({"limits": {"minute": 10**10}}, "limits.minute"),
        ({"limits": {"minute": 1}, "limit_by": "header"}, "limit_by"),
        ({"limits": {"minute": 1}, "fail_mode": "maybe"}, "fail_mode"),
        ({"limits": {"minute": 1}, "headers": "yes"}, "headers"),
        ({"limits": {"minute": 1}, "burst": 3}, "config"),
    ],
)
def test_bad_configs_name_the_field(config, field):
    with pytest.raises(ConfigError) as exc:
        parse_config("rate-limit", config)
    message = str(exc.value)
    assert message.startswith(f"{field}: ") or f"; {field}: " in message or f"'{field}'" in message, message


def test_schema_fields_are_described():
    from policies.plugins.rate_limit import RateLimitPolicy

    props = RateLimitPolicy.schema["properties"]
    assert all("description" in spec for spec in props.values())
    assert all("description" in spec for spec in props["limits"]["properties"].values())
