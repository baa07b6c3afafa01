"""apim.services.tenants: tenants with their first admin, hosts and memberships."""

import pytest
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError

from apim.models import AuditEvent, Membership, Role, Tenant, TenantHost
from apim.services.tenants import membership_set, tenant_create, tenant_create_with_admin, tenant_host_add

User = get_user_model()


def _state():
    return Tenant.objects.count(), TenantHost.objects.count(), User.objects.count(), Membership.objects.count()


@pytest.mark.django_db
def test_tenant_with_first_admin():
    tenant, user = tenant_create_with_admin(
        slug="acme",
        name="Acme",
        username="ops",
        email="ops@acme.test",
        password="x" * 20,
        hosts=["API.acme.test."],
        actor=None,
    )
    assert user.is_staff and not user.is_superuser
    assert user.check_password("x" * 20)
    assert Membership.objects.get(tenant=tenant, user=user).role == Role.OWNER
    assert list(tenant.hosts.values_list("host", flat=True)) == ["api.acme.test"]
    actions = set(AuditEvent.objects.values_list("action", flat=True))
    assert {"tenant.create", "tenanthost.create", "user.create", "membership.create"} <= actions
    assert all("x" * 20 not in str(e.after) for e in AuditEvent.objects.all())
    assert not any("password" in (e.after or {}) for e in AuditEvent.objects.all())


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"slug": "Bad Slug"}, "not a valid name"),
        ({"hosts": ["bad host"]}, "not a valid hostname"),
        ({"hosts": ["a.test:8080"]}, "port"),
        ({"email": "not-an-email"}, "valid email"),
    ],
)
def test_bad_input_writes_nothing(kwargs, message):
    args = {
        "slug": "acme",
        "name": "Acme",
        "username": "ops",
        "email": "ops@acme.test",
        "password": "p" * 20,
        "actor": None,
    }
    args.update(kwargs)
    before = _state()
    with pytest.raises(ValidationError, match=message):
        tenant_create_with_admin(**args)
    assert _state() == before
    assert not AuditEvent.objects.exists()


@pytest.mark.django_db
def test_duplicate_slug_and_host_refused():
    tenant_create(slug="acme", name="Acme", hosts=["api.acme.test"], actor=None)
    with pytest.raises(ValidationError, match="already exists"):
        tenant_create(slug="acme", name="Again", actor=None)
    with pytest.raises(ValidationError, match="already exists"):
        tenant_create(slug="other", name="Other", hosts=["API.ACME.TEST"], actor=None)
    assert Tenant.objects.count() == 1


@pytest.mark.django_db
def test_only_one_default_tenant():
    tenant_create(slug="first", name="First", is_default=True, actor=None)
    with pytest.raises(ValidationError, match="'first' already serves unmatched hosts"):
        tenant_create(slug="second", name="Second", is_default=True, actor=None)
    assert Tenant.objects.count() == 1


def test_unknown_role_refused(tenant, operator):
    with pytest.raises(ValidationError, match="Unknown role 'root'"):
        membership_set(tenant=tenant, user=operator, role="root", actor=None)
    assert Membership.objects.get(user=operator).role == Role.ADMIN


def test_role_change_is_audited(tenant, operator):
    membership_set(tenant=tenant, user=operator, role=Role.VIEWER, actor=None)
    event = AuditEvent.objects.get(action="membership.update")
    assert event.before["role"] == "admin" and event.after["role"] == "viewer"


def test_host_add_bumps_config(tenant):
    tenant_host_add(tenant=tenant, host="new.example.test", actor=None)
    tenant.refresh_from_db()
    assert tenant.config_version == 1


def test_tenant_delete_is_audited_and_announced(tenant, operator, django_capture_on_commit_callbacks):
    from apim.services.tenants import tenant_delete

    tenant_id = str(tenant.pk)
    with django_capture_on_commit_callbacks() as callbacks:
        tenant_delete(tenant=tenant, actor=operator)
    assert not Tenant.objects.filter(pk=tenant_id).exists()
    event = AuditEvent.objects.get(action="tenant.delete")
    assert event.object_id == tenant_id and event.tenant is None
    assert len(callbacks) == 1
