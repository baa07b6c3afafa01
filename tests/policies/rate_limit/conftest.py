"""Fixtures for limit tests: Redis limiters with unique prefixes (cleaned up), the stub authenticator."""

from __future__ import annotations

import pytest

from policies import registry
from policies.registry import DEFAULT_POLICIES
from tests.policies.rate_limit.support import STUB_AUTH, delete_prefix, unique_prefix


@pytest.fixture
def prefix():
    value = unique_prefix()
    yield value
    delete_prefix(value)


@pytest.fixture
def stub_auth(settings):
    """Registers the test-only ``test-auth`` policy (an authenticator reading x-consumer/x-sub/x-plan)."""
    settings.APIM_POLICIES = [*DEFAULT_POLICIES, STUB_AUTH]
    registry.policy_types.cache_clear()
    yield
    registry.policy_types.cache_clear()
