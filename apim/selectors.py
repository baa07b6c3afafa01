"""Read-only queries of the core domain. Every one is scoped by tenant."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.db.models import Q, QuerySet

from apim import tokens
from apim.models import (
    API,
    OPERATOR_ROLES,
    READER_ROLES,
    ApiStatus,
    AuditEvent,
    Membership,
    PersonalAccessToken,
    Route,
    Target,
    Tenant,
    Upstream,
)

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


def access_token_get_by_plaintext(*, plaintext: str) -> PersonalAccessToken | None:
    """The stored token ``plaintext`` names, if its digest matches (constant-time), whatever its state.

    Callers decide what an inactive or expired token means; a malformed or
    unknown token is simply None.
    """
    parsed = tokens.parse(plaintext)
    if parsed is None:
        return None
    token = PersonalAccessToken.objects.select_related("user").filter(token_id=parsed.token_id).first()
    if token is None or not tokens.matches(plaintext, stored_digest=token.digest, pepper_id=token.pepper_id):
        return None
    return token


def access_token_list_for_user(*, user: AbstractBaseUser) -> QuerySet[PersonalAccessToken]:
    return PersonalAccessToken.objects.filter(user=user).order_by("-created_at")


def access_token_list_for_operator(*, user: AbstractBaseUser | AnonymousUser) -> QuerySet[PersonalAccessToken]:
    """Tokens an operator may see (and revoke) in the console.

    A superuser sees all. Any other user sees their own tokens and those of
    the members of tenants they operate (owner or admin): a token acts with
    its user's memberships, so the operators of those tenants must be able to
    find and stop it. Nobody else's tokens, and never across tenants.
    """
    if getattr(user, "is_superuser", False):
        return PersonalAccessToken.objects.all()
    if not getattr(user, "is_authenticated", False) or not getattr(user, "is_active", False):
        return PersonalAccessToken.objects.none()
    operated = tenant_ids_for_user(user, write=True)
    members = Membership.objects.filter(tenant_id__in=operated).values("user_id")
    return PersonalAccessToken.objects.filter(Q(user=user) | Q(user_id__in=members))


def membership_role(*, user: AbstractBaseUser | AnonymousUser, tenant: Tenant) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Membership.objects.filter(user=user, tenant=tenant).values_list("role", flat=True).first()


def membership_list(*, tenant: Tenant) -> QuerySet[Membership]:
    return Membership.objects.filter(tenant=tenant).select_related("user", "tenant").order_by("user__username")


def api_list(*, tenant: Tenant) -> QuerySet[API]:
    return API.objects.filter(tenant=tenant).select_related("tenant", "upstream").order_by("name", "version")


def route_list(*, tenant: Tenant) -> QuerySet[Route]:
    return Route.objects.filter(tenant=tenant).select_related("api").order_by("api__name", "path", "id")


def upstream_list(*, tenant: Tenant) -> QuerySet[Upstream]:
    return Upstream.objects.filter(tenant=tenant).order_by("name")


def target_list(*, tenant: Tenant) -> QuerySet[Target]:
    return Target.objects.filter(tenant=tenant).select_related("upstream").order_by("upstream__name", "url")


def audit_event_list(*, tenant: Tenant) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(tenant=tenant).select_related("actor").order_by("-created_at", "-id")
