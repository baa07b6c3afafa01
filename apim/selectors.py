"""Read-only queries of the core domain. Every one is scoped by tenant."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import QuerySet

from apim.models import API, OPERATOR_ROLES, READER_ROLES, ApiStatus, Membership, Tenant

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser, AnonymousUser


def api_base_path_conflict(*, api: API) -> API | None:
    """Another live API of the tenant with the same base path on an overlapping host.

    Hosts overlap when either list is empty (every host of the tenant) or they
    share one. Retired APIs never route, so they do not block a base path.
    """
    candidates = (
        API.objects.filter(tenant_id=api.tenant_id, base_path=api.base_path)
        .exclude(status=ApiStatus.RETIRED)
        .exclude(pk=api.pk)
        .order_by("name", "version")
    )
    mine = set(api.hosts or [])
    for other in candidates:
        theirs = set(other.hosts or [])
        if not mine or not theirs or mine & theirs:
            return other
    return None


def tenant_ids_for_user(
    user: AbstractBaseUser | AnonymousUser, *, write: bool = False, roles: tuple[str, ...] | None = None
) -> set:
    """Tenants whose objects ``user`` may see (or, with ``write``, change) in the console.

    ``roles`` names the roles explicitly instead (e.g. only owners manage members).
    """
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return set()
    if roles is None:
        roles = OPERATOR_ROLES if write else READER_ROLES
    return set(Membership.objects.filter(user=user, role__in=roles).values_list("tenant_id", flat=True))


def tenant_list_for_user(*, user: AbstractBaseUser | AnonymousUser, write: bool = False) -> QuerySet[Tenant]:
    if getattr(user, "is_superuser", False):
        return Tenant.objects.all()
    return Tenant.objects.filter(pk__in=tenant_ids_for_user(user, write=write))
