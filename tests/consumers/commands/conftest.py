"""Fixtures for the key commands: a tenant with an API and a consumer's application."""

from __future__ import annotations

import pytest

from tests.apim.commands.support import run
from tests.factories import ApiFactory, ApplicationFactory


@pytest.fixture
def orders_api(tenant):
    return ApiFactory(tenant=tenant, name="orders")


@pytest.fixture
def mobile_app(tenant):
    """Application ``mobile`` of consumer ``partner``."""
    return ApplicationFactory(consumer__tenant=tenant, consumer__name="partner", name="mobile")


@pytest.fixture
def issue(tenant, mobile_app):
    """Issue a key for ``partner/mobile`` through the command; returns the plaintext."""

    def issue(*extra: str) -> str:
        base = ["--tenant", tenant.slug, "--consumer", "partner", "--application", "mobile", "--quiet"]
        return run("api_key_issue", *base, *extra).out.strip()

    return issue
