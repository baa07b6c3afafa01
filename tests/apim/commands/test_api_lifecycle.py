"""``api_lifecycle``: legal moves go through the service; illegal ones are refused with its message."""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from apim.models import ApiStatus, AuditEvent
from tests.factories import ApiFactory

from .support import run, unchanged

pytestmark = pytest.mark.django_db


def test_walks_the_whole_lifecycle_with_audit_and_config_bumps(tenant, orders_api):
    version = tenant.config_version
    for action, status in (("publish", "published"), ("deprecate", "deprecated"), ("retire", "retired")):
        result = run("api_lifecycle", "--tenant", tenant.slug, "orders", action)
        orders_api.refresh_from_db()
        assert orders_api.status == status
        assert f"→ {status}" in result.out
        assert AuditEvent.objects.filter(object_id=str(orders_api.pk), action=f"api.{status}").count() == 1
    tenant.refresh_from_db()
    assert tenant.config_version == version + 3
    assert orders_api.published_at and orders_api.deprecated_at and orders_api.retired_at


@pytest.mark.parametrize(
    ("status", "action", "message"),
    [
        (ApiStatus.DRAFT, "deprecate", "is draft and cannot become deprecated: it can only become published"),
        (ApiStatus.PUBLISHED, "retire", "is published and cannot become retired: it can only become deprecated"),
        (ApiStatus.PUBLISHED, "publish", "is published and cannot become published"),
        (ApiStatus.RETIRED, "publish", "retired is final"),
    ],
)
def test_refuses_illegal_transitions(tenant, orders_api, status, action, message):
    orders_api.status = status
    orders_api.save()
    with unchanged(), pytest.raises(CommandError, match=message):
        run("api_lifecycle", "--tenant", tenant.slug, "orders", action)


def test_refuses_to_publish_without_an_upstream(tenant):
    ApiFactory(tenant=tenant, name="bare")
    with unchanged(), pytest.raises(CommandError, match="has no upstream; set one before publishing"):
        run("api_lifecycle", "--tenant", tenant.slug, "bare", "publish")


def test_picks_a_version_with_the_version_option_or_name_colon_version(tenant, orders_api):
    v2 = ApiFactory(tenant=tenant, name="orders", version="v2", base_path="/orders-v2", upstream=orders_api.upstream)
    with unchanged(), pytest.raises(CommandError, match=r"several versions \(v1, v2\); name one with NAME:VERSION"):
        run("api_lifecycle", "--tenant", tenant.slug, "orders", "publish")
    run("api_lifecycle", "--tenant", tenant.slug, "orders", "--version", "v2", "publish")
    run("api_lifecycle", "--tenant", tenant.slug, "orders:v1", "publish")
    v2.refresh_from_db()
    orders_api.refresh_from_db()
    assert (orders_api.status, v2.status) == ("published", "published")
    with unchanged(), pytest.raises(CommandError, match="names version 'v1' but --version says 'v2'"):
        run("api_lifecycle", "--tenant", tenant.slug, "orders:v1", "--version", "v2", "deprecate")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tenant", "ghost", "orders", "publish"], "No tenant named 'ghost'"),
        (["--tenant", "{tenant}", "nope", "publish"], "has no API named 'nope'"),
        (["--tenant", "{tenant}", "orders:v9", "publish"], "has no API named 'orders' version 'v9'"),
        (["--tenant", "{tenant}", "orders", "launch"], "invalid choice: 'launch'"),
    ],
)
def test_refuses_unknown_names(tenant, orders_api, args, message):
    args = [arg.format(tenant=tenant.slug) for arg in args]
    with unchanged(), pytest.raises(CommandError, match=message):
        run("api_lifecycle", *args)


def test_cannot_touch_another_tenants_api(tenant, other_tenant, orders_api):
    with unchanged(), pytest.raises(CommandError, match=f"Tenant '{other_tenant.slug}' has no API named 'orders'"):
        run("api_lifecycle", "--tenant", other_tenant.slug, "orders", "publish")
