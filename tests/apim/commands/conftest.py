"""Fixtures for the catalog commands."""

from __future__ import annotations

import pytest

from tests.factories import ApiFactory, TargetFactory, UpstreamFactory


@pytest.fixture
def orders_api(tenant):
    """A draft API ``orders`` v1 of ``tenant`` with an upstream that has an enabled target (publishable)."""
    upstream = UpstreamFactory(tenant=tenant)
    TargetFactory(upstream=upstream)
    return ApiFactory(tenant=tenant, name="orders", upstream=upstream)
