"""Role checks for the REST API.

Roles come from ``Membership``: a viewer reads; a developer manages only the
applications and keys of consumers whose ``user`` is them (views narrow their
querysets, so other consumers' objects are simply not found); an admin manages
the tenant; an owner also manages members; staff act across tenants. Each view
declares ``read_roles`` and ``write_roles`` (and per-action ``action_roles``);
this class only compares. A read-only token refuses every unsafe method.
"""

from __future__ import annotations

from typing import Any

from rest_framework import exceptions, permissions
from rest_framework.request import Request

from apim.models import PersonalAccessToken

from .tenancy import STAFF, resolve_tenant


class TokenAllowsMethod(permissions.BasePermission):
    """A read-only token may only read, whatever its user's role."""

    message = "This access token is read-only."
    code = "token_read_only"

    def has_permission(self, request: Request, view: Any) -> bool:
        token = request.auth
        if isinstance(token, PersonalAccessToken) and token.read_only:
            return request.method in permissions.SAFE_METHODS
        return True


class TenantRolePermission(permissions.BasePermission):
    """The caller's role in the request's tenant allows this action."""

    def has_permission(self, request: Request, view: Any) -> bool:
        if not (request.user and request.user.is_authenticated):
            return False
        context = resolve_tenant(request)
        roles = view.roles_for(request)
        if context.role == STAFF or context.role in roles:
            return True
        verb = "read" if request.method in permissions.SAFE_METHODS else "change"
        noun = getattr(view, "noun", "these objects")
        raise exceptions.PermissionDenied(
            f"Your role in tenant {context.tenant.slug!r} ({context.role}) cannot {verb} {noun}."
        )
