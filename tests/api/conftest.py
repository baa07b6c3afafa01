"""A two-tenant world for the REST API tests: users of every role, tokens, and one object of each resource."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from rest_framework.test import APIClient

from apim.models import AuditEvent, Route, Tenant
from apim.services.tokens import token_issue
from consumers.services import api_key_issue, subscription_create
from policies.models import PolicyAttachment
from tests.analytics.rollup_rows import seed_usage
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

ROLES = ("owner", "admin", "developer", "viewer")


def bearer(plaintext: str, tenant: Tenant | None = None) -> APIClient:
    client = APIClient()
    client.credentials(
        HTTP_AUTHORIZATION=f"Bearer {plaintext}", **({"HTTP_X_APIM_TENANT": tenant.slug} if tenant else {})
    )
    return client


@dataclass
class TenantWorld:
    tenant: Tenant
    users: dict[str, Any] = field(default_factory=dict)
    tokens: dict[str, str] = field(default_factory=dict)
    objects: dict[str, Any] = field(default_factory=dict)
    # Traffic (rollup rows and a raw record) for the analytics and usage-record endpoints.
    usage: dict[str, Any] = field(default_factory=dict)

    def client(self, role: str) -> APIClient:
        return bearer(self.tokens[role], self.tenant)


def build_tenant_world(staff_token: str | None = None) -> TenantWorld:
    tenant = TenantFactory()
    world = TenantWorld(tenant=tenant)
    for role in ROLES:
        user = UserFactory()
        membership(user=user, tenant=tenant, role=role)
        world.users[role] = user
        world.tokens[role] = token_issue(user=user, name=f"{role}-token", actor=None).plaintext
    upstream = UpstreamFactory(tenant=tenant)
    target = TargetFactory(upstream=upstream)
    api = ApiFactory(tenant=tenant, upstream=upstream)
    route = Route.objects.create(tenant=tenant, api=api, path="/items", methods=["GET"])
    consumer = ConsumerFactory(tenant=tenant)
    dev_consumer = ConsumerFactory(tenant=tenant, user=world.users["developer"])
    application = ApplicationFactory(consumer=consumer)
    dev_application = ApplicationFactory(consumer=dev_consumer)
    plan = PlanFactory(tenant=tenant, requires_approval=True)
    key = api_key_issue(application=application, actor=None).key
    dev_key = api_key_issue(application=dev_application, actor=None).key
    subscription = subscription_create(application=application, api=api, plan=plan, actor=None)
    policy = PolicyAttachment.objects.create(tenant=tenant, api=api, policy="cors", config={})
    member = world.users["viewer"].memberships.get(tenant=tenant)
    audit = AuditEvent.objects.filter(tenant=tenant).first()
    world.usage = seed_usage(tenant=tenant, api=api, consumer=consumer, application=application)
    world.objects.update(
        tenant=tenant,
        member=member,
        api=api,
        route=route,
        upstream=upstream,
        target=target,
        consumer=consumer,
        dev_consumer=dev_consumer,
        application=application,
        dev_application=dev_application,
        apikey=key,
        dev_apikey=dev_key,
        plan=plan,
        subscription=subscription,
        policy=policy,
        auditevent=audit,
    )
    return world


@pytest.fixture
def world_a(db) -> TenantWorld:
    return build_tenant_world()


@pytest.fixture
def world_b(db) -> TenantWorld:
    return build_tenant_world()


@pytest.fixture
def staff(db):
    user = UserFactory(is_staff=True, is_superuser=True)
    return user, token_issue(user=user, name="staff", actor=None).plaintext
