"""Every error class answers with the gateway's envelope."""

from __future__ import annotations

import uuid

from django.test import override_settings
from rest_framework.test import APIClient


def _is_envelope(response, status, code):
    assert response.status_code == status, response.content
    body = response.json()
    assert body["success"] is False
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]


def test_400_401_403_404_405_409_415(world_a):
    admin = world_a.client("admin")
    _is_envelope(admin.post("/api/v1/plans/", {}, format="json"), 400, "validation_error")
    _is_envelope(APIClient().get("/api/v1/plans/"), 401, "not_authenticated")
    _is_envelope(
        world_a.client("viewer").post("/api/v1/plans/", {"name": "x"}, format="json"), 403, "permission_denied"
    )
    _is_envelope(admin.get("/api/v1/plans/00000000-0000-0000-0000-000000000000/"), 404, "not_found")
    _is_envelope(admin.get("/api/v1/plans/not-a-uuid/"), 404, "not_found")
    _is_envelope(
        admin.put(f"/api/v1/plans/{world_a.objects['plan'].pk}/", {}, format="json"), 405, "method_not_allowed"
    )
    _is_envelope(admin.delete(f"/api/v1/plans/{world_a.objects['plan'].pk}/"), 409, "in_use")
    _is_envelope(admin.post("/api/v1/plans/", "<xml/>", content_type="application/xml"), 415, "unsupported_media_type")
    _is_envelope(admin.post("/api/v1/plans/", "{not json", content_type="application/json"), 400, "parse_error")


def test_field_errors_are_in_details(world_a):
    response = world_a.client("admin").post("/api/v1/plans/", {"name": "x", "rate_limit_per_second": -1}, format="json")
    _is_envelope(response, 400, "validation_error")
    assert "rate_limit_per_second" in response.json()["error"]["details"]
    assert response.json()["error"]["message"].startswith("rate_limit_per_second")


def test_service_rule_error_maps_to_its_status(world_a):
    api = world_a.objects["api"]
    _is_envelope(world_a.client("admin").post(f"/api/v1/apis/{api.pk}/retire/"), 409, "illegal_transition")


def test_429_with_retry_after(world_a):
    client = world_a.client("viewer")
    # A prefix of its own: user ids repeat across parallel test databases sharing one Redis.
    with override_settings(
        APIM_API_THROTTLE_RATES={"user": "2/min", "anon": "2/min"},
        APIM_API_THROTTLE_KEY_PREFIX=f"t-{uuid.uuid4().hex}:",
    ):
        statuses = [client.get("/api/v1/apis/").status_code for _ in range(3)]
        assert statuses[:2] == [200, 200]
        response = client.get("/api/v1/apis/")
    _is_envelope(response, 429, "throttled")
    assert int(response["Retry-After"]) > 0
    assert response.json()["error"]["details"]["retry_after_seconds"] > 0
