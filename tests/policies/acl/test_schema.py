"""acl config: one rule or a list of rules; messages name the field."""

from __future__ import annotations

import pytest

from policies.base import ConfigError
from policies.validation import parse_config


def test_a_single_rule_at_the_top_level():
    parsed = parse_config("acl", {"allow_groups": ["gold"], "deny_groups": ["banned"], "required_scopes": ["read"]})
    (rule,) = parsed.rules
    assert rule.allow_groups == {"gold"} and rule.deny_groups == {"banned"} and rule.required_scopes == {"read"}
    assert rule.methods is None
    assert parsed.message == "You are not allowed to call this API."


def test_a_list_of_method_rules():
    parsed = parse_config(
        "acl",
        {
            "rules": [
                {"methods": ["GET"], "required_scopes": ["orders:read"]},
                {"methods": ["POST", "PUT", "DELETE"], "required_scopes": ["orders:write"], "allow_groups": ["staff"]},
            ],
            "message": "No.",
        },
    )
    assert [sorted(r.methods) for r in parsed.rules] == [["GET"], ["DELETE", "POST", "PUT"]]
    assert parsed.rules[0].applies_to("HEAD") and not parsed.rules[1].applies_to("HEAD")
    assert parsed.message == "No."


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ({}, "config: a rule needs allow_groups, deny_groups or required_scopes"),
        ({"methods": ["GET"]}, "config: a rule needs allow_groups, deny_groups or required_scopes"),
        ({"rules": [{"allow_groups": ["a"]}, {"methods": ["GET"]}]}, "rules[1]: a rule needs"),
        ({"rules": []}, "rules: [] should be non-empty"),
        ({"allow_groups": ["a"], "rules": [{"allow_groups": ["b"]}]}, "allow_groups: give either one rule"),
        ({"allow_groups": []}, "allow_groups: [] should be non-empty"),
        ({"allow_groups": ["gold", "gold"]}, "allow_groups: ['gold', 'gold'] has non-unique elements"),
        ({"allow_groups": ["gold"], "deny_groups": ["gold"]}, "deny_groups: 'gold' is also in allow_groups"),
        ({"rules": [{"allow_groups": ["g"], "deny_groups": ["g"]}]}, "rules[0].deny_groups: 'g' is also in"),
        ({"allow_groups": ["has space"]}, "allow_groups[0]: 'has space' does not match"),
        ({"required_scopes": "read"}, "required_scopes: 'read' is not of type 'array'"),
        ({"required_scopes": ["read"], "methods": ["FETCH"]}, "methods[0]: 'FETCH' is not one of"),
        ({"rules": [{"allow_groups": ["a"], "groups": ["b"]}]}, "rules[0]: Additional properties are not allowed"),
        ({"allow_group": ["a"]}, "config: Additional properties are not allowed ('allow_group' was unexpected)"),
    ],
)
def test_bad_configs_name_the_field(config, fragment):
    with pytest.raises(ConfigError) as excinfo:
        parse_config("acl", config)
    assert fragment in str(excinfo.value)
