"""apim.services.catalog.api_save / api_create: validation with clear messages, nothing written on error."""

import pytest
from django.core.exceptions import ValidationError

from apim.models import API, ApiStatus, AuditEvent, Tenant
from apim.services.catalog import api_create, api_save, upstream_create
from tests.factories import ApiFactory, UpstreamFactory


def _counts():
    return (
        API.objects.count(),
        AuditEvent.objects.count(),
        list(Tenant.objects.values_list("config_version", flat=True)),
    )


def test_create_writes_audit_and_bumps_config(tenant, operator, upstream):
    api = api_create(
        tenant=tenant, actor=operator, name="orders", title="Orders", base_path="/orders", upstream=upstream
    )
    assert api.status == ApiStatus.DRAFT
    event = AuditEvent.objects.get(action="api.create")
    assert event.before is None
    assert event.after["base_path"] == "/orders"
    assert event.actor_label == operator.username
    tenant.refresh_from_db()
    assert tenant.config_version == 1


def test_update_records_before_and_after(tenant, operator):
    api = api_create(tenant=tenant, actor=operator, name="orders", title="Orders", base_path="/orders")
    api.title = "Orders v2"
    api_save(api=api, actor=operator)
    event = AuditEvent.objects.get(action="api.update")
    assert event.before["title"] == "Orders"
    assert event.after["title"] == "Orders v2"


def test_duplicate_name_and_version_refused(tenant, operator):
    api_create(tenant=tenant, actor=operator, name="orders", title="Orders", base_path="/orders")
    before = _counts()
    with pytest.raises(ValidationError) as excinfo:
        api_create(tenant=tenant, actor=operator, name="orders", title="Again", base_path="/other")
    assert "Name and Version already exists" in str(excinfo.value) or "already exists" in str(excinfo.value)
    assert _counts() == before


def test_same_name_other_version_or_tenant_is_fine(tenant, other_tenant, operator):
    api_create(tenant=tenant, actor=operator, name="orders", title="Orders", base_path="/orders")
    api_create(tenant=tenant, actor=operator, name="orders", version="v2", title="Orders", base_path="/orders/v2")
    api_create(tenant=other_tenant, actor=operator, name="orders", title="Orders", base_path="/orders")
    assert API.objects.filter(name="orders").count() == 3


@pytest.mark.parametrize(
    ("mine", "theirs", "collides"),
    [
        ([], [], True),
        ([], ["a.example.com"], True),
        (["a.example.com"], [], True),
        (["a.example.com"], ["a.example.com", "b.example.com"], True),
        (["a.example.com"], ["b.example.com"], False),
    ],
)
def test_base_path_collision_depends_on_hosts(tenant, operator, mine, theirs, collides):
    ApiFactory(tenant=tenant, name="first", base_path="/shop", hosts=theirs)
    before = _counts()
    if collides:
        with pytest.raises(ValidationError, match="already used by API first"):
            api_create(tenant=tenant, actor=operator, name="second", title="S", base_path="/shop", hosts=mine)
        assert _counts() == before
    else:
        api_create(tenant=tenant, actor=operator, name="second", title="S", base_path="/shop", hosts=mine)


def test_retired_api_frees_its_base_path(tenant, operator):
    ApiFactory(tenant=tenant, name="old", base_path="/shop", status=ApiStatus.RETIRED)
    api_create(tenant=tenant, actor=operator, name="new", title="New", base_path="/shop")


def test_other_tenant_base_path_does_not_collide(tenant, other_tenant, operator):
    ApiFactory(tenant=other_tenant, name="x", base_path="/shop")
    api_create(tenant=tenant, actor=operator, name="y", title="Y", base_path="/shop")


def test_hosts_are_normalised(tenant, operator):
    api = api_create(tenant=tenant, actor=operator, name="h", title="H", base_path="/h", hosts=["API.Example.COM."])
    assert api.hosts == ["api.example.com"]


def test_upstream_of_another_tenant_refused(tenant, other_tenant, operator):
    foreign = UpstreamFactory(tenant=other_tenant)
    before = _counts()
    with pytest.raises(ValidationError, match="belongs to another tenant"):
        api_create(tenant=tenant, actor=operator, name="x", title="X", base_path="/x", upstream=foreign)
    assert _counts() == before


def test_invalid_base_path_refused(tenant, operator):
    before = _counts()
    with pytest.raises(ValidationError, match="dot segment"):
        api_create(tenant=tenant, actor=operator, name="x", title="X", base_path="/a/../b")
    assert _counts() == before


def test_upstream_with_bad_target_writes_nothing(tenant, operator):
    from apim.models import Upstream

    with pytest.raises(ValidationError, match="credentials"):
        upstream_create(tenant=tenant, actor=operator, name="pay", targets=["http://ok:1", "http://u:p@bad:2"])
    assert not Upstream.objects.filter(name="pay").exists()
    assert not AuditEvent.objects.filter(object_type="apim.upstream").exists()
