"""Config changes saved through the services reach a running gateway, off the request path.

A real gateway (``GatewayRuntime``: the ORM loader, the watcher, the lifespan)
serves on loopback against the test database; changes are made with the same
services the admin and commands use. Waits are bounded polls, not timings.
"""

from __future__ import annotations

import threading
import time

import httpx
import pytest
import uvicorn

from apim.services.catalog import api_create, api_deprecate, api_publish, api_retire, upstream_create
from apim.services.tenants import tenant_create
from gateway.headers import TrustedProxies
from gateway.runtime import GatewayRuntime

pytestmark = pytest.mark.django_db(transaction=True)


class RuntimeServer:
    def __init__(self, runtime: GatewayRuntime) -> None:
        self.runtime = runtime

        async def app(scope, receive, send):
            if scope["type"] == "lifespan":
                await runtime.lifespan(scope, receive, send)
            elif scope["type"] == "http":
                await runtime.http(scope, receive, send)
            elif scope["type"] == "websocket":
                await runtime.websocket(scope, receive, send)

        config = uvicorn.Config(
            app,
            host="127.0.0.1",
            port=0,
            loop="asyncio",
            lifespan="on",
            interface="asgi3",
            proxy_headers=False,
            log_level="error",
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 15
        while not self.server.started:
            assert time.monotonic() < deadline and self.thread.is_alive(), "gateway did not start"
            time.sleep(0.01)
        return f"http://127.0.0.1:{self.server.servers[0].sockets[0].getsockname()[1]}"

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=15)


def wait_for(check, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.05)
    return False


@pytest.fixture
def demo(echo_server):
    tenant = tenant_create(slug="gw", name="GW", is_default=True, actor=None)
    upstream = upstream_create(tenant=tenant, name="echo", targets=[echo_server.origin], actor=None)
    api = api_create(tenant=tenant, name="orders", title="Orders", base_path="/orders", upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    return tenant, upstream, api


def test_published_and_retired_apis_take_effect_on_a_running_gateway(demo):
    tenant, upstream, orders = demo
    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.2)
    with RuntimeServer(runtime) as url, httpx.Client(timeout=5, trust_env=False) as http:
        assert http.get(f"{url}/__apim/ready").json()["loaded"] is True
        assert http.get(f"{url}/orders/1").status_code == 200
        assert http.get(f"{url}/billing/1").status_code == 404

        billing = api_create(
            tenant=tenant, name="billing", title="Billing", base_path="/billing", upstream=upstream, actor=None
        )
        assert http.get(f"{url}/billing/1").status_code == 404  # a draft never routes
        api_publish(api=billing, actor=None)
        assert wait_for(lambda: http.get(f"{url}/billing/1").status_code == 200)

        reloads = runtime.watcher.reloads
        api_deprecate(api=orders, actor=None)
        assert wait_for(lambda: runtime.watcher.reloads > reloads)
        assert http.get(f"{url}/orders/1").status_code == 200  # deprecated still routes
        api_retire(api=orders, actor=None)
        assert wait_for(lambda: http.get(f"{url}/orders/1").status_code == 404)


def test_a_failed_reload_keeps_the_last_good_snapshot(demo):
    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.2)
    with RuntimeServer(runtime) as url, httpx.Client(timeout=5, trust_env=False) as http:
        assert http.get(f"{url}/orders/1").status_code == 200
        broken = {"on": True}
        real_load = runtime.watcher._load

        async def failing_load():
            if broken["on"]:
                raise ConnectionError("database unreachable")
            return await real_load()

        runtime.watcher._load = failing_load
        runtime.watcher.request_reload()
        assert wait_for(lambda: runtime.watcher.last_error is not None)
        ready = http.get(f"{url}/__apim/ready")
        assert ready.status_code == 200
        assert ready.json()["stale"] is True and "database unreachable" in ready.json()["last_error"]
        assert http.get(f"{url}/orders/1").status_code == 200  # still serving the last good snapshot
        broken["on"] = False
        assert wait_for(lambda: runtime.watcher.last_error is None)
        assert http.get(f"{url}/__apim/ready").json()["stale"] is False


def test_start_up_sets_the_young_generation_gc_threshold(demo, settings):
    import gc

    before = gc.get_threshold()
    settings.APIM_GATEWAY_GC_THRESHOLD = 12_345
    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.2)
    try:
        with RuntimeServer(runtime) as url, httpx.Client(timeout=5, trust_env=False) as http:
            assert http.get(f"{url}/orders/1").status_code == 200
            assert gc.get_threshold() == (12_345, *before[1:])
    finally:
        gc.set_threshold(*before)
