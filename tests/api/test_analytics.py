"""GET /api/v1/analytics/, /api/v1/analytics/csv/ and /api/v1/usage-records/: roles, isolation, params, CSV."""

from __future__ import annotations

import csv
import io
import uuid
from datetime import UTC, datetime, timedelta

import pytest

from analytics.models import UsageRecord
from tests.analytics.rollup_rows import recent_hour, rollup
from tests.api.conftest import bearer

pytestmark = pytest.mark.django_db


def _csv(response):
    return list(csv.DictReader(io.StringIO(response.content.decode())))


@pytest.mark.parametrize(("role", "status"), [("viewer", 200), ("admin", 200), ("owner", 200), ("developer", 403)])
def test_who_may_read(world_a, role, status):
    client = world_a.client(role)
    for url in ("/api/v1/analytics/", "/api/v1/analytics/csv/", "/api/v1/usage-records/"):
        response = client.get(url)
        assert response.status_code == status, (url, response.content)
        if status == 403:
            assert response.json()["error"]["code"] == "permission_denied"


def test_staff_names_the_tenant(world_a, staff):
    _, token = staff
    assert bearer(token).get("/api/v1/analytics/").json()["error"]["code"] == "tenant_required"
    response = bearer(token, world_a.tenant).get("/api/v1/analytics/")
    assert response.status_code == 200
    assert response.json()["totals"]["requests"] == world_a.usage["requests"]


def test_report_shape_and_numbers(world_a):
    body = world_a.client("viewer").get("/api/v1/analytics/").json()
    assert body["query"]["granularity"] == "hour" and body["query"]["tenant"] == world_a.tenant.slug
    assert body["query"]["points"] == len(body["series"]) == 25
    assert body["totals"]["requests"] == 7 and body["totals"]["errors"] == 1
    assert body["totals"]["p50"] == pytest.approx(8.75)  # seven samples in (7.5, 10]: rank 3.5 of 7
    assert [row["name"] for row in body["top_apis"]] == [f"{world_a.objects['api'].name} v1"]
    assert [row["name"] for row in body["top_consumers"]] == [world_a.objects["consumer"].name]
    assert [(row["key"], row["requests"]) for row in body["deny_reasons"]] == [("rate_limited", 7)]


def test_filters_and_granularity(world_a, world_b):
    client = world_a.client("viewer")
    t = recent_hour(2)
    rollup("minute", bucket_start=t, tenant=world_a.tenant, requests=3, api_id=world_a.objects["api"].pk)
    rollup("minute", bucket_start=t + timedelta(minutes=1), tenant=world_a.tenant, requests=2)
    params = {"start": t.isoformat(), "end": (t + timedelta(minutes=5)).isoformat()}
    body = client.get("/api/v1/analytics/", params).json()
    assert body["query"]["granularity"] == "minute"
    assert [p["requests"] for p in body["series"]] == [3, 2, 0, 0, 0]
    only_api = client.get("/api/v1/analytics/", {**params, "api": str(world_a.objects["api"].pk)}).json()
    assert only_api["totals"]["requests"] == 3
    # Tenant B's API id inside tenant A: nothing, exactly like an id that does not exist.
    foreign = client.get("/api/v1/analytics/", {**params, "api": str(world_b.objects["api"].pk)}).json()
    missing = client.get("/api/v1/analytics/", {**params, "api": str(uuid.uuid4())}).json()
    assert foreign["totals"] == missing["totals"]
    assert foreign["totals"]["requests"] == 0
    by_hour = client.get("/api/v1/analytics/", {**params, "granularity": "hour"}).json()
    assert by_hour["query"]["points"] == 1


