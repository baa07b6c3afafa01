"""Gateway workers report target health to the database; the admin's upstream page shows it."""

from __future__ import annotations

import asyncio

import pytest

from apim.services.catalog import api_create, api_publish, upstream_create
from apim.services.tenants import tenant_create
from gateway.headers import TrustedProxies
from gateway.models import TargetHealthReport
from gateway.runtime import GatewayRuntime

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def routed_upstream(refused_port, echo_server):
    tenant = tenant_create(slug="hr", name="HR", is_default=True, actor=None)
    upstream = upstream_create(
        tenant=tenant, name="pool", targets=[echo_server.origin, f"http://127.0.0.1:{refused_port}"], actor=None
    )
    api = api_create(tenant=tenant, name="pool", title="Pool", base_path="/pool", upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    return upstream


def test_reports_reach_the_admin_upstream_page(routed_upstream, client, superuser, refused_port, echo_server):
    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=5)

    async def scenario():
        await runtime.watcher.start()
        try:
            # Eject the dead target as real traffic would.
            health = runtime.registry.get(str(routed_upstream.pk), f"http://127.0.0.1:{refused_port}")
            for _ in range(routed_upstream.passive_failure_threshold):
                health.record_failure(probe=False)
            await runtime.report_health()
        finally:
            await runtime.watcher.stop()

    asyncio.run(scenario())
    reports = {r.target_url: r for r in TargetHealthReport.objects.filter(upstream=routed_upstream)}
    assert reports[f"http://127.0.0.1:{refused_port}"].state == "ejected"
    assert reports[echo_server.origin].state == "healthy"
    client.force_login(superuser)
    page = client.get(f"/admin/apim/upstream/{routed_upstream.pk}/change/").content.decode()
    assert "Target health" in page
    assert "ejected" in page and "healthy" in page
    assert runtime.gateway_id in page
