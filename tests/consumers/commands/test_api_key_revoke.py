"""``api_key_revoke``: by prefix or bare id, within the tenant; unknown keys are refused."""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from apim.models import AuditEvent
from consumers.models import APIKey
from consumers.selectors import api_key_verify
from tests.apim.commands.support import run, unchanged

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize("form", ["prefix", "bare id"])
def test_revokes_by_prefix_or_bare_id(tenant, issue, form):
    plaintext = issue()
    key = APIKey.objects.get()
    tenant.refresh_from_db()
    version = tenant.config_version
    ref = key.prefix if form == "prefix" else key.key_id
    result = run("api_key_revoke", "--tenant", tenant.slug, ref)
    assert f"Key {key.prefix} revoked." in result.out
    key.refresh_from_db()
    tenant.refresh_from_db()
    assert not key.active and key.revoked_at is not None
    assert api_key_verify(tenant=tenant, plaintext=plaintext).reason == "key_invalid"
    assert AuditEvent.objects.filter(action="apikey.revoke", object_id=str(key.pk)).count() == 1
    assert tenant.config_version == version + 1


def test_revoking_twice_is_harmless(tenant, issue):
    issue()
    prefix = APIKey.objects.get().prefix
    run("api_key_revoke", "--tenant", tenant.slug, prefix)
    with unchanged():
        assert "already revoked" in run("api_key_revoke", "--tenant", tenant.slug, prefix).out


def test_refuses_an_unknown_prefix_another_tenants_key_and_an_unknown_tenant(tenant, other_tenant, issue):
    issue()
    prefix = APIKey.objects.get().prefix
    with unchanged(), pytest.raises(CommandError, match=f"Tenant '{tenant.slug}' has no API key 'apim_doesnotexist'"):
        run("api_key_revoke", "--tenant", tenant.slug, "apim_doesnotexist")
    with unchanged(), pytest.raises(CommandError, match=f"Tenant '{other_tenant.slug}' has no API key '{prefix}'"):
        run("api_key_revoke", "--tenant", other_tenant.slug, prefix)
    with unchanged(), pytest.raises(CommandError, match="No tenant named 'ghost'"):
        run("api_key_revoke", "--tenant", "ghost", prefix)
    assert APIKey.objects.get().active
