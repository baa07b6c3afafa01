from __future__ import annotations

import pytest

from policies.registry import DEFAULT_POLICIES, policy_types


@pytest.fixture
def identity_policy(settings):
    """Registers the header-driven test authentication policy for one test."""
    settings.APIM_POLICIES = [*DEFAULT_POLICIES, "tests.policies.acl.identity_policy.HeaderIdentityPolicy"]
    policy_types.cache_clear()
    yield
    policy_types.cache_clear()
