"""A policy saved through the services is enforced by a running gateway within one second, and undone as fast."""

from __future__ import annotations

import time

import httpx
import pytest

from apim.services.catalog import api_create, api_publish, upstream_create
from apim.services.tenants import tenant_create
from gateway.headers import TrustedProxies
from gateway.runtime import GatewayRuntime
from policies.models import PolicyAttachment
from policies.services import policy_attachment_delete, policy_attachment_save
from tests.gateway.proxy.test_config_reload import RuntimeServer

pytestmark = pytest.mark.django_db(transaction=True)


def status_within(client: httpx.Client, url: str, expected: int, seconds: float = 1.0) -> float | None:
    """Seconds until ``url`` answers ``expected`` (polled), or None if it never did within ``seconds``."""
    start = time.monotonic()
    while time.monotonic() - start <= seconds:
        if client.get(url).status_code == expected:
            return time.monotonic() - start
        time.sleep(0.02)
    return None


def test_attach_change_disable_and_delete_take_effect_within_a_second(echo_server):
    tenant = tenant_create(slug="pol", name="Pol", is_default=True, actor=None)
    upstream = upstream_create(tenant=tenant, name="echo", targets=[echo_server.origin], actor=None)
    api = api_create(tenant=tenant, name="orders", title="Orders", base_path="/orders", upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.5)
    with RuntimeServer(runtime) as base, httpx.Client(timeout=5, trust_env=False) as client:
        url = f"{base}/orders/1"
        assert status_within(client, url, 200, seconds=5) is not None

        attachment = policy_attachment_save(
            attachment=PolicyAttachment(
                tenant=tenant, api=api, policy="ip-restriction", config={"deny": ["127.0.0.1"]}
            ),
            actor=None,
        )
        assert status_within(client, url, 403) is not None, "a new deny rule was not enforced within 1 s"
        assert client.get(url).json()["error"]["code"] == "ip_denied"

        attachment.config = {"allow": ["127.0.0.0/8"]}
        policy_attachment_save(attachment=attachment, actor=None)
        assert status_within(client, url, 200) is not None, "a changed rule was not applied within 1 s"

        attachment.config = {"deny": ["127.0.0.0/8"]}
        policy_attachment_save(attachment=attachment, actor=None)
        assert status_within(client, url, 403) is not None

        attachment.enabled = False
        policy_attachment_save(attachment=attachment, actor=None)
        assert status_within(client, url, 200) is not None, "disabling did not take effect within 1 s"

        attachment.enabled = True
        policy_attachment_save(attachment=attachment, actor=None)
        assert status_within(client, url, 403) is not None
        policy_attachment_delete(attachment=attachment, actor=None)
        assert status_within(client, url, 200) is not None, "deleting did not take effect within 1 s"
