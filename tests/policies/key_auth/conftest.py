"""A tenant with an API, a consumer, an application subscribed on a plan and a key — in the real test database."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import pytest
from django.db import connections

from apim.models import API, Tenant
from consumers.models import Application, Consumer, Plan, Subscription
from consumers.services import IssuedKey, api_key_issue, subscription_create
from gateway.snapshot import TenantSpec
from policies.engine import AttachmentSpec
from policies.keystore import KeyStore
from tests.factories import ApiFactory, ApplicationFactory, ConsumerFactory, PlanFactory, TenantFactory
from tests.gateway.harness import Api, GatewayHarness


@dataclass
class World:
    tenant: Tenant
    api: API
    other_api: API
    consumer: Consumer
    application: Application
    plan: Plan
    subscription: Subscription
    issued: IssuedKey

    @property
    def key(self) -> str:
        return self.issued.plaintext


def make_world() -> World:
    tenant = TenantFactory()
    api = ApiFactory(tenant=tenant)
    other_api = ApiFactory(tenant=tenant)
    consumer = ConsumerFactory(tenant=tenant)
    application = ApplicationFactory(consumer=consumer)
    plan = PlanFactory(tenant=tenant)
    subscription = subscription_create(application=application, api=api, plan=plan, actor=None)
    issued = api_key_issue(application=application, actor=None)
    return World(tenant, api, other_api, consumer, application, plan, subscription, issued)


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def store() -> KeyStore:
    """A key store fed by the real database (the production lookup), in a thread off the event loop.

    Each lookup closes its thread's connection afterwards, so no connection
    outlives the test (PostgreSQL refuses to drop a test database in use).
    """

    def closing(fn):
        def call():
            try:
                return fn()
            finally:
                connections.close_all()

        return asyncio.to_thread(call)

    return KeyStore(run_in_thread=closing)


def serve(gateway: GatewayHarness, store: KeyStore, world: World, origin: str, **config) -> None:
    """Serve the world's two APIs (``/svc`` guarded by key-auth, ``/other`` too) at the tenant's current version."""
    tenant_id = str(world.tenant.pk)
    version = Tenant.objects.values_list("config_version", flat=True).get(pk=world.tenant.pk)
    gateway.configure(
        Api(base_path="/svc", targets=[origin], api_id=str(world.api.pk), tenant=tenant_id),
        Api(base_path="/other", targets=[origin], api_id=str(world.other_api.pk), tenant=tenant_id),
        Api(base_path="/open", targets=[origin], api_id="open", tenant=tenant_id),
        tenants=[TenantSpec(tenant_id=tenant_id, hosts=(), is_default=True)],
        attachments=[
            AttachmentSpec(id=f"ka-{api_id}", policy="key-auth", tenant_id=tenant_id, api_id=api_id, config=config)
            for api_id in (str(world.api.pk), str(world.other_api.pk))
        ],
        services={"keys": store},
        tenant_versions={tenant_id: version},
    )


@pytest.fixture
def deny_reasons(monkeypatch):
    """The ``deny_reason`` of each request the gateway answered itself, as analytics will record it."""
    import gateway.proxy

    reasons: list[str | None] = []
    real_answer = gateway.proxy._answer

    async def recording(send, result, ctx, head, **kwargs):
        # Recorded as the answer starts (the reason is set by then), so the client never sees it first.
        async def send_and_record(message):
            if message["type"] == "http.response.start":
                reasons.append(ctx.deny_reason if ctx is not None else None)
            await send(message)

        await real_answer(send_and_record, result, ctx, head, **kwargs)

    monkeypatch.setattr(gateway.proxy, "_answer", recording)
    return reasons
