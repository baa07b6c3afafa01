"""The web process's Prometheus endpoint (django-prometheus at ``/metrics``) answers and counts requests."""

from __future__ import annotations

import pytest
from prometheus_client.parser import text_string_to_metric_families

pytestmark = pytest.mark.django_db


def _samples(text: str) -> dict[str, list]:
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


def by_view(client, view: str) -> float:
    samples = _samples(client.get("/metrics").content.decode())
    return sum(
        s.value
        for s in samples.get("django_http_responses_total_by_status_view_method_total", [])
        if s.labels.get("view") == view and s.labels.get("status") == "200"
    )


def test_web_metrics_endpoint_counts_requests(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/plain")
    before = by_view(client, "health")
    for _ in range(3):
        assert client.get("/health").status_code == 200
    assert by_view(client, "health") == before + 3
