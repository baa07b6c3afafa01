"""Tenants, their gateway hostnames and their members."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction

from apim.events import publish_config_changed
from apim.exceptions import Conflict
from apim.models import Membership, Role, Tenant, TenantHost

from .common import audit_record, entity_delete, entity_save, snapshot

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    from .common import Actor


def tenant_create(
    *,
    slug: str,
    name: str,
    actor: Actor,
    hosts: list[str] | tuple[str, ...] = (),
    is_default: bool = False,
) -> Tenant:
    with transaction.atomic():
        tenant = Tenant(slug=slug, name=name or slug, is_default=is_default)
        entity_save(instance=tenant, actor=actor)
        for host in hosts:
            tenant_host_add(tenant=tenant, host=host, actor=actor)
    return tenant


def tenant_save(*, tenant: Tenant, actor: Actor) -> Tenant:
    entity_save(instance=tenant, actor=actor)
    return tenant


def tenant_delete(*, tenant: Tenant, actor: Actor) -> None:
    """Delete a tenant and, by cascade, everything it owns.

    The audit row outlives the tenant (its tenant link becomes null; the
    snapshot keeps the slug). Gateways are told after commit so the tenant's
    routes stop at once; the version sent is past any the tenant ever had.
    """
    tenant_id, version = str(tenant.pk), tenant.config_version + 1
    entity_delete(instance=tenant, actor=actor, config=False)
    transaction.on_commit(lambda: publish_config_changed(tenant_id=tenant_id, version=version))


def tenant_host_add(*, tenant: Tenant, host: str, actor: Actor) -> TenantHost:
    entry = TenantHost(tenant=tenant, host=host)
    entry.clean()
    return entity_save(instance=entry, actor=actor)  # type: ignore[return-value]


def tenant_host_save(*, entry: TenantHost, actor: Actor) -> TenantHost:
    entity_save(instance=entry, actor=actor)
    return entry


def tenant_host_remove(*, entry: TenantHost, actor: Actor) -> None:
    entity_delete(instance=entry, actor=actor)


def membership_set(*, tenant: Tenant, user: AbstractBaseUser, role: str, actor: Actor) -> Membership:
    """Give ``user`` ``role`` in ``tenant`` (creating or changing the membership)."""
    if role not in Role.values:
        raise ValidationError({"role": f"Unknown role {role!r}; choose one of {', '.join(Role.values)}."})
    membership = Membership.objects.filter(tenant=tenant, user=user).first() or Membership(tenant=tenant, user=user)
    membership.role = role
    return membership_save(membership=membership, actor=actor)


def membership_save(*, membership: Membership, actor: Actor) -> Membership:
    """Create or change a membership; demoting the tenant's last owner is refused (409 ``last_owner``)."""
    with transaction.atomic():
        if not membership._state.adding and membership.role != Role.OWNER:
            _keep_an_owner(membership=membership, action="demote")
        entity_save(instance=membership, actor=actor, config=False)
    return membership


def membership_remove(*, membership: Membership, actor: Actor) -> None:
    """Remove a member; removing the tenant's last owner is refused (409 ``last_owner``)."""
    with transaction.atomic():
        _keep_an_owner(membership=membership, action="remove")
        entity_delete(instance=membership, actor=actor, config=False)


def _keep_an_owner(*, membership: Membership, action: str) -> None:
    """Refuse to leave a tenant without an owner: nobody could manage its members any more.

    Only owners manage members, so a tenant without one needs a superuser to
    recover. All the tenant's owner rows are locked (in one order, so two
    owners demoting each other at once serialise): the second of two
    concurrent demotions sees the first's result and is refused.
    """
    owners = list(
        Membership.objects.select_for_update()
        .filter(tenant_id=membership.tenant_id, role=Role.OWNER)
        .order_by("pk")
        .values_list("pk", flat=True)
    )
    if membership.pk in owners and len(owners) == 1:
        raise Conflict(
            f"{membership.user} is the last owner of {membership.tenant}; make another member owner "
            f"before you {action} them.",
            code="last_owner",
        )


def tenant_create_with_admin(
    *,
    slug: str,
    name: str,
    username: str,
    email: str,
    password: str,
    actor: Actor,
    hosts: list[str] | tuple[str, ...] = (),
    is_default: bool = False,
) -> tuple[Tenant, AbstractBaseUser]:
    """A tenant and its first operator: a staff user who owns the tenant.

    The user may already exist (an operator of another tenant); a new user
    gets ``password``. Nothing is written if any part is invalid.
    """
    user_model = get_user_model()
    with transaction.atomic():
        tenant = tenant_create(slug=slug, name=name, hosts=hosts, is_default=is_default, actor=actor)
        user = user_model.objects.filter(username=username).first()
        if user is None:
            user = user_model(username=username, email=email, is_staff=True)
            user.set_password(password)
            user.full_clean()
            user.save()
            audit_record(
                tenant=tenant,
                actor=actor,
                action="user.create",
                obj=user,
                before=None,
                after=snapshot(user),
            )
        elif not user.is_staff:
            user.is_staff = True
            user.save(update_fields=["is_staff"])
        membership_set(tenant=tenant, user=user, role=Role.OWNER, actor=actor)
    return tenant, user
