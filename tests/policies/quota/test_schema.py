"""quota config: calendar quotas in an IANA time zone; bad configs name the field."""

from __future__ import annotations

import pytest

from policies.base import ConfigError
from policies.plugins.quota import QuotaConfig, QuotaPolicy
from policies.validation import parse_config


def test_defaults():
    assert parse_config("quota", {"day": 1000}) == QuotaConfig(
        day=1000, month=None, timezone="UTC", limit_by="consumer", fail_closed=False
    )


def test_full_config():
    parsed = parse_config(
        "quota",
        {"day": 100, "month": 2000, "timezone": "Europe/Paris", "limit_by": "application", "fail_mode": "closed"},
    )
    assert (parsed.day, parsed.month, parsed.timezone, parsed.limit_by, parsed.fail_closed) == (
        100,
        2000,
        "Europe/Paris",
        "application",
        True,
    )


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"day": 0}, "day"),
        ({"month": "10"}, "month"),
        ({"day": 5, "limit_by": "cookie"}, "limit_by"),
        ({"day": 5, "fail_mode": "sometimes"}, "fail_mode"),
        ({"day": 5, "timezone": ""}, "timezone"),
        ({"day": 5, "week": 7}, "config"),
        ({"day": 5, "timezone": "Mars/Olympus_Mons"}, "timezone"),
        ({"day": 5, "timezone": "../../etc/passwd"}, "timezone"),
        ({"day": 50, "month": 10}, "month"),
    ],
)
def test_bad_configs_name_the_field(config, field):
    with pytest.raises(ConfigError) as exc:
        parse_config("quota", config)
    assert str(exc.value).startswith(f"{field}: ") or f"; {field}: " in str(exc.value), str(exc.value)


def test_at_least_one_quota_is_required():
    with pytest.raises(ConfigError) as exc:
        parse_config("quota", {"timezone": "UTC"})
    assert str(exc.value).startswith("day: ")


def test_schema_fields_are_described():
    assert all("description" in spec for spec in QuotaPolicy.schema["properties"].values())
