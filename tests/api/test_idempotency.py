"""Idempotency-Key on creates: replay, conflict, scope, and no plaintext replayed."""

from __future__ import annotations

from apim.models import IdempotencyRecord
from consumers.models import APIKey, Plan


def test_same_key_same_body_replays(world_a):
    client = world_a.client("admin")
    first = client.post("/api/v1/plans/", {"name": "gold"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    second = client.post("/api/v1/plans/", {"name": "gold"}, format="json", HTTP_IDEMPOTENCY_KEY="k-1")
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert second["Idempotent-Replayed"] == "true"
    assert Plan.objects.filter(tenant=world_a.tenant, name="gold").count() == 1


def test_same_key_different_body_is_409(world_a):
    client = world_a.client("admin")
    client.post("/api/v1/plans/", {"name": "gold"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    response = client.post("/api/v1/plans/", {"name": "silver"}, format="json", HTTP_IDEMPOTENCY_KEY="k-2")
    assert response.status_code == 409
    assert response.json()["error"]["code"] == "idempotency_key_reused"
    assert not Plan.objects.filter(name="silver").exists()


def test_failures_are_not_stored(world_a):
    client = world_a.client("admin")
    bad = client.post("/api/v1/plans/", {"name": "bad name"}, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert bad.status_code == 400
    good = client.post("/api/v1/plans/", {"name": "good"}, format="json", HTTP_IDEMPOTENCY_KEY="k-3")
    assert good.status_code == 201


def test_keys_are_scoped_per_user(world_a):
    a = world_a.client("admin").post("/api/v1/plans/", {"name": "p1"}, format="json", HTTP_IDEMPOTENCY_KEY="same")
    b = world_a.client("owner").post("/api/v1/plans/", {"name": "p2"}, format="json", HTTP_IDEMPOTENCY_KEY="same")
    assert a.status_code == b.status_code == 201
    assert a.json()["id"] != b.json()["id"]


def test_key_issue_replay_never_reveals_the_plaintext_again(world_a):
    client = world_a.client("admin")
    body = {"application": str(world_a.objects["application"].pk), "name": "retry"}
    first = client.post("/api/v1/keys/", body, format="json", HTTP_IDEMPOTENCY_KEY="key-issue")
    replay = client.post("/api/v1/keys/", body, format="json", HTTP_IDEMPOTENCY_KEY="key-issue")
    plaintext = first.json()["key"]
    assert plaintext
    assert replay.json()["key"] is None
    assert replay.json()["id"] == first.json()["id"]
    assert APIKey.objects.filter(name="retry").count() == 1
    assert plaintext not in str(list(IdempotencyRecord.objects.values_list("response_body", flat=True)))


def test_token_issue_replay_is_redacted(world_a):
    client = world_a.client("admin")
    first = client.post("/api/v1/tokens/", {"name": "ci"}, format="json", HTTP_IDEMPOTENCY_KEY="tok")
    replay = client.post("/api/v1/tokens/", {"name": "ci"}, format="json", HTTP_IDEMPOTENCY_KEY="tok")
    assert first.json()["token"] and replay.json()["token"] is None


def test_invalid_key_is_400(world_a):
    response = world_a.client("admin").post(
        "/api/v1/plans/", {"name": "x"}, format="json", HTTP_IDEMPOTENCY_KEY="x" * 300
    )
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_idempotency_key"
