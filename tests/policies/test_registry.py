"""The registry refuses a bad registration at start-up, naming the culprit."""

from __future__ import annotations

from typing import Any, ClassVar

import pytest
from django.core.exceptions import ImproperlyConfigured

from policies import registry
from policies.base import CompileEnv, Handler, Policy
from policies.registry import DEFAULT_POLICIES, build


class GoodPolicy(Policy):
    name = "test-good"
    priority = 500
    schema: ClassVar[dict[str, Any]] = {"type": "object"}

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        return Handler()


class SameNamePolicy(GoodPolicy):
    pass


class NoPriorityPolicy(GoodPolicy):
    name = "test-no-priority"
    priority = 0


class BadSchemaPolicy(GoodPolicy):
    name = "test-bad-schema"
    schema: ClassVar[dict[str, Any]] = {"type": "object", "properties": {"x": {"type": "nonsense"}}}


class NoCompilePolicy(Policy):
    name = "test-no-compile"
    priority = 1
    schema: ClassVar[dict[str, Any]] = {"type": "object"}


class NotAPolicy:
    name = "nope"


HERE = __name__


def test_the_built_in_registrations_load():
    types = build(DEFAULT_POLICIES)
    assert len(types) == len(DEFAULT_POLICIES)
    assert types["ip-restriction"].priority > types["key-auth"].priority > types["rate-limit"].priority


@pytest.mark.parametrize(
    ("paths", "message"),
    [
        ([f"{HERE}.Missing"], "cannot import"),
        (["no_such_module.Policy"], "cannot import"),
        ([f"{HERE}.NotAPolicy"], "is not a Policy subclass"),
        ([f"{HERE}.GoodPolicy", f"{HERE}.SameNamePolicy"], "two policy types are named 'test-good'"),
        ([f"{HERE}.NoPriorityPolicy"], "positive integer priority"),
        ([f"{HERE}.BadSchemaPolicy"], "invalid schema"),
        ([f"{HERE}.NoCompilePolicy"], "does not implement compile()"),
    ],
)
def test_bad_registrations_fail_with_a_message(paths, message):
    with pytest.raises(ImproperlyConfigured) as excinfo:
        build(paths)
    assert message in str(excinfo.value)


def test_settings_select_the_registered_types(settings):
    settings.APIM_POLICIES = [f"{HERE}.GoodPolicy"]
    registry.policy_types.cache_clear()
    try:
        assert list(registry.policy_types()) == ["test-good"]
        assert registry.get("key-auth") is None
    finally:
        registry.policy_types.cache_clear()