def test_tenant_b_sees_none_of_a(world_a, world_b):
    rollup("hour", bucket_start=recent_hour(2), tenant=world_a.tenant, requests=1000)
    body = world_b.client("owner").get("/api/v1/analytics/").json()
    assert body["totals"]["requests"] == world_b.usage["requests"]
    rows = _csv(world_b.client("owner").get("/api/v1/analytics/csv/"))
    assert [int(r["requests"]) for r in rows if r["section"] == "totals"] == [world_b.usage["requests"]]
    assert "1000" not in {r["requests"] for r in rows}
    naming_a = bearer(world_b.tokens["owner"], world_a.tenant).get("/api/v1/analytics/")
    assert naming_a.status_code == 404 and naming_a.json()["error"]["code"] == "tenant_not_found"


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "yesterday"}, "start"),
        ({"end": "2026-13-01T00:00:00Z"}, "end"),
        ({"granularity": "week"}, "granularity"),
        ({"api": "not-a-uuid"}, "api"),
        ({"consumer": "1"}, "consumer"),
        ({"top": "0"}, "top"),
        ({"top": "51"}, "top"),
        ({"start": "2026-01-02T00:00:00Z", "end": "2026-01-01T00:00:00Z"}, "start"),
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-01-05T00:00:00Z", "granularity": "minute"}, "granularity"),
    ],
)
@pytest.mark.parametrize("url", ["/api/v1/analytics/", "/api/v1/analytics/csv/"])
def test_bad_params_get_the_envelope(world_a, url, params, field):
    response = world_a.client("viewer").get(url, params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] in ("validation_error", "invalid_query")
    assert field in body["error"]["details"]


def test_csv_export(world_a):
    consumer = world_a.objects["consumer"]
    consumer.name = '=HYPERLINK("http://evil.test")'
    consumer.save()
    response = world_a.client("viewer").get("/api/v1/analytics/csv/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment;" in response["Content-Disposition"] and world_a.tenant.slug in response["Content-Disposition"]
    rows = _csv(response)
    assert [r["section"] for r in rows].count("series") == 25
    consumers = [r for r in rows if r["section"] == "top_consumer"]
    assert consumers[0]["name"] == '\'=HYPERLINK("http://evil.test")'
    assert consumers[0]["requests"] == "7"
    assert not any(cell.startswith(("=", "+", "-", "@")) for row in rows for cell in row.values() if cell)


def test_csv_accepts_text_csv(world_a):
    response = world_a.client("viewer").get("/api/v1/analytics/csv/", HTTP_ACCEPT="text/csv")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")


def _record(world, minutes_ago, **fields):
    return UsageRecord.objects.create(
        record_id=uuid.uuid4().hex,
        timestamp=datetime.now(UTC) - timedelta(minutes=minutes_ago),
        tenant_id=world.tenant.pk,
        key_prefix="apim_abcdefghijkl",
        **fields,
    )


def test_usage_records_page_filter_and_never_show_a_key(world_a, world_b):
    client = world_a.client("viewer")
    ok = [_record(world_a, minutes, status=200, api_id=world_a.objects["api"].pk) for minutes in (1, 2, 3)]
    first = client.get("/api/v1/usage-records/", {"limit": 2})
    assert first.status_code == 200
    page = first.json()
    assert [row["id"] for row in page["results"]] == [ok[0].record_id, ok[1].record_id]
    assert "key" not in page["results"][0] and page["results"][0]["key_prefix"] == "apim_abcdefghijkl"
    second = client.get(page["next"]).json()
    assert [row["id"] for row in second["results"]] == [ok[2].record_id, world_a.usage["record"].record_id]
    assert second["next"] is None
    denied = client.get("/api/v1/usage-records/", {"deny_reason": "rate_limited"}).json()["results"]
    assert [row["id"] for row in denied] == [world_a.usage["record"].record_id]
    assert len(client.get("/api/v1/usage-records/", {"status": 200}).json()["results"]) == 3
    by_api = client.get("/api/v1/usage-records/", {"api": str(world_b.objects["api"].pk)}).json()
    assert by_api["results"] == []


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"start": "2026-01-01T00:00:00Z", "end": "2026-03-01T00:00:00Z"}, "start"),
        ({"status": "abc"}, "status"),
        ({"api": "x"}, "api"),
        ({"end": "soon"}, "end"),
    ],
)
def test_usage_records_bad_params(world_a, params, field):
    response = world_a.client("viewer").get("/api/v1/usage-records/", params)
    assert response.status_code == 400, response.content
    assert field in response.json()["error"]["details"]


def test_writes_are_not_allowed(world_a):
    client = world_a.client("owner")
    for url in ("/api/v1/analytics/", "/api/v1/usage-records/"):
        assert client.post(url, {}, format="json").status_code == 405
        assert client.delete(url).status_code == 405
