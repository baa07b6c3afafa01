"""Which tenant a request acts on, and the caller's role in it.

The tenant comes from the authenticated identity plus an explicit selector:
the ``X-Apim-Tenant`` header (or ``?tenant=``) holding the tenant's slug. A
user who belongs to exactly one tenant may omit it. The slug is validated
against the user's memberships; a tenant the user is not a member of is
answered exactly like one that does not exist (404), so slugs cannot be
probed. Staff (superusers) act on any tenant with the ``staff`` role. A
``tenant`` field in a request body is never read: serializers do not declare it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rest_framework.request import Request

from apim.exceptions import ApplicationError, NotFound
from apim.models import Membership, Role, Tenant

TENANT_HEADER = "X-Apim-Tenant"
TENANT_QUERY = "tenant"
STAFF = "staff"
ALL_ROLES: tuple[str, ...] = (*Role.values, STAFF)


class TenantRequired(ApplicationError):
    code = "tenant_required"
    status = 400


@dataclass(frozen=True)
class TenantContext:
    tenant: Tenant
    role: str
    user: Any

    @property
    def is_staff(self) -> bool:
        return self.role == STAFF


def is_staff(user: Any) -> bool:
    return bool(getattr(user, "is_superuser", False) and getattr(user, "is_active", False))


def requested_slug(request: Request) -> str | None:
    slug = request.headers.get(TENANT_HEADER) or request.query_params.get(TENANT_QUERY)
    return slug.strip() if slug else None


def resolve_tenant(request: Request) -> TenantContext:
    """The request's tenant and role, computed once per request."""
    cached = getattr(request, "_apim_tenant_context", None)
    if cached is not None:
        return cached
    user = request.user
    slug = requested_slug(request)
    if slug:
        tenant = Tenant.objects.filter(slug=slug).first()
        role = None
        if tenant is not None:
            role = STAFF if is_staff(user) else _role(user, tenant)
        if role is None:
            raise NotFound(f"No tenant {slug!r} that you are a member of.", code="tenant_not_found")
    elif is_staff(user):
        raise TenantRequired(
            f"Name the tenant with the {TENANT_HEADER} header or ?{TENANT_QUERY}=.",
            details={"tenant": ["Staff act across tenants, so the tenant must be named."]},
        )
    else:
        memberships = list(Membership.objects.filter(user=user).select_related("tenant")[:2])
        if len(memberships) != 1:
            why = "You belong to several tenants." if memberships else "You belong to no tenant."
            raise TenantRequired(
                f"{why} Name the tenant with the {TENANT_HEADER} header or ?{TENANT_QUERY}=.",
                details={"tenant": [why]},
            )
        tenant, role = memberships[0].tenant, memberships[0].role
    context = TenantContext(tenant=tenant, role=role, user=user)
    request._apim_tenant_context = context  # type: ignore[attr-defined]
    return context


def _role(user: Any, tenant: Tenant) -> str | None:
    if not getattr(user, "is_authenticated", False):
        return None
    return Membership.objects.filter(user=user, tenant=tenant).values_list("role", flat=True).first()
