"""``seed_demo``: a complete, working demo through the services, once."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError
from django.test import override_settings

from apim.exceptions import Conflict
from apim.models import API, ApiStatus, AuditEvent, Membership, Role, Tenant
from consumers.models import APIKey, Application, Consumer, Plan, Subscription, SubscriptionStatus
from consumers.selectors import api_key_verify
from tests.factories import TenantFactory

from .support import dump_database, run, unchanged

pytestmark = pytest.mark.django_db


def field(output: str, label: str) -> str:
    return output.split(f"{label} : ")[1].split()[0]


@override_settings(APIM_WEB_PORT=8080)
def test_seeds_everything_the_demo_needs():
    result = run("seed_demo")
    out = result.out

    tenant = Tenant.objects.get(slug="demo")
    assert tenant.is_default and list(tenant.hosts.values_list("host", flat=True)) == ["localhost"]
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_staff and not admin.is_superuser
    assert Membership.objects.get(tenant=tenant, user=admin).role == Role.OWNER
    password = out.split("Login         : admin / ")[1].split()[0]
    assert admin.check_password(password) and out.count(password) == 1

    api = API.objects.get(tenant=tenant, name="echo", version="v1")
    assert api.status == ApiStatus.PUBLISHED and api.base_path == "/echo"
    assert api.upstream.name == "echo"
    assert list(api.upstream.targets.values_list("url", "enabled")) == [("http://127.0.0.1:8080/_demo/echo", True)]

    consumer = Consumer.objects.get(tenant=tenant, name="demo-consumer")
    app = Application.objects.get(consumer=consumer, name="demo-app")
    plan = Plan.objects.get(tenant=tenant, name="demo")
    assert (plan.rate_limit_per_second, plan.quota_per_day) == (10, 1000)
    subscription = Subscription.objects.get(application=app, api=api)
    assert subscription.status == SubscriptionStatus.ACTIVE and subscription.plan == plan

    key = field(out, "Demo API key ")
    check = api_key_verify(tenant=tenant, plaintext=key)
    assert check.ok and check.key.application == app
    assert APIKey.objects.get().prefix in out
    assert out.count(key) == 2  # the key line and the curl example, nowhere else
    assert key not in dump_database() and password not in dump_database()

    assert "http://127.0.0.1:8080/admin/" in out
    assert "http://127.0.0.1:8081   (the demo API: http://127.0.0.1:8081/echo/)" in out
    assert f"curl -H 'X-API-Key: {key}' http://127.0.0.1:8081/echo/hello" in out
    assert AuditEvent.objects.filter(tenant=tenant, action="apikey.issue").count() == 1


def test_if_empty_is_idempotent():
    first = run("seed_demo", "--if-empty")
    assert "Demo seeded" in first.out
    with unchanged():
        again = run("seed_demo", "--if-empty")
    assert again.out.strip() == "Demo not seeded: the database already has tenants."


def test_if_empty_skips_any_existing_tenant():
    TenantFactory(slug="acme")
    with unchanged():
        assert "not seeded" in run("seed_demo", "--if-empty").out
    assert not Tenant.objects.filter(slug="demo").exists()


def test_without_if_empty_a_second_seed_is_refused_and_nothing_is_written():
    run("seed_demo")
    with unchanged(), pytest.raises(CommandError, match="Tenant with this Slug already exists"):
        run("seed_demo")


def test_refuses_when_another_tenant_already_serves_unmatched_hosts():
    TenantFactory(slug="other", is_default=True)
    with unchanged(), pytest.raises(CommandError, match="'other' already serves unmatched hosts"):
        run("seed_demo")
    assert not get_user_model().objects.exists()


def test_a_failure_at_the_last_step_leaves_nothing_behind(monkeypatch):
    """The seed is one transaction: a refusal issuing the key undoes the tenant, API, plan and all."""

    def refuse(**kwargs):
        raise Conflict("no keys today")

    monkeypatch.setattr("apim.management.commands.seed_demo.api_key_issue", refuse)
    with unchanged(), pytest.raises(CommandError, match="no keys today"):
        run("seed_demo")
    assert not get_user_model().objects.exists()
    assert not Plan.objects.exists()
