"""apim.services.tenants: a tenant always keeps an owner (demote / remove the last one: 409 last_owner)."""

from __future__ import annotations

import pytest

from apim.exceptions import Conflict
from apim.models import AuditEvent, Membership, Role
from apim.services.tenants import membership_remove, membership_save, membership_set
from tests.factories import UserFactory, membership


@pytest.fixture
def owner(tenant):
    user = UserFactory()
    return membership(user=user, tenant=tenant, role=Role.OWNER)


def test_the_last_owner_cannot_be_demoted(tenant, owner):
    for role in (Role.ADMIN, Role.DEVELOPER, Role.VIEWER):
        with pytest.raises(Conflict) as caught:
            membership_set(tenant=tenant, user=owner.user, role=role, actor=None)
        assert caught.value.code == "last_owner" and caught.value.status == 409
        assert "last owner" in caught.value.message
    owner.refresh_from_db()
    assert owner.role == Role.OWNER
    assert not AuditEvent.objects.filter(action="membership.update").exists()


def test_the_last_owner_cannot_be_removed(tenant, owner):
    with pytest.raises(Conflict):
        membership_remove(membership=owner, actor=None)
    assert Membership.objects.filter(pk=owner.pk).exists()
    assert not AuditEvent.objects.filter(action="membership.delete").exists()


def test_an_owner_can_go_once_another_owner_exists(tenant, owner):
    second = membership(user=UserFactory(), tenant=tenant, role=Role.ADMIN)
    with pytest.raises(Conflict):
        membership_remove(membership=owner, actor=None)
    membership_set(tenant=tenant, user=second.user, role=Role.OWNER, actor=None)  # promote first
    membership_set(tenant=tenant, user=owner.user, role=Role.VIEWER, actor=None)
    owner.refresh_from_db()
    assert owner.role == Role.VIEWER
    with pytest.raises(Conflict):  # now ``second`` is the last one
        membership_remove(membership=Membership.objects.get(pk=second.pk), actor=None)
    membership_remove(membership=owner, actor=None)
    assert list(Membership.objects.filter(tenant=tenant).values_list("role", flat=True)) == [Role.OWNER]


def test_other_members_come_and_go_freely(tenant, owner):
    viewer = membership(user=UserFactory(), tenant=tenant, role=Role.VIEWER)
    viewer.role = Role.ADMIN
    membership_save(membership=viewer, actor=None)
    membership_remove(membership=viewer, actor=None)
    assert not Membership.objects.filter(pk=viewer.pk).exists()


def test_a_stale_instance_cannot_sneak_past_the_check(tenant, owner):
    """The check reads the stored roles, not the caller's copy."""
    second = membership(user=UserFactory(), tenant=tenant, role=Role.OWNER)
    stale = Membership.objects.get(pk=second.pk)
    membership_set(tenant=tenant, user=owner.user, role=Role.VIEWER, actor=None)
    stale.role = Role.ADMIN
    with pytest.raises(Conflict):
        membership_save(membership=stale, actor=None)


def test_owners_of_another_tenant_do_not_count(tenant, other_tenant, owner):
    membership(user=owner.user, tenant=other_tenant, role=Role.OWNER)
    membership(user=UserFactory(), tenant=other_tenant, role=Role.OWNER)
    with pytest.raises(Conflict):
        membership_remove(membership=owner, actor=None)
