"""Every request through a running gateway leaves one usage record, rejected ones included.

A real ``GatewayRuntime`` serves on loopback; records go the way the settings
say — straight into the database on the embedded defaults, through a Redis
stream (drained here with the same function the Celery task runs) when
``REDIS_URL`` is set, as in CI's second pass.
"""

from __future__ import annotations

import asyncio
import uuid

import httpx
import pytest
import redis
from websockets.asyncio.client import connect

from analytics.models import UsageRecord
from analytics.pipeline import usage_stream_drain
from apim.services.catalog import api_create, api_publish, upstream_create
from apim.services.tenants import tenant_create
from consumers.services import api_key_issue, application_create, consumer_create, plan_create, subscription_create
from gateway.headers import TrustedProxies
from gateway.runtime import GatewayRuntime
from policies.models import PolicyAttachment
from policies.services import policy_attachment_save
from tests.gateway.proxy.test_config_reload import RuntimeServer, wait_for
from tests.gateway.servers import ws_echo_server  # noqa: F401 - fixture

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def usage_sink(settings):
    """This test's own stream when Redis is configured (else the database sink); yields a drain callable."""
    url = settings.REDIS_URL
    if not url:
        settings.APIM_USAGE_REDIS_URL = None
        yield lambda: None
        return
    stream = f"apim-test:usage:{uuid.uuid4().hex}"
    settings.APIM_USAGE_REDIS_URL = url
    settings.APIM_USAGE_STREAM = stream
    client = redis.Redis.from_url(url)

    def drain() -> None:
        usage_stream_drain(client=client, stream=stream, group="test", consumer="test")

    yield drain
    client.delete(stream, f"{stream}:dead")
    client.close()


def test_proxied_denied_and_unrouted_requests_are_recorded(echo_server, usage_sink):
    tenant = tenant_create(slug="usage", name="Usage", is_default=True, actor=None)
    upstream = upstream_create(tenant=tenant, name="echo", targets=[echo_server.origin], actor=None)
    api = api_create(tenant=tenant, name="orders", title="Orders", base_path="/orders", upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    policy_attachment_save(attachment=PolicyAttachment(tenant=tenant, api=api, policy="key-auth"), actor=None)
    consumer = consumer_create(tenant=tenant, name="acme", actor=None)
    app = application_create(consumer=consumer, name="web", actor=None)
    subscription_create(application=app, api=api, plan=plan_create(tenant=tenant, name="p", actor=None), actor=None)
    issued = api_key_issue(application=app, actor=None)

    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.5)
    with RuntimeServer(runtime) as base, httpx.Client(timeout=5, trust_env=False) as client:
        assert wait_for(lambda: client.get(f"{base}/orders/ready").status_code == 401, timeout=5)
        ok = client.post(
            f"{base}/orders/items?x=1",
            content=b"0123456789",
            headers={"X-API-Key": issued.plaintext, "User-Agent": "usage-test/1", "X-Request-ID": "req-ok-1"},
        )
        denied = client.get(f"{base}/orders/items", headers={"X-Request-ID": "req-denied-1"})
        unrouted = client.get(f"{base}/nowhere", headers={"X-Request-ID": "req-404-1"})
        assert (ok.status_code, denied.status_code, unrouted.status_code) == (200, 401, 404)
        client.get(f"{base}/__apim/health")  # reserved endpoints are not consumer traffic

    # The runtime stopped: its lifespan flushed the buffer (as on SIGTERM).
    usage_sink()
    rows = {r.request_id: r for r in UsageRecord.objects.filter(request_id__startswith="req-")}
    assert set(rows) == {"req-ok-1", "req-denied-1", "req-404-1"}

    ok_row = rows["req-ok-1"]
    assert (str(ok_row.tenant_id), str(ok_row.api_id), ok_row.route) == (str(tenant.pk), str(api.pk), "/orders")
    assert (ok_row.method, ok_row.path, ok_row.status) == ("POST", "/orders/items", 200)
    assert str(ok_row.consumer_id) == str(consumer.pk) and str(ok_row.application_id) == str(app.pk)
    assert ok_row.key_prefix == issued.key.prefix and issued.plaintext not in ok_row.key_prefix
    assert ok_row.deny_reason == ""
    assert ok_row.bytes_in == 10 and ok_row.bytes_out == len(ok.content)
    assert ok_row.upstream_target == echo_server.origin
    assert ok_row.upstream_latency_us is not None and ok_row.latency_us >= ok_row.upstream_latency_us
    assert ok_row.user_agent == "usage-test/1" and ok_row.client_ip == "127.0.0.1"

    denied_row = rows["req-denied-1"]
    assert (denied_row.status, denied_row.deny_reason, str(denied_row.api_id)) == (401, "key_missing", str(api.pk))
    assert denied_row.upstream_latency_us is None and denied_row.consumer_id is None

    unrouted_row = rows["req-404-1"]
    assert (unrouted_row.status, unrouted_row.deny_reason) == (404, "not_found")
    assert unrouted_row.api_id is None
    assert not UsageRecord.objects.filter(path__startswith="/__apim").exists()


def test_a_websocket_session_is_recorded_with_its_consumer(ws_echo_server, usage_sink):  # noqa: F811
    """The runtime hands WebSocket sessions to the same recorder: one row, status 101, the key's consumer."""
    tenant = tenant_create(slug="usage-ws", name="Usage WS", is_default=True, actor=None)
    upstream = upstream_create(tenant=tenant, name="ws-echo", targets=[ws_echo_server.origin], actor=None)
    api = api_create(tenant=tenant, name="chat", title="Chat", base_path="/chat", upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    policy_attachment_save(attachment=PolicyAttachment(tenant=tenant, api=api, policy="key-auth"), actor=None)
    consumer = consumer_create(tenant=tenant, name="acme", actor=None)
    app = application_create(consumer=consumer, name="web", actor=None)
    subscription_create(application=app, api=api, plan=plan_create(tenant=tenant, name="p", actor=None), actor=None)
    issued = api_key_issue(application=app, actor=None)

    async def session(url: str) -> None:
        headers = {"X-API-Key": issued.plaintext, "X-Request-ID": "req-ws-1"}
        async with connect(url, additional_headers=headers, proxy=None, open_timeout=5) as ws:
            await ws.send("ping!")
            assert await ws.recv() == "ping!"

    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.5)
    with RuntimeServer(runtime) as base, httpx.Client(timeout=5, trust_env=False) as client:
        assert wait_for(lambda: client.get(f"{base}/chat/ready").status_code == 401, timeout=5)
        asyncio.run(asyncio.wait_for(session(base.replace("http://", "ws://") + "/chat/room"), 10))

    usage_sink()
    row = UsageRecord.objects.get(request_id="req-ws-1")
    assert (row.method, row.path, row.status, row.deny_reason) == ("GET", "/chat/room", 101, "")
    assert str(row.consumer_id) == str(consumer.pk) and row.key_prefix == issued.key.prefix
    assert row.bytes_in == 5 and row.bytes_out == 5
