"""Core resources: tenants (staff), members, APIs and their lifecycle, routes, upstreams, targets, audit, tokens.

Each view validates input, calls one service or selector, and serializes. The
tenant is always ``resolve_tenant``'s, never a body field.
"""

from __future__ import annotations

from typing import Any

from django.db.models import QuerySet
from drf_spectacular.utils import extend_schema
from rest_framework import permissions
from rest_framework.decorators import action
from rest_framework.parsers import MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response

from apim import selectors
from apim.models import API, READER_ROLES, Membership, PersonalAccessToken, Role, Route, Target, Tenant, Upstream
from apim.services import catalog, tenants, tokens
from gateway.selectors import target_health_for_targets, target_health_for_upstream

from . import filters as api_filters
from . import openapi_import
from . import serializers as s
from .permissions import TokenAllowsMethod
from .schema import TENANT_PARAMETERS
from .tenancy import is_staff
from .viewsets import (
    ERRORS,
    WRITE_ERRORS,
    BaseViewSet,
    CreateMixin,
    DestroyMixin,
    ListMixin,
    RetrieveMixin,
    TenantViewSet,
    UpdateMixin,
    action_schema,
    apply_fields,
    documented,
)


class StaffWrites(permissions.BasePermission):
    """Anyone signed in lists the tenants they belong to; only staff create, change or delete tenants."""

    message = "Only staff manage tenants."

    def has_permission(self, request: Request, view: Any) -> bool:
        return request.method in permissions.SAFE_METHODS or is_staff(request.user)


@documented(["tenants"], tenant_scoped=False)
class TenantApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, BaseViewSet):
    permission_classes = [permissions.IsAuthenticated, TokenAllowsMethod, StaffWrites]
    noun = "tenants"
    output_serializer_class = s.TenantOutputSerializer
    create_serializer_class = s.TenantCreateInputSerializer
    update_serializer_class = s.TenantUpdateInputSerializer
    ordering_fields = ["slug", "name", "created_at"]
    filterset_fields = ["is_default"]

    def get_queryset(self) -> QuerySet[Tenant]:
        if getattr(self, "swagger_fake_view", False):
            return Tenant.objects.none()
        return selectors.tenant_list_for_user(user=self.request.user).prefetch_related("hosts")

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.idempotent_create(tenant=None)

    def perform_create(self, data: dict[str, Any]) -> Tenant:
        return tenants.tenant_create(actor=self.request.user, **data)

    def perform_update(self, instance: Tenant, data: dict[str, Any]) -> Tenant:
        return tenants.tenant_save(tenant=apply_fields(instance, data), actor=self.request.user)

    def perform_destroy(self, instance: Tenant) -> None:
        tenants.tenant_delete(tenant=instance, actor=self.request.user)


@documented(["members"])
class MembershipApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    """Owners manage members; owners, admins and viewers see them."""

    noun = "members"
    read_roles = READER_ROLES
    write_roles = (Role.OWNER,)
    output_serializer_class = s.MembershipOutputSerializer
    create_serializer_class = s.MembershipCreateInputSerializer
    update_serializer_class = s.MembershipUpdateInputSerializer
    filterset_fields = ["role"]
    ordering_fields = ["created_at", "role", "user__username"]

    def select(self, *, tenant: Tenant) -> QuerySet[Membership]:
        return selectors.membership_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> Membership:
        return tenants.membership_set(tenant=self.tenant, user=data["user"], role=data["role"], actor=self.actor)

    def perform_update(self, instance: Membership, data: dict[str, Any]) -> Membership:
        # PATCH is partial: an empty body changes nothing (it used to be a KeyError, a 500).
        role = data.get("role", instance.role)
        return tenants.membership_set(tenant=self.tenant, user=instance.user, role=role, actor=self.actor)

    def perform_destroy(self, instance: Membership) -> None:
        tenants.membership_remove(membership=instance, actor=self.actor)


