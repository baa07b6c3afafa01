"""API keys over REST: the plaintext once, never a digest, rotate and revoke."""

from __future__ import annotations

from consumers import keys
from consumers.models import APIKey
from consumers.selectors import api_key_verify

FORBIDDEN = ("digest", "pepper_id", "key_id")


def _no_secrets(payload, key: APIKey):
    text = str(payload)
    assert key.digest not in text
    for name in FORBIDDEN:
        assert f"'{name}'" not in text


def test_issue_shows_plaintext_once(world_a):
    client = world_a.client("admin")
    app = world_a.objects["application"]
    issued = client.post("/api/v1/keys/", {"application": str(app.pk), "name": "ci"}, format="json")
    assert issued.status_code == 201, issued.json()
    body = issued.json()
    plaintext = body["key"]
    assert keys.parse(plaintext) is not None
    key = APIKey.objects.get(pk=body["id"])
    assert api_key_verify(tenant=world_a.tenant, plaintext=plaintext).ok
    _no_secrets(body, key)
    detail = client.get(f"/api/v1/keys/{key.pk}/").json()
    listing = client.get("/api/v1/keys/").json()
    for payload in (detail, listing):
        assert plaintext not in str(payload)
        _no_secrets(payload, key)
    assert "key" not in detail
    assert detail["prefix"] == key.prefix


def test_rotate_returns_successor_plaintext_once_and_revoke_stops(world_a):
    client = world_a.client("admin")
    key = world_a.objects["apikey"]
    rotated = client.post(f"/api/v1/keys/{key.pk}/rotate/", {"grace_seconds": 0}, format="json")
    assert rotated.status_code == 200, rotated.json()
    successor = rotated.json()
    assert successor["rotated_from"] == str(key.pk)
    assert api_key_verify(tenant=world_a.tenant, plaintext=successor["key"]).ok
    again = client.post(f"/api/v1/keys/{key.pk}/rotate/", {}, format="json")
    assert again.status_code == 409
    revoked = client.post(f"/api/v1/keys/{successor['id']}/revoke/")
    assert revoked.json()["state"] == "revoked"
    assert "key" not in revoked.json()
    assert not api_key_verify(tenant=world_a.tenant, plaintext=successor["key"]).ok


def test_bad_grace_is_a_field_error(world_a):
    response = world_a.client("admin").post(
        f"/api/v1/keys/{world_a.objects['apikey'].pk}/rotate/", {"grace_seconds": -1}, format="json"
    )
    assert response.status_code == 400
    assert "grace_seconds" in response.json()["error"]["details"]


def test_expiry_in_the_past_is_refused(world_a):
    response = world_a.client("admin").post(
        "/api/v1/keys/",
        {"application": str(world_a.objects["application"].pk), "expires_at": "2001-01-01T00:00:00Z"},
        format="json",
    )
    assert response.status_code == 400
    assert "expires_at" in response.json()["error"]["details"]
