"""Shared fixtures. Tests run against whatever DATABASE_URL / REDIS_URL select
(SQLite + local memory by default; real PostgreSQL and Redis in CI's second pass)."""

from __future__ import annotations

import pytest
from django.core.cache import cache

from tests.factories import (
    ApplicationFactory,
    ConsumerFactory,
    TenantFactory,
    UpstreamFactory,
    UserFactory,
    membership,
)


def _clear_test_cache():
    """Empty the test cache. On Redis only our prefixed keys go: ``clear()`` would FLUSHDB a shared database."""
    if hasattr(cache, "delete_pattern"):
        cache.delete_pattern("*")
    else:
        cache.clear()


@pytest.fixture(autouse=True)
def _clear_cache():
    _clear_test_cache()
    yield
    _clear_test_cache()


@pytest.fixture
def tenant(db):
    return TenantFactory()


@pytest.fixture
def other_tenant(db):
    return TenantFactory()


@pytest.fixture
def operator(tenant):
    """A staff user who is admin of ``tenant`` (and nothing else)."""
    user = UserFactory(is_staff=True)
    membership(user=user, tenant=tenant, role="admin")
    return user


@pytest.fixture
def superuser(db):
    return UserFactory(is_staff=True, is_superuser=True)


@pytest.fixture
def upstream(tenant):
    return UpstreamFactory(tenant=tenant)


@pytest.fixture
def consumer(tenant):
    return ConsumerFactory(tenant=tenant)


@pytest.fixture
def application(consumer):
    return ApplicationFactory(consumer=consumer)
