"""``GatewayMetrics``: what a request adds, and what a flush turns it into (one process).

The metric objects are process-wide, so every test uses a tenant label of its
own and reads its samples from the default registry.
"""

from __future__ import annotations

import uuid

import pytest
from prometheus_client import REGISTRY, CollectorRegistry, Histogram

from gateway.metrics import (
    LATENCY_BUCKETS,
    MAX_DENY_REASONS,
    REQUEST_LATENCY,
    GatewayMetrics,
    status_class,
    target_label,
)


@pytest.fixture
def tenant() -> str:
    return f"t-{uuid.uuid4().hex[:12]}"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def observe(metrics: GatewayMetrics, tenant: str, **overrides) -> None:
    fields = {
        "tenant_id": tenant,
        "api_id": "a1",
        "method": "GET",
        "status": 200,
        "deny_reason": "",
        "latency_us": 1500,
        "upstream_latency_us": 1000,
        "gateway_latency_us": 300,
    }
    fields.update(overrides)
    metrics.observe(**fields)


@pytest.mark.parametrize(
    ("status", "expected"),
    [(0, "0"), (101, "1xx"), (200, "2xx"), (304, "3xx"), (429, "4xx"), (499, "4xx"), (599, "5xx"), (600, "0")],
)
def test_status_class(status, expected):
    assert status_class(status) == expected


def test_target_label_drops_credentials():
    assert target_label("http://user:secret@10.0.0.1:8080/base") == "http://10.0.0.1:8080/base"
    assert target_label("https://upstream.example:443") == "https://upstream.example:443"


def test_requests_counted_by_tenant_api_method_and_status_class(tenant):
    metrics = GatewayMetrics()
    for _ in range(3):
        observe(metrics, tenant)
    observe(metrics, tenant, status=201)
    observe(metrics, tenant, method="PURGE")
    observe(metrics, tenant, method="get")  # not a known method as sent: OTHER, not folded into GET
    observe(metrics, tenant, status=503, upstream_latency_us=None, deny_reason="no_healthy_target")
    observe(metrics, None, api_id=None, status=404, upstream_latency_us=None, deny_reason="not_found")
    assert sample("apim_gateway_requests_total", tenant=tenant, api="a1", method="GET", status_class="2xx") == 0
    metrics.flush()
    assert sample("apim_gateway_requests_total", tenant=tenant, api="a1", method="GET", status_class="2xx") == 4
    assert sample("apim_gateway_requests_total", tenant=tenant, api="a1", method="OTHER", status_class="2xx") == 2
    assert sample("apim_gateway_requests_total", tenant=tenant, api="a1", method="GET", status_class="5xx") == 1
    assert sample("apim_gateway_denials_total", tenant=tenant, api="a1", reason="no_healthy_target") == 1
    assert sample("apim_gateway_requests_total", tenant="", api="", method="GET", status_class="4xx") >= 1
    # A second flush with nothing new adds nothing.
    metrics.flush()
    assert sample("apim_gateway_requests_total", tenant=tenant, api="a1", method="GET", status_class="2xx") == 4


def test_histograms_match_prometheus_observe_including_bucket_edges(tenant):
    """The bulk path (pre-bucketed in microseconds) gives exactly what ``observe`` per value would."""
    metrics = GatewayMetrics()
    reference_registry = CollectorRegistry()
    reference = Histogram("ref", "", buckets=LATENCY_BUCKETS, registry=reference_registry)
    values_us = [0, 1, 99, 100, 101, 250, 999, 1000, 1001, 25_000, 999_999, 1_000_000, 59_999_999, 60_000_000]
    values_us += [60_000_001, 3_600_000_000]
    for value in values_us:
        observe(metrics, tenant, latency_us=value)
        reference.observe(value / 1_000_000)
    metrics.flush()
    for bound in [*LATENCY_BUCKETS, float("inf")]:
        le = "+Inf" if bound == float("inf") else str(bound)
        got = sample("apim_gateway_request_latency_seconds_bucket", tenant=tenant, api="a1", le=le)
        want = reference_registry.get_sample_value("ref_bucket", {"le": le})
        assert got == want, le
    assert sample("apim_gateway_request_latency_seconds_count", tenant=tenant, api="a1") == len(values_us)
    assert sample("apim_gateway_request_latency_seconds_sum", tenant=tenant, api="a1") == pytest.approx(
        reference_registry.get_sample_value("ref_sum")
    )
    # prometheus_client's histogram layout that the bulk path relies on.
    child = REQUEST_LATENCY.labels(tenant, "a1")
    assert len(child._buckets) == len(LATENCY_BUCKETS) + 1


