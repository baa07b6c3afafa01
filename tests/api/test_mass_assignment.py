"""Fields a client must not set (tenant, status, digest, key_id, role, is_staff …) have no effect."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from apim.models import API, Membership
from consumers.models import APIKey, Consumer
from tests.factories import UserFactory

SMUGGLED = {
    "digest": "0" * 64,
    "key_id": "AAAAAAAAAAAA",
    "prefix": "apim_AAAAAAAAAAAA",
    "is_staff": True,
    "is_superuser": True,
    "status": "published",
    "active": False,
    "config_version": 999,
    "created_by": None,
}


def test_api_create_ignores_tenant_and_status(world_a, world_b):
    client = world_a.client("admin")
    body = {"name": "mass", "title": "Mass", "base_path": "/mass", "tenant": str(world_b.tenant.pk), **SMUGGLED}
    response = client.post("/api/v1/apis/", body, format="json")
    assert response.status_code == 201, response.json()
    api = API.objects.get(pk=response.json()["id"])
    assert api.tenant_id == world_a.tenant.pk
    assert api.status == "draft"


def test_api_update_cannot_move_tenant_or_status(world_a, world_b):
    api = world_a.objects["api"]
    world_a.client("admin").patch(
        f"/api/v1/apis/{api.pk}/", {"tenant": str(world_b.tenant.pk), "status": "retired"}, format="json"
    )
    api.refresh_from_db()
    assert (api.tenant_id, api.status) == (world_a.tenant.pk, "draft")


def test_key_issue_ignores_digest_and_key_id(world_a):
    body = {"application": str(world_a.objects["application"].pk), "tenant": "x", **SMUGGLED}
    response = world_a.client("admin").post("/api/v1/keys/", body, format="json")
    assert response.status_code == 201
    key = APIKey.objects.get(pk=response.json()["id"])
    assert key.digest != SMUGGLED["digest"]
    assert key.key_id != SMUGGLED["key_id"]
    assert key.active


def test_consumer_status_is_not_settable(world_a):
    response = world_a.client("admin").post(
        "/api/v1/consumers/", {"name": "sneaky", "status": "suspended", "role": "owner"}, format="json"
    )
    assert Consumer.objects.get(pk=response.json()["id"]).status == "active"


def test_member_create_cannot_grant_staff(world_a):
    outsider = UserFactory()
    response = world_a.client("owner").post(
        "/api/v1/members/", {"username": outsider.username, "role": "viewer", **SMUGGLED}, format="json"
    )
    assert response.status_code == 201, response.json()
    outsider.refresh_from_db()
    assert not outsider.is_staff and not outsider.is_superuser
    assert Membership.objects.get(user=outsider).tenant_id == world_a.tenant.pk


def test_token_create_cannot_escalate(world_a):
    user = world_a.users["viewer"]
    response = world_a.client("viewer").post(
        "/api/v1/tokens/", {"name": "t", "role": "owner", "user": 1, **SMUGGLED}, format="json"
    )
    assert response.status_code == 201, response.json()
    user.refresh_from_db()
    assert not user.is_staff
    assert Membership.objects.get(user=user).role == "viewer"
    assert get_user_model().objects.filter(is_superuser=True).count() == 0
