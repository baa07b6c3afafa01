"""A tenant with consumers in the real database, and a gateway whose jwt handlers resolve them through it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from apim.models import Tenant
from apim.services.tenants import tenant_create
from consumers.services import consumer_create, consumer_suspend
from gateway.snapshot import TenantSpec
from policies.consumer_directory import ConsumerDirectory
from policies.jwks import JwksCache
from tests.gateway.harness import Api, GatewayHarness
from tests.policies.jwt.support import JwksServer, directory


@dataclass
class World:
    tenant_id: str
    consumers: dict[str, Any]
    directory: ConsumerDirectory
    jwks: JwksCache
    gateway: GatewayHarness
    origin: str

    def version(self) -> int:
        return Tenant.objects.values_list("config_version", flat=True).get(pk=self.tenant_id)

    def configure(self, config: dict[str, Any], *extra: Api) -> None:
        """One API at /svc guarded by ``config``, compiled against the tenant's current config version."""
        api = Api(base_path="/svc", targets=[self.origin], tenant=self.tenant_id, policies=[("jwt", config)])
        self.gateway.configure(
            api,
            *extra,
            tenants=[TenantSpec(tenant_id=self.tenant_id, hosts=(), is_default=True)],
            services={"consumers": self.directory, "jwks": self.jwks},
            tenant_versions={self.tenant_id: self.version()},
        )


@pytest.fixture
def world(gateway, echo_server, transactional_db):
    tenant = tenant_create(slug="jwt", name="JWT", is_default=True, actor=None)
    consumers = {
        "alice": consumer_create(tenant=tenant, name="alice", groups=["gold"], actor=None),
        "bob": consumer_create(tenant=tenant, name="bob", actor=None),
    }
    consumer_suspend(consumer=consumers["bob"], actor=None)
    jwks = JwksCache(min_refresh_interval=0.2)
    return World(str(tenant.pk), consumers, directory(), jwks, gateway, echo_server.origin)


@pytest.fixture
def jwks_server():
    server = JwksServer().start()
    yield server
    server.stop()
