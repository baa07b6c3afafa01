"""Bad input is a form error on the page (status 200, an errorlist), never a 500."""

from __future__ import annotations

import pytest

from apim.models import API, Target, Upstream
from tests.apim.admin.world import admin_url

UPSTREAM_DEFAULTS = {
    "load_balancing": "round_robin",
    "connect_timeout_ms": 100,
    "read_timeout_ms": 100,
    "write_timeout_ms": 100,
    "retries": 1,
    "healthcheck_path": "/health",
    "healthcheck_interval_s": 10,
    "healthcheck_timeout_ms": 100,
    "healthy_threshold": 2,
    "unhealthy_threshold": 3,
    "passive_failure_threshold": 5,
    "ejection_base_s": 30,
}
NO_API_INLINES = {
    "routes-TOTAL_FORMS": "0",
    "routes-INITIAL_FORMS": "0",
    "policies-TOTAL_FORMS": "0",
    "policies-INITIAL_FORMS": "0",
}


def _api_data(world, **overrides) -> dict:
    return {
        "tenant": world.tenant.pk,
        "name": "orders",
        "version": "v1",
        "title": "Orders",
        "base_path": "/orders",
        "hosts": "[]",
        **NO_API_INLINES,
        **overrides,
    }


def _assert_form_error(response, field: str | None = None) -> None:
    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    if field is not None:
        assert field in response.context["adminform"].form.errors


def test_valid_api_is_created(world_a, admin_a_client):
    response = admin_a_client.post(admin_url(API, "add"), _api_data(world_a))
    assert response.status_code == 302
    assert API.objects.get(name="orders").hosts == []


def test_duplicate_name_and_version_in_a_tenant(world_a, admin_a_client):
    response = admin_a_client.post(admin_url(API, "add"), _api_data(world_a, name="a-api", base_path="/other"))
    _assert_form_error(response)
    assert API.objects.filter(tenant=world_a.tenant, name="a-api").count() == 1


@pytest.mark.parametrize("base_path", ["orders", "/a//b", "/a/../b"])
def test_invalid_base_path(base_path, world_a, admin_a_client):
    response = admin_a_client.post(admin_url(API, "add"), _api_data(world_a, base_path=base_path))
    _assert_form_error(response, "base_path")
    assert not API.objects.filter(name="orders").exists()


@pytest.mark.parametrize("url", ["http://user:pw@host", "ftp://x"])
def test_bad_target_url_in_the_upstream_inline(url, world_a, admin_a_client):
    data = {
        "tenant": world_a.tenant.pk,
        "name": "payments",
        **UPSTREAM_DEFAULTS,
        "targets-TOTAL_FORMS": "1",
        "targets-INITIAL_FORMS": "0",
        "targets-0-url": url,
        "targets-0-weight": "100",
        "targets-0-enabled": "on",
    }
    response = admin_a_client.post(admin_url(Upstream, "add"), data)
    assert response.status_code == 200
    assert 'class="errorlist' in response.content.decode()
    [formset] = response.context["inline_admin_formsets"]
    assert "url" in formset.formset.forms[0].errors
    assert not Upstream.objects.filter(name="payments").exists()
    assert not Target.objects.filter(url=url).exists()


def test_a_rule_only_the_service_knows_becomes_a_form_error(world_a, admin_a_client):
    """``subscription_save`` refuses a retired API; the form cannot see that rule, the page still shows it."""
    from consumers.models import Subscription

    API.objects.filter(pk=world_a.api.pk).update(status="retired")
    sub = world_a.subscription
    response = admin_a_client.post(admin_url(sub, "change"), {"plan": world_a.plan.pk})
    _assert_form_error(response)
    assert "retired" in response.content.decode()
    assert Subscription.objects.get(pk=sub.pk).updated_at == sub.updated_at
