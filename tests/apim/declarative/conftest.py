"""Fixtures for the declarative config tests."""

from __future__ import annotations

import pytest

from tests.factories import TenantFactory

from .support import build_catalog


@pytest.fixture
def filled(tenant):
    return build_catalog(tenant)


@pytest.fixture
def empty_tenant(db):
    return TenantFactory()