@documented(["apis"])
class ApiApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    noun = "APIs"
    output_serializer_class = s.ApiOutputSerializer
    create_serializer_class = s.ApiInputSerializer
    update_serializer_class = s.ApiInputSerializer
    filterset_class = api_filters.ApiFilter
    ordering_fields = ["name", "version", "status", "base_path", "created_at", "updated_at"]

    def select(self, *, tenant: Tenant) -> QuerySet[API]:
        return selectors.api_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> API:
        return catalog.api_create(tenant=self.tenant, actor=self.actor, **data)

    def perform_update(self, instance: API, data: dict[str, Any]) -> API:
        return catalog.api_save(api=apply_fields(instance, data), actor=self.actor)

    def perform_destroy(self, instance: API) -> None:
        catalog.api_delete(api=instance, actor=self.actor)

    def _transition(self, to: str) -> Response:
        return Response(self.output(catalog.api_transition(api=self.get_object(), to=to, actor=self.actor)))

    @action_schema(["apis"], response=s.ApiOutputSerializer, summary="Publish a draft API (it starts routing)")
    @action(detail=True, methods=["post"])
    def publish(self, request: Request, pk: str) -> Response:
        return self._transition("published")

    @action_schema(["apis"], response=s.ApiOutputSerializer, summary="Deprecate a published API (it keeps routing)")
    @action(detail=True, methods=["post"])
    def deprecate(self, request: Request, pk: str) -> Response:
        return self._transition("deprecated")

    @action_schema(["apis"], response=s.ApiOutputSerializer, summary="Retire a deprecated API (final)")
    @action(detail=True, methods=["post"])
    def retire(self, request: Request, pk: str) -> Response:
        return self._transition("retired")

    @extend_schema(
        tags=["apis"],
        parameters=[*TENANT_PARAMETERS, *openapi_import.OPENAPI_IMPORT_PARAMETERS],
        request=openapi_import.OPENAPI_IMPORT_REQUEST,
        responses={**openapi_import.OPENAPI_IMPORT_RESPONSES, **WRITE_ERRORS},
        summary="Create or update an API, its routes and request validation from an OpenAPI 3.0/3.1 document",
    )
    @action(
        detail=False,
        methods=["post"],
        url_path="import-openapi",
        parser_classes=[MultiPartParser, openapi_import.OpenApiDocumentParser],
        filter_backends=[],
        pagination_class=None,
    )
    def import_openapi(self, request: Request) -> Response:
        return openapi_import.import_openapi_response(
            request, tenant=self.tenant, actor=self.actor, context=self.get_serializer_context()
        )


@documented(["routes"])
class RouteApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    noun = "routes"
    output_serializer_class = s.RouteOutputSerializer
    create_serializer_class = s.RouteInputSerializer
    update_serializer_class = s.RouteInputSerializer
    filterset_class = api_filters.RouteFilter
    ordering_fields = ["path", "name", "created_at"]

    def select(self, *, tenant: Tenant) -> QuerySet[Route]:
        return selectors.route_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> Route:
        return catalog.route_save(route=Route(tenant=self.tenant, **data), actor=self.actor)

    def perform_update(self, instance: Route, data: dict[str, Any]) -> Route:
        return catalog.route_save(route=apply_fields(instance, data), actor=self.actor)

    def perform_destroy(self, instance: Route) -> None:
        catalog.route_delete(route=instance, actor=self.actor)


@documented(["upstreams"])
class UpstreamApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    noun = "upstreams"
    output_serializer_class = s.UpstreamOutputSerializer
    create_serializer_class = s.UpstreamInputSerializer
    update_serializer_class = s.UpstreamInputSerializer
    filterset_fields = ["load_balancing", "healthcheck_enabled"]
    ordering_fields = ["name", "created_at"]

    def select(self, *, tenant: Tenant) -> QuerySet[Upstream]:
        return selectors.upstream_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> Upstream:
        return catalog.upstream_create(tenant=self.tenant, actor=self.actor, **data)

    def perform_update(self, instance: Upstream, data: dict[str, Any]) -> Upstream:
        return catalog.upstream_save(upstream=apply_fields(instance, data), actor=self.actor)

    def perform_destroy(self, instance: Upstream) -> None:
        catalog.upstream_delete(upstream=instance, actor=self.actor)

    @extend_schema(
        tags=["upstreams"],
        parameters=TENANT_PARAMETERS,
        responses={200: s.TargetHealthOutputSerializer(many=True), **ERRORS},
        summary="Live health of the upstream's targets as every gateway worker sees it",
    )
    @action(detail=True, methods=["get"], pagination_class=None, filter_backends=[])
    def health(self, request: Request, pk: str) -> Response:
        reports = target_health_for_upstream(upstream=self.get_object())
        return Response(s.TargetHealthOutputSerializer(reports, many=True).data)


