"""``manage.py gateway --workers 2``: a scrape of ``/__apim/metrics`` on any worker reports both.

Real processes as operators run them (a migrated SQLite install, the demo seed,
two uvicorn workers) and a real upstream on loopback. Every request of the test
is counted on the client side too; the scraped counters must equal those counts
exactly once the workers have flushed (polled, never a blind sleep).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from prometheus_client.multiprocess import MultiProcessCollector

from tests.gateway.metrics.support import Exposition

BASE_DIR = Path(__file__).resolve().parents[3]

SETUP = """
import json
from apim.models import API, Tenant
from apim.services.catalog import api_create, api_publish, upstream_create
from consumers.models import APIKey, Consumer
tenant = Tenant.objects.get(slug="demo")
plain = upstream_create(tenant=tenant, name="plain", targets=[ECHO], actor=None)
pool = upstream_create(
    tenant=tenant, name="pool", targets=[ECHO, DEAD], passive_failure_threshold=1, ejection_base_s=600, actor=None
)
apis = {}
for name, upstream in (("plain", plain), ("pool", pool)):
    api = api_create(tenant=tenant, name=name, title=name, base_path="/" + name, upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    apis[name] = str(api.pk)
apis["echo"] = str(API.objects.get(tenant=tenant, name="echo").pk)
print(json.dumps({
    "tenant": str(tenant.pk),
    "apis": apis,
    "pool": str(pool.pk),
    "consumer": str(Consumer.objects.get(name="demo-consumer").pk),
    "key_prefix": APIKey.objects.get().prefix,
    "echo_target": ECHO,
    "dead_target": DEAD,
}))
"""

EXPECTED_LABELS = {
    "apim_gateway_requests": {"tenant", "api", "method", "status_class"},
    "apim_gateway_request_latency_seconds": {"tenant", "api"},
    "apim_gateway_upstream_latency_seconds": {"tenant", "api"},
    "apim_gateway_added_latency_seconds": {"tenant", "api"},
    "apim_gateway_denials": {"tenant", "api", "reason"},
    "apim_gateway_ratelimit_rejections": {"tenant", "api", "reason"},
    "apim_gateway_config_reloads": set(),
    "apim_gateway_workers": set(),
    "apim_gateway_upstream_target_healthy": {"upstream", "target"},
    "apim_gateway_upstream_target_circuit": {"upstream", "target"},
    "apim_gateway_usage_buffer_depth": set(),
    "apim_gateway_config_version": set(),
    "apim_gateway_config_loaded_timestamp_seconds": set(),
    "apim_gateway_config_stale": set(),
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def manage(env: dict[str, str], *argv: str) -> str:
    return subprocess.run(
        [sys.executable, "manage.py", *argv],
        cwd=BASE_DIR,
        env=env,
        check=True,
        timeout=120,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def install(tmp_path, echo_server, refused_port):
    """A migrated, seeded SQLite install whose demo API and two more point at the loopback echo server."""
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE")}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    env.update(
        {
            "APIM_DATA_DIR": str(tmp_path),
            "APIM_ENV": "local",
            "APIM_GATEWAY_POLL_INTERVAL": "0.2",
            # The demo API's upstream is "the web process's echo": make that our echo server.
            "APIM_WEB_PORT": echo_server.origin.rsplit(":", 1)[1],
        }
    )
    manage(env, "migrate", "-v0")
    seeded = manage(env, "seed_demo")
    key = re.search(r"Demo API key\s*:\s*(apim_\w+)", seeded)
    assert key, seeded
    script = f"ECHO = {echo_server.origin!r}\nDEAD = 'http://127.0.0.1:{refused_port}'\n{SETUP}"
    ids = json.loads(manage(env, "shell", "-c", script).strip().splitlines()[-1])
    return env, key.group(1), ids


@pytest.fixture
def gateway(install, tmp_path):
    env, key, ids = install
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "manage.py", "gateway", "--port", str(port), "--workers", "2"],
        cwd=BASE_DIR,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        yield f"http://127.0.0.1:{port}", env, key, ids, tmp_path / "gateway-metrics" / str(port), process
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            process.wait(timeout=30)


def scrape(url: str) -> Exposition:
    # A new connection per scrape: over the test, scrapes land on both workers.
    response = httpx.get(f"{url}/__apim/metrics", trust_env=False, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return Exposition.parse(response.text)


def poll(url: str, done: Callable[[Exposition], bool], timeout: float = 30) -> Exposition:
    deadline = time.monotonic() + timeout
    while True:
        try:
            exposition = scrape(url)
        except httpx.TransportError:
            exposition = None
        if exposition is not None and done(exposition):
            return exposition
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never reached the expected state:\n{exposition.text if exposition else ''}")
        time.sleep(0.1)


def status_class(status: int) -> str:
    return f"{status // 100}xx"


def test_counts_from_both_workers_add_up(gateway):
    url, _env, key, ids, metrics_dir, _process = gateway
    tenant, apis = ids["tenant"], ids["apis"]
    poll(url, lambda e: e.value("apim_gateway_workers") == 2, timeout=60)

    requests: Counter[tuple[str, str, str, str]] = Counter()  # (tenant, api, method, status class)
    upstream_answered: Counter[tuple[str, str]] = Counter()  # forwarded requests by (tenant, api)
    denials: Counter[tuple[str, str, str]] = Counter()

    def send(method: str, path: str, api: str, client: httpx.Client | None = None, **kwargs) -> int:
        if client is None:
            # A new connection per request: uvicorn's workers share the socket, so both serve.
            status = httpx.request(method, f"{url}{path}", trust_env=False, timeout=10, **kwargs).status_code
        else:
            status = client.request(method, f"{url}{path}", **kwargs).status_code
        label_tenant = tenant if api else ""
        requests[(label_tenant, api, method if method in ("GET", "POST") else "OTHER", status_class(status))] += 1
        return status

    for _ in range(40):
        assert send("GET", "/plain/x", apis["plain"]) == 200
        upstream_answered[(tenant, apis["plain"])] += 1
    for status in (404, 404, 503, 201):
        assert send("GET", f"/plain/status/{status}", apis["plain"]) == status
        upstream_answered[(tenant, apis["plain"])] += 1
    assert send("POST", "/plain/x", apis["plain"], content=b"{}") == 200
    upstream_answered[(tenant, apis["plain"])] += 1
    for _ in range(3):
        assert send("PURGE", "/plain/x", apis["plain"]) == 200
        upstream_answered[(tenant, apis["plain"])] += 1
    for _ in range(5):
        assert send("GET", "/nowhere/at/all", "") == 404
        denials[("", "", "not_found")] += 1
    for _ in range(6):
        assert send("GET", "/echo/x", apis["echo"]) == 401
        denials[(tenant, apis["echo"], "key_missing")] += 1
    # The demo plan admits 10 requests a second: a burst on one connection (one worker) is cut short.
    limited = 0
    with httpx.Client(trust_env=False, timeout=10) as client:
        for _ in range(25):
            status = send("GET", "/echo/x", apis["echo"], client, headers={"X-API-Key": key})
            assert status in (200, 429)
            if status == 429:
                limited += 1
                denials[(tenant, apis["echo"], "rate_limited")] += 1
            else:
                upstream_answered[(tenant, apis["echo"])] += 1
    assert limited >= 10
    total = sum(requests.values())

    exposition = poll(url, lambda e: e.total("apim_gateway_requests_total") == total)
    # Every scrape, whichever worker answers it, shows the same totals.
    for _ in range(6):
        again = scrape(url)
        assert again.by("apim_gateway_requests_total", "tenant", "api", "method", "status_class") == dict(requests)
    exposition = scrape(url)
    assert exposition.by("apim_gateway_requests_total", "tenant", "api", "method", "status_class") == dict(requests)
    assert exposition.by("apim_gateway_denials_total", "tenant", "api", "reason") == dict(denials)
    assert exposition.by("apim_gateway_ratelimit_rejections_total", "tenant", "api", "reason") == {
        (tenant, apis["echo"], "rate_limited"): limited
    }

    # Histograms: one total-latency observation per request, an upstream and an added one per forwarded request.
    per_api = Counter()
    for (t, api, _method, _cls), n in requests.items():
        per_api[(t, api)] += n
    assert exposition.by("apim_gateway_request_latency_seconds_count", "tenant", "api") == dict(per_api)
    inf = exposition.by(
        "apim_gateway_request_latency_seconds_bucket", "tenant", "api", where=lambda labels: labels["le"] == "+Inf"
    )
    assert inf == dict(per_api)
    for name in ("apim_gateway_upstream_latency_seconds_count", "apim_gateway_added_latency_seconds_count"):
        assert exposition.by(name, "tenant", "api") == dict(upstream_answered), name
    assert exposition.total("apim_gateway_request_latency_seconds_sum") > 0

    # The usage pipeline's own counters are shared the same way: every request's record was handed to the sink.
    poll(url, lambda e: e.value("apim_usage_records_flushed_total") == total)

    # Both workers counted (each one's own file holds requests), and together they make the total.
    per_worker = {}
    for path in metrics_dir.glob("counter_*.db"):
        merged = MultiProcessCollector.merge([str(path)], accumulate=False)
        count = sum(
            s.value for m in merged if m.name == "apim_gateway_requests" for s in m.samples if s.name.endswith("_total")
        )
        if count:
            per_worker[path.name] = count
    assert len(per_worker) == 2, per_worker
    assert sum(per_worker.values()) == total

    # Metric names and label sets; no consumer, key or path anywhere in a label.
    for name, labels in EXPECTED_LABELS.items():
        assert name in exposition.label_names, name
        assert exposition.label_names[name] == {frozenset(labels)}, name
    assert ids["consumer"] not in exposition.text
    assert ids["key_prefix"] not in exposition.text
    assert "/plain/x" not in exposition.text and "nowhere" not in exposition.text
    assert exposition.value("apim_gateway_usage_buffer_depth") is not None
    assert exposition.value("apim_gateway_config_stale") == 0


def test_target_health_and_config_version_gauges(gateway):
    url, env, _key, ids, metrics_dir, process = gateway
    pool, dead, echo = ids["pool"], ids["dead_target"], ids["echo_target"]
    exposition = poll(url, lambda e: e.value("apim_gateway_workers") == 2, timeout=60)
    assert exposition.value("apim_gateway_upstream_target_healthy", upstream=pool, target=dead) == 1
    assert exposition.value("apim_gateway_upstream_target_circuit", upstream=pool, target=dead) == 0

    # Traffic finds the dead target (connect refused, retried on the live one) and ejects it.
    for _ in range(8):
        assert httpx.get(f"{url}/pool/x", trust_env=False, timeout=10).status_code == 200
    exposition = poll(url, lambda e: e.value("apim_gateway_upstream_target_healthy", upstream=pool, target=dead) == 0)
    assert exposition.value("apim_gateway_upstream_target_circuit", upstream=pool, target=dead) == 2
    assert exposition.value("apim_gateway_upstream_target_healthy", upstream=pool, target=echo) == 1

    # A configuration change reaches both workers: the version gauge (their lowest) moves, and the reload time.
    tenant_version_before = exposition.value("apim_gateway_config_version")
    loaded_before = exposition.value("apim_gateway_config_loaded_timestamp_seconds")
    reloads_before = exposition.value("apim_gateway_config_reloads_total")
    assert tenant_version_before is not None and loaded_before is not None and reloads_before >= 2
    manage(env, "api_lifecycle", "--tenant", "demo", "plain", "deprecate")
    exposition = poll(url, lambda e: e.value("apim_gateway_config_version") > tenant_version_before)
    assert exposition.value("apim_gateway_config_loaded_timestamp_seconds") > loaded_before
    assert exposition.value("apim_gateway_config_reloads_total") >= reloads_before + 2

    # SIGTERM: the workers flush, retire their gauges and exit cleanly.
    os.killpg(process.pid, signal.SIGTERM)
    assert process.wait(timeout=30) == 0
    assert not list(metrics_dir.glob("apim_gauges_*.json"))