def test_upstream_and_added_latency_only_for_forwarded_requests(tenant):
    metrics = GatewayMetrics()
    observe(metrics, tenant, latency_us=5000, upstream_latency_us=4000, gateway_latency_us=700)
    observe(metrics, tenant, latency_us=2000, upstream_latency_us=1500, gateway_latency_us=300)
    observe(metrics, tenant, status=401, deny_reason="key_missing", upstream_latency_us=None, gateway_latency_us=0)
    metrics.flush()
    assert sample("apim_gateway_request_latency_seconds_count", tenant=tenant, api="a1") == 3
    assert sample("apim_gateway_upstream_latency_seconds_count", tenant=tenant, api="a1") == 2
    assert sample("apim_gateway_added_latency_seconds_count", tenant=tenant, api="a1") == 2
    assert sample("apim_gateway_upstream_latency_seconds_sum", tenant=tenant, api="a1") == pytest.approx(0.0055)
    assert sample("apim_gateway_added_latency_seconds_sum", tenant=tenant, api="a1") == pytest.approx(0.001)
    assert sample("apim_gateway_added_latency_seconds_bucket", tenant=tenant, api="a1", le="0.00025") == 0
    assert sample("apim_gateway_added_latency_seconds_bucket", tenant=tenant, api="a1", le="0.0005") == 1
    assert sample("apim_gateway_added_latency_seconds_bucket", tenant=tenant, api="a1", le="0.001") == 2


def test_denials_and_rate_limit_rejections_by_reason(tenant):
    metrics = GatewayMetrics()
    for reason, status, n in (("rate_limited", 429, 3), ("quota_exceeded", 429, 2), ("key_invalid", 401, 1)):
        for _ in range(n):
            observe(metrics, tenant, status=status, deny_reason=reason, upstream_latency_us=None)
    observe(metrics, tenant)  # served: no denial
    metrics.flush()
    assert sample("apim_gateway_denials_total", tenant=tenant, api="a1", reason="rate_limited") == 3
    assert sample("apim_gateway_denials_total", tenant=tenant, api="a1", reason="quota_exceeded") == 2
    assert sample("apim_gateway_denials_total", tenant=tenant, api="a1", reason="key_invalid") == 1
    assert sample("apim_gateway_ratelimit_rejections_total", tenant=tenant, api="a1", reason="rate_limited") == 3
    assert sample("apim_gateway_ratelimit_rejections_total", tenant=tenant, api="a1", reason="quota_exceeded") == 2
    assert sample("apim_gateway_ratelimit_rejections_total", tenant=tenant, api="a1", reason="key_invalid") == 0
    assert sample("apim_gateway_requests_total", tenant=tenant, api="a1", method="GET", status_class="4xx") == 6


def test_deny_reasons_are_capped(tenant):
    """A plugin inventing reasons per request cannot grow the label set without bound."""
    metrics = GatewayMetrics()
    for n in range(MAX_DENY_REASONS + 10):
        observe(metrics, tenant, status=403, deny_reason=f"reason-{n}", upstream_latency_us=None)
    observe(metrics, tenant, status=403, deny_reason="x" * 500, upstream_latency_us=None)
    metrics.flush()
    reasons = {
        s.labels["reason"]
        for family in REGISTRY.collect()
        if family.name == "apim_gateway_denials"
        for s in family.samples
        if s.labels.get("tenant") == tenant and s.name.endswith("_total")
    }
    assert len(reasons) == MAX_DENY_REASONS + 1
    assert "other" in reasons
    assert sample("apim_gateway_denials_total", tenant=tenant, api="a1", reason="other") == 11


def test_counting_hands_every_field_on_and_survives_a_metrics_failure(tenant):
    metrics = GatewayMetrics()
    seen = []
    record = metrics.counting(lambda **fields: seen.append(fields))
    fields = {
        "request_id": "r1",
        "tenant_id": tenant,
        "api_id": "a1",
        "method": "GET",
        "path": "/x",
        "status": 200,
        "latency_us": 10,
        "consumer_id": "c-secret",
        "upstream_latency_us": 5,
        "gateway_latency_us": 2,
    }
    record(**fields)
    assert seen == [fields]
    record(request_id="r2", method="GET", path="/x", status=200)  # missing fields: counted as an error, still recorded
    assert len(seen) == 2
    metrics.flush()
    assert sample("apim_gateway_requests_total", tenant=tenant, api="a1", method="GET", status_class="2xx") == 1
    assert "c-secret" not in "".join(
        str(s.labels) for family in REGISTRY.collect() for s in family.samples if s.labels.get("tenant") == tenant
    )


def test_config_reloads_counted_as_deltas():
    reloads = [1]
    metrics = GatewayMetrics(reloads=lambda: reloads[0])
    before = sample("apim_gateway_config_reloads_total")
    metrics.flush()
    reloads[0] = 4
    metrics.flush()
    metrics.flush()
    assert sample("apim_gateway_config_reloads_total") == before + 4