@documented(["targets"])
class TargetApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    noun = "targets"
    output_serializer_class = s.TargetOutputSerializer
    create_serializer_class = s.TargetInputSerializer
    update_serializer_class = s.TargetInputSerializer
    filterset_class = api_filters.TargetFilter
    ordering_fields = ["url", "weight", "created_at"]

    def select(self, *, tenant: Tenant) -> QuerySet[Target]:
        return selectors.target_list(tenant=tenant)

    def output(self, instance: Any, **kwargs: Any) -> Any:
        targets = list(instance) if kwargs.get("many") else [instance]
        context = {
            **self.get_serializer_context(),
            "target_health": target_health_for_targets(tenant_id=self.tenant.pk, targets=targets),
        }
        return self.output_serializer_class(instance, context=context, **kwargs).data

    def perform_create(self, data: dict[str, Any]) -> Target:
        return catalog.target_save(target=Target(tenant=self.tenant, **data), actor=self.actor)

    def perform_update(self, instance: Target, data: dict[str, Any]) -> Target:
        return catalog.target_save(target=apply_fields(instance, data), actor=self.actor)

    def perform_destroy(self, instance: Target) -> None:
        catalog.target_delete(target=instance, actor=self.actor)


@documented(["audit"])
class AuditEventApi(ListMixin, RetrieveMixin, TenantViewSet):
    """Read-only: the trail is written by services, never through the API."""

    noun = "audit events"
    read_roles = READER_ROLES
    output_serializer_class = s.AuditEventOutputSerializer
    filterset_class = api_filters.AuditEventFilter
    ordering_fields = ["created_at", "action"]

    def select(self, *, tenant: Tenant) -> QuerySet:
        return selectors.audit_event_list(tenant=tenant)


@documented(["tokens"], tenant_scoped=False, create_response=s.AccessTokenIssuedOutputSerializer)
class AccessTokenApi(ListMixin, RetrieveMixin, CreateMixin, BaseViewSet):
    """A user's own personal access tokens. Nobody sees or revokes another user's tokens here."""

    permission_classes = [permissions.IsAuthenticated, TokenAllowsMethod]
    noun = "access tokens"
    output_serializer_class = s.AccessTokenOutputSerializer
    create_serializer_class = s.AccessTokenIssueInputSerializer
    secret_fields = ("token",)
    filterset_fields = ["read_only"]
    ordering_fields = ["created_at", "expires_at", "name"]

    def get_queryset(self) -> QuerySet[PersonalAccessToken]:
        if getattr(self, "swagger_fake_view", False):
            return PersonalAccessToken.objects.none()
        return selectors.access_token_list_for_user(user=self.request.user)

    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.idempotent_create(tenant=None)

    def perform_create(self, data: dict[str, Any]) -> tokens.IssuedToken:
        issued_with = self.request.auth if isinstance(self.request.auth, PersonalAccessToken) else None
        return tokens.token_issue(user=self.request.user, actor=self.request.user, issued_with=issued_with, **data)

    def created_output(self, instance: tokens.IssuedToken) -> Any:
        context = {**self.get_serializer_context(), "plaintext": instance.plaintext}
        return s.AccessTokenIssuedOutputSerializer(instance.token, context=context).data

    @action_schema(["tokens"], response=s.AccessTokenOutputSerializer, summary="Revoke a token", tenant_scoped=False)
    @action(detail=True, methods=["post"])
    def revoke(self, request: Request, pk: str) -> Response:
        token = tokens.token_revoke(token=self.get_object(), actor=request.user)
        return Response(self.output(token))
