"""Lookups the key commands share."""

from __future__ import annotations

from django.core.management.base import CommandError

from apim.management.base import get_tenant
from consumers.models import APIKey
from consumers.selectors import api_key_get_by_prefix


def get_key(tenant_slug: str, prefix: str) -> APIKey:
    tenant = get_tenant(tenant_slug)
    key = api_key_get_by_prefix(tenant=tenant, prefix=prefix)
    if key is None:
        raise CommandError(f"Tenant {tenant.slug!r} has no key {prefix!r}.")
    return key
