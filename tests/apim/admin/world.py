"""Two tenants with one of everything, and the users who look at them.

Shared by the admin tests of every app (each app's admin tests import the
fixtures from here in their conftest). Objects are named after their tenant
(``a-upstream``, ``b-api``) so a page that shows another tenant's rows is
easy to spot.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from django.contrib.auth.models import Group
from django.test import Client
from django.urls import reverse

from apim.models import API, AuditEvent, Route, Target, Tenant, TenantHost, Upstream
from consumers.models import APIKey, Application, Consumer, Plan, Subscription, SubscriptionStatus
from consumers.services import IssuedKey, api_key_issue
from policies.models import PolicyAttachment
from tests.factories import (
    ApiFactory,
    ApplicationFactory,
    ConsumerFactory,
    PlanFactory,
    TargetFactory,
    TenantFactory,
    UpstreamFactory,
    UserFactory,
    membership,
)


@dataclass
class TenantWorld:
    tenant: Tenant
    host: TenantHost
    upstream: Upstream
    target: Target
    api: API
    route: Route
    policy: PolicyAttachment
    consumer: Consumer
    application: Application
    issued: IssuedKey
    plan: Plan
    subscription: Subscription

    @property
    def key(self) -> APIKey:
        return self.issued.key

    def objects(self) -> dict[type, object]:
        """One row of each tenant-scoped model registered in the admin."""
        return {
            Tenant: self.tenant,
            Upstream: self.upstream,
            API: self.api,
            PolicyAttachment: self.policy,
            Consumer: self.consumer,
            Application: self.application,
            APIKey: self.key,
            Plan: self.plan,
            Subscription: self.subscription,
            AuditEvent: AuditEvent.objects.filter(tenant=self.tenant).first(),
        }


def build_tenant(slug: str) -> TenantWorld:
    tenant = TenantFactory(slug=slug)
    host = TenantHost.objects.create(tenant=tenant, host=f"{slug}.example.test")
    upstream = UpstreamFactory(tenant=tenant, name=f"{slug}-upstream")
    target = TargetFactory(upstream=upstream, url=f"http://127.0.0.1:90{len(slug):02d}/{slug}")
    api = ApiFactory(tenant=tenant, name=f"{slug}-api", upstream=upstream)
    route = Route.objects.create(tenant=tenant, api=api, path="/items", methods=["GET"])
    consumer = ConsumerFactory(tenant=tenant, name=f"{slug}-consumer")
    application = ApplicationFactory(consumer=consumer, name=f"{slug}-app")
    policy = PolicyAttachment.objects.create(tenant=tenant, api=api, policy="key-auth")
    plan = PlanFactory(tenant=tenant, name=f"{slug}-plan")
    subscription = Subscription.objects.create(
        tenant=tenant, application=application, api=api, plan=plan, status=SubscriptionStatus.ACTIVE
    )
    issued = api_key_issue(application=application, name=f"{slug}-key", actor=None)  # also writes an AuditEvent
    return TenantWorld(
        tenant, host, upstream, target, api, route, policy, consumer, application, issued, plan, subscription
    )


def login(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def admin_url(model_or_obj, view: str, *args) -> str:
    """``admin:<app>_<model>_<view>``; for change/delete/history pass the object (or its pk)."""
    opts = model_or_obj._meta
    if view in ("change", "delete", "history") and not args:
        args = (model_or_obj.pk,)
    return reverse(f"admin:{opts.app_label}_{opts.model_name}_{view}", args=args)


@pytest.fixture
def world_a(db) -> TenantWorld:
    return build_tenant("a")


@pytest.fixture
def world_b(db) -> TenantWorld:
    return build_tenant("b")


def _staff_with_role(tenant: Tenant, role: str, username: str):
    user = UserFactory(username=username, is_staff=True)
    membership(user=user, tenant=tenant, role=role)
    return user


@pytest.fixture
def admin_a(world_a):
    """A staff user who is admin of tenant A only, with a personal access token (for the token pages)."""
    from apim.services.tokens import token_issue

    user = _staff_with_role(world_a.tenant, "admin", "admin-a")
    token_issue(user=user, name="admin-a-token", actor=None)
    return user


@pytest.fixture
def owner_a(world_a):
    return _staff_with_role(world_a.tenant, "owner", "owner-a")


@pytest.fixture
def viewer_a(world_a):
    return _staff_with_role(world_a.tenant, "viewer", "viewer-a")


@pytest.fixture
def stranger(db):
    """Staff, but member of no tenant."""
    return UserFactory(username="stranger", is_staff=True)


@pytest.fixture
def group(db) -> Group:
    return Group.objects.create(name="operators")


@pytest.fixture
def superuser_client(superuser) -> Client:
    return login(superuser)


@pytest.fixture
def admin_a_client(admin_a) -> Client:
    return login(admin_a)


@pytest.fixture
def viewer_a_client(viewer_a) -> Client:
    return login(viewer_a)


@pytest.fixture
def owner_a_client(owner_a) -> Client:
    return login(owner_a)
