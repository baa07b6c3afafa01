"""ip-restriction config: what an operator may save, and the messages when it is wrong."""

from __future__ import annotations

import pytest

from policies.base import ConfigError
from policies.validation import parse_config


def test_cidrs_and_single_addresses_of_both_families_are_accepted():
    rules = parse_config("ip-restriction", {"allow": ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"], "deny": ["::1"]})
    assert [str(n) for n in rules.allow] == ["10.0.0.0/8", "192.0.2.7/32", "2001:db8::/32"]
    assert [str(n) for n in rules.deny] == ["::1/128"]


def test_host_bits_are_tolerated_like_kong():
    rules = parse_config("ip-restriction", {"allow": ["10.1.2.3/8"]})
    assert str(rules.allow[0]) == "10.0.0.0/8"


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({"allow": ["10.0.0.0/33"]}, "allow[0]: '10.0.0.0/33' is not an IP address or CIDR block"),
        ({"allow": ["10.0.0.0/8"], "deny": ["ok", "::1"]}, "deny[0]: 'ok' is not an IP address"),
        ({}, "is not valid under any of the given schemas"),
        ({"allow": []}, "is not valid under any of the given schemas"),
        ({"allow": "10.0.0.0/8"}, "allow: '10.0.0.0/8' is not of type 'array'"),
        ({"allow": ["10.0.0.0/8"], "alow": []}, "Additional properties are not allowed ('alow' was unexpected)"),
    ],
)
def test_bad_configs_name_the_field(config, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_config("ip-restriction", config)
    assert fragment in str(excinfo.value)


def test_ipv4_mapped_ipv6_peer_is_matched_as_ipv4():
    from policies.plugins.ip_restriction import IpRestrictionHandler

    handler = IpRestrictionHandler(parse_config("ip-restriction", {"allow": ["192.0.2.0/24"]}))
    assert handler.permits("::ffff:192.0.2.10")
    assert not handler.permits("::ffff:198.51.100.1")
    assert not handler.permits("not-an-address")
    assert handler.permits("192.0.2.255")
