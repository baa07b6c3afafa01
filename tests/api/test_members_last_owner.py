"""/api/v1/members/: demoting or removing a tenant's last owner is a 409 envelope and changes nothing."""

from __future__ import annotations

from apim.models import Membership, Role


def _owner_membership(world):
    return Membership.objects.get(tenant=world.tenant, user=world.users["owner"])


def test_demoting_the_last_owner_is_a_409(world_a):
    owner = _owner_membership(world_a)
    response = world_a.client("owner").patch(f"/api/v1/members/{owner.pk}/", {"role": "admin"}, format="json")
    assert response.status_code == 409, response.content
    body = response.json()
    assert body["success"] is False
    assert body["error"]["code"] == "last_owner"
    assert "last owner" in body["error"]["message"]
    owner.refresh_from_db()
    assert owner.role == Role.OWNER


def test_removing_the_last_owner_is_a_409(world_a):
    owner = _owner_membership(world_a)
    response = world_a.client("owner").delete(f"/api/v1/members/{owner.pk}/")
    assert response.status_code == 409, response.content
    assert response.json()["error"]["code"] == "last_owner"
    assert Membership.objects.filter(pk=owner.pk).exists()


def test_with_a_second_owner_the_first_may_step_down(world_a):
    owner = _owner_membership(world_a)
    admin = Membership.objects.get(tenant=world_a.tenant, user=world_a.users["admin"])
    client = world_a.client("owner")
    assert client.patch(f"/api/v1/members/{admin.pk}/", {"role": "owner"}, format="json").status_code == 200
    response = client.patch(f"/api/v1/members/{owner.pk}/", {"role": "viewer"}, format="json")
    assert response.status_code == 200, response.content
    owner.refresh_from_db()
    assert owner.role == Role.VIEWER
