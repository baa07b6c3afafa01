"""jwt + acl on a real DB-backed gateway (GatewayRuntime): consumer changes reach it through the config version."""

from __future__ import annotations

import httpx
import pytest

from apim.services.catalog import api_create, api_publish, upstream_create
from apim.services.tenants import tenant_create
from consumers.services import consumer_activate, consumer_create, consumer_save, consumer_suspend
from gateway.headers import TrustedProxies
from gateway.runtime import GatewayRuntime
from policies.models import PolicyAttachment
from policies.services import policy_attachment_save
from tests.gateway.proxy.test_config_reload import RuntimeServer
from tests.policies.jwt.support import HS_SECRET, poll, token

pytestmark = pytest.mark.django_db(transaction=True)


def test_groups_scopes_suspension_and_new_consumers_take_effect(echo_server):
    tenant = tenant_create(slug="jwtrt", name="JWT runtime", is_default=True, actor=None)
    upstream = upstream_create(tenant=tenant, name="echo", targets=[echo_server.origin], actor=None)
    api = api_create(tenant=tenant, name="orders", title="Orders", base_path="/orders", upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    alice = consumer_create(tenant=tenant, name="alice", groups=["gold"], actor=None)
    for policy, config in (
        ("jwt", {"algorithms": ["HS256"], "keys": [{"secret": HS_SECRET}], "hide_credentials": True}),
        ("acl", {"allow_groups": ["gold"], "required_scopes": ["orders:read"]}),
    ):
        policy_attachment_save(
            attachment=PolicyAttachment(tenant=tenant, api=api, policy=policy, config=config), actor=None
        )

    def status(sub: str = "alice", scope: str = "orders:read") -> int:
        headers = {"Authorization": f"Bearer {token(HS_SECRET, 'HS256', sub=sub, scope=scope)}"}
        return client.get(f"{base}/orders/1", headers=headers).status_code

    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.2)
    with RuntimeServer(runtime) as base, httpx.Client(timeout=5, trust_env=False) as client:
        assert poll(lambda: status() == 200), "a valid token was not accepted"
        response = client.get(
            f"{base}/orders/1", headers={"Authorization": f"Bearer {token(HS_SECRET, 'HS256', scope='orders:read')}"}
        )
        seen = {k.lower(): v for k, v in response.json()["headers"]}
        assert seen["x-consumer-username"] == "alice" and "authorization" not in seen
        assert status(scope="orders:write") == 403
        assert status(sub="newcomer") == 401

        alice.groups = ["silver"]
        consumer_save(consumer=alice, actor=None)
        assert poll(lambda: status() == 403), "a group change did not reach the gateway"

        alice.groups = ["gold"]
        consumer_save(consumer=alice, actor=None)
        assert poll(lambda: status() == 200)

        consumer_suspend(consumer=alice, actor=None)
        assert poll(lambda: status() == 401), "a suspension did not reach the gateway"
        consumer_activate(consumer=alice, actor=None)
        assert poll(lambda: status() == 200)

        consumer_create(tenant=tenant, name="newcomer", groups=["gold"], actor=None)
        assert poll(lambda: status(sub="newcomer") == 200), "a cached miss outlived the consumer's creation"
