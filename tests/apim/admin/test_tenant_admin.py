"""TenantAdmin: superusers create tenants (hosts inline, through the services); operators rename theirs."""

from __future__ import annotations

from apim.models import AuditEvent, Tenant, TenantHost
from tests.apim.admin.world import admin_url


def test_superuser_creates_a_tenant_with_a_host(db, superuser_client):
    data = {
        "slug": "globex",
        "name": "Globex",
        "hosts-TOTAL_FORMS": "1",
        "hosts-INITIAL_FORMS": "0",
        "hosts-0-host": "API.Globex.example",
    }
    response = superuser_client.post(admin_url(Tenant, "add"), data)
    assert response.status_code == 302
    tenant = Tenant.objects.get(slug="globex")
    assert TenantHost.objects.get(tenant=tenant).host == "api.globex.example"
    assert set(AuditEvent.objects.filter(tenant=tenant).values_list("action", flat=True)) == {
        "tenant.create",
        "tenanthost.create",
    }


def test_duplicate_host_is_an_inline_form_error(world_a, superuser_client):
    data = {
        "slug": "copycat",
        "name": "Copycat",
        "hosts-TOTAL_FORMS": "1",
        "hosts-INITIAL_FORMS": "0",
        "hosts-0-host": world_a.host.host,
    }
    response = superuser_client.post(admin_url(Tenant, "add"), data)
    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    assert not Tenant.objects.filter(slug="copycat").exists()


def test_operator_renames_own_tenant_but_cannot_take_the_default_flag(world_a, admin_a_client):
    tenant = world_a.tenant
    data = {
        "name": "Acme Corp",
        "is_default": "on",
        "hosts-TOTAL_FORMS": "1",
        "hosts-INITIAL_FORMS": "1",
        "hosts-0-id": world_a.host.pk,
        "hosts-0-tenant": tenant.pk,
        "hosts-0-host": world_a.host.host,
    }
    response = admin_a_client.post(admin_url(tenant, "change"), data)
    assert response.status_code == 302
    tenant.refresh_from_db()
    assert (tenant.name, tenant.is_default, tenant.slug) == ("Acme Corp", False, "a")
