"""One gateway process, no configuration: ``/__apim/metrics`` shows its own counts and gauges.

A real ``GatewayRuntime`` (ORM loader, watcher, lifespan, usage recorder) on
loopback against the test database and a real echo upstream. A scrape folds
the answering worker's latest counts in first, so in one process the numbers
are exact at once; only reloads are waited for (bounded polls).
"""

from __future__ import annotations

import time

import httpx
import pytest

from apim.services.catalog import api_create, api_deprecate, api_publish, upstream_create
from apim.services.tenants import tenant_create
from gateway.headers import TrustedProxies
from gateway.metrics_multiprocess import multiprocess_dir, render
from gateway.runtime import GatewayRuntime
from tests.gateway.metrics.support import Exposition
from tests.gateway.proxy.test_config_reload import RuntimeServer

pytestmark = pytest.mark.django_db(transaction=True)


def scrape(http: httpx.Client, url: str) -> Exposition:
    response = http.get(f"{url}/__apim/metrics")
    assert response.status_code == 200
    return Exposition.parse(response.text)


def test_single_process_counts_health_and_reloads(echo_server, refused_port):
    assert multiprocess_dir() is None  # nothing configured: the process counts alone
    tenant = tenant_create(slug="mx", name="MX", is_default=True, actor=None)
    dead = f"http://127.0.0.1:{refused_port}"
    upstream = upstream_create(
        tenant=tenant,
        name="pool",
        targets=[echo_server.origin, dead],
        passive_failure_threshold=1,
        ejection_base_s=600,
        actor=None,
    )
    api = api_create(tenant=tenant, name="pool", title="Pool", base_path="/pool", upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    t, a, u = str(tenant.pk), str(api.pk), str(upstream.pk)
    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.2)
    with RuntimeServer(runtime) as url, httpx.Client(trust_env=False, timeout=10) as http:
        before = scrape(http, url)
        assert before.value("apim_gateway_upstream_target_healthy", upstream=u, target=dead) == 1
        assert before.value("apim_gateway_upstream_target_circuit", upstream=u, target=dead) == 0
        unrouted_before = before.value(
            "apim_gateway_requests_total", tenant="", api="", method="GET", status_class="4xx"
        )
        for _ in range(10):
            assert http.get(f"{url}/pool/x").status_code == 200  # the dead target is retried on the live one
        for _ in range(2):
            assert http.post(f"{url}/nowhere", content=b"x").status_code == 404
        after = scrape(http, url)
        assert after.value("apim_gateway_requests_total", tenant=t, api=a, method="GET", status_class="2xx") == 10
        assert after.value("apim_gateway_requests_total", tenant="", api="", method="POST", status_class="4xx") == 2
        assert after.value("apim_gateway_requests_total", tenant="", api="", method="GET", status_class="4xx") == (
            unrouted_before
        )
        assert after.value("apim_gateway_request_latency_seconds_count", tenant=t, api=a) == 10
        assert after.value("apim_gateway_upstream_latency_seconds_count", tenant=t, api=a) == 10
        assert after.value("apim_gateway_added_latency_seconds_count", tenant=t, api=a) == 10
        assert after.value("apim_gateway_upstream_target_healthy", upstream=u, target=dead) == 0
        assert after.value("apim_gateway_upstream_target_circuit", upstream=u, target=dead) == 2
        assert after.value("apim_gateway_upstream_target_healthy", upstream=u, target=echo_server.origin) == 1
        assert after.value("apim_gateway_config_stale") == 0
        assert after.value("apim_gateway_workers") >= 1
        assert after.value("apim_gateway_usage_buffer_depth") is not None

        version = after.value("apim_gateway_config_version")
        loaded = after.value("apim_gateway_config_loaded_timestamp_seconds")
        api_deprecate(api=api, actor=None)
        deadline = time.monotonic() + 15
        while (now := scrape(http, url)).value("apim_gateway_config_version") <= version:
            assert time.monotonic() < deadline, "the config version gauge never moved"
            time.sleep(0.05)
        assert now.value("apim_gateway_config_loaded_timestamp_seconds") > loaded
    # Stopped: this runtime's gauges are gone from the process's exposition.
    assert f'upstream="{u}"' not in render().decode()
