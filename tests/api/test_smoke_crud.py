"""Each resource end to end through the real stack: token auth, tenant header, service, envelope."""

from __future__ import annotations

from apim.models import API, AuditEvent


def test_api_lifecycle_through_rest(world_a):
    client = world_a.client("admin")
    upstream = world_a.objects["upstream"]
    created = client.post(
        "/api/v1/apis/",
        {"name": "orders", "title": "Orders", "base_path": "/orders", "upstream": str(upstream.pk)},
        format="json",
    )
    assert created.status_code == 201, created.json()
    body = created.json()
    assert body["status"] == "draft"
    assert body["allowed_transitions"] == ["published"]
    for action, status in (("publish", "published"), ("deprecate", "deprecated"), ("retire", "retired")):
        moved = client.post(f"/api/v1/apis/{body['id']}/{action}/")
        assert moved.status_code == 200, moved.json()
        assert moved.json()["status"] == status
    again = client.post(f"/api/v1/apis/{body['id']}/publish/")
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "illegal_transition"
    assert AuditEvent.objects.filter(tenant=world_a.tenant, action="api.retired").count() == 1


def test_bad_field_is_named_and_nothing_changes(world_a):
    client = world_a.client("admin")
    before = API.objects.count()
    response = client.post("/api/v1/apis/", {"name": "bad name!", "title": "x", "base_path": "nope"}, format="json")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert "name" in error["details"] and "base_path" in error["details"]
    assert API.objects.count() == before


def test_model_rule_errors_come_back_per_field(world_a):
    """A rule checked in the service (full_clean) surfaces as a 400 with the field, not a 500."""
    client = world_a.client("admin")
    api = world_a.objects["api"]
    response = client.post(
        "/api/v1/apis/", {"name": "clash", "title": "Clash", "base_path": api.base_path}, format="json"
    )
    assert response.status_code == 400, response.json()
    assert "base_path" in response.json()["error"]["details"]


def test_policy_config_is_checked_by_its_schema(world_a):
    client = world_a.client("admin")
    api = world_a.objects["api"]
    response = client.post(
        "/api/v1/policies/",
        {"policy": "ip-restriction", "api": str(api.pk), "config": {"allow": ["10.0.0.0/33"]}},
        format="json",
    )
    assert response.status_code == 400, response.json()
    details = response.json()["error"]["details"]
    assert "config" in details
    assert "allow" in " ".join(details["config"])


def test_target_reports_live_health(world_a):
    from django.utils import timezone

    from gateway.models import TargetHealthReport

    target = world_a.objects["target"]
    TargetHealthReport.objects.create(
        tenant=world_a.tenant,
        upstream=target.upstream,
        gateway="gw:1",
        target_url=target.url,
        state="healthy",
        circuit="closed",
        reported_at=timezone.now(),
    )
    client = world_a.client("viewer")
    detail = client.get(f"/api/v1/targets/{target.pk}/").json()
    assert [h["state"] for h in detail["health"]] == ["healthy"]
    listed = client.get("/api/v1/targets/").json()["results"]
    assert listed[0]["health"][0]["gateway"] == "gw:1"
    health = client.get(f"/api/v1/upstreams/{target.upstream_id}/health/").json()
    assert health[0]["target_url"] == target.url


def test_subscription_approval_flow(world_a):
    client = world_a.client("admin")
    sub = world_a.objects["subscription"]
    assert client.post(f"/api/v1/subscriptions/{sub.pk}/approve/").json()["status"] == "active"
    assert client.post(f"/api/v1/subscriptions/{sub.pk}/suspend/").json()["status"] == "suspended"
    assert client.post(f"/api/v1/subscriptions/{sub.pk}/resume/").json()["status"] == "active"
    assert client.post(f"/api/v1/subscriptions/{sub.pk}/cancel/").json()["status"] == "cancelled"
    refused = client.post(f"/api/v1/subscriptions/{sub.pk}/approve/")
    assert refused.status_code == 409


def test_pagination_filtering_and_ordering(world_a):
    client = world_a.client("admin")
    for n in range(3):
        client.post("/api/v1/plans/", {"name": f"zz{n}"}, format="json")
    page = client.get("/api/v1/plans/?limit=2&ordering=-name").json()
    assert page["count"] == 4
    assert len(page["results"]) == 2
    assert page["results"][0]["name"] == "zz2"
    capped = client.get("/api/v1/plans/?limit=100000")
    assert capped.status_code == 200
    filtered = client.get("/api/v1/plans/?requires_approval=true").json()
    assert [p["name"] for p in filtered["results"]] == [world_a.objects["plan"].name]


def test_tenant_selector_is_required_when_ambiguous(world_a, world_b):
    user = world_a.users["admin"]
    from tests.factories import membership

    membership(user=user, tenant=world_b.tenant, role="viewer")
    from tests.api.conftest import bearer

    response = bearer(world_a.tokens["admin"]).get("/api/v1/apis/")
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "tenant_required"
    via_query = bearer(world_a.tokens["admin"]).get(f"/api/v1/apis/?tenant={world_b.tenant.slug}")
    assert via_query.status_code == 200
    assert {a["id"] for a in via_query.json()["results"]} == {str(world_b.objects["api"].pk)}
