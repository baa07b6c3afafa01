"""The base of every tenant-scoped REST resource: thin views over selectors and services.

A resource declares its selector (``select``), its serializers, the roles that
may read and write it, and the services behind each write (``perform_*``).
This class does the rest the same way everywhere: resolve the tenant, check
the role, narrow a developer's rows to their own consumers (``owner_field``),
look objects up inside the tenant only (another tenant's id is a 404 like a
missing one), page, filter, order, honour ``Idempotency-Key`` on creates, and
document it all for drf-spectacular (``documented``).
"""

from __future__ import annotations

from typing import Any, ClassVar

from django.db import models
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import exceptions, filters, permissions, status, viewsets
from rest_framework.request import Request
from rest_framework.response import Response

from apim.models import OPERATOR_ROLES, Role, Tenant

from .fields import ErrorEnvelopeSerializer
from .idempotency import idempotent
from .permissions import TenantRolePermission, TokenAllowsMethod
from .schema import IDEMPOTENCY_PARAMETER, TENANT_PARAMETERS
from .tenancy import ALL_ROLES, TenantContext, resolve_tenant

ERRORS = {
    400: OpenApiResponse(ErrorEnvelopeSerializer, description="Invalid input; field errors in details."),
    401: OpenApiResponse(ErrorEnvelopeSerializer, description="Missing, invalid, expired or revoked credentials."),
    403: OpenApiResponse(ErrorEnvelopeSerializer, description="Your role (or a read-only token) does not allow it."),
    404: OpenApiResponse(ErrorEnvelopeSerializer, description="No such object in this tenant."),
    429: OpenApiResponse(ErrorEnvelopeSerializer, description="Throttled; see Retry-After."),
}
WRITE_ERRORS = {
    **ERRORS,
    409: OpenApiResponse(ErrorEnvelopeSerializer, description="Conflicts with the state."),
    415: OpenApiResponse(ErrorEnvelopeSerializer, description="The body's Content-Type is not one the API reads."),
}


class BaseViewSet(viewsets.GenericViewSet):
    """Roles, errors and lookups shared by tenant-scoped and user-scoped resources."""

    permission_classes: ClassVar[list] = [permissions.IsAuthenticated, TokenAllowsMethod, TenantRolePermission]
    filter_backends: ClassVar[list] = [DjangoFilterBackend, filters.OrderingFilter]
    lookup_value_regex = "[^/]+"
    read_roles: tuple[str, ...] = ALL_ROLES
    write_roles: tuple[str, ...] = OPERATOR_ROLES
    action_roles: ClassVar[dict[str, tuple[str, ...]]] = {}
    noun = "these objects"
    output_serializer_class: Any = None
    create_serializer_class: Any = None
    update_serializer_class: Any = None
    # Response fields holding a secret shown once: nulled in stored idempotent replays.
    secret_fields: tuple[str, ...] = ()

    def roles_for(self, request: Request) -> tuple[str, ...]:
        if self.action in self.action_roles:
            return self.action_roles[self.action]
        return self.read_roles if request.method in permissions.SAFE_METHODS else self.write_roles

    def get_serializer_class(self) -> Any:
        if self.action == "create" and self.create_serializer_class is not None:
            return self.create_serializer_class
        if self.action == "partial_update" and self.update_serializer_class is not None:
            return self.update_serializer_class
        return self.output_serializer_class

    def output(self, instance: Any, **kwargs: Any) -> Any:
        return self.output_serializer_class(instance, context=self.get_serializer_context(), **kwargs).data

    def validated(self, serializer_class: Any, *, partial: bool = False, instance: Any = None) -> dict[str, Any]:
        serializer = serializer_class(
            instance=instance, data=self.request.data, partial=partial, context=self.get_serializer_context()
        )
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def get_object(self) -> Any:
        lookup = self.kwargs[self.lookup_url_kwarg or self.lookup_field]
        pk_field = self.get_queryset().model._meta.pk
        try:
            lookup = pk_field.to_python(lookup)
        except Exception:  # noqa: BLE001 - a malformed id is just another id we do not have
            raise exceptions.NotFound() from None
        obj = self.get_queryset().filter(pk=lookup).first()
        if obj is None:
            raise exceptions.NotFound()
        self.check_object_permissions(self.request, obj)
        return obj

    def paged(self, queryset: models.QuerySet) -> Response:
        queryset = self.filter_queryset(queryset)
        page = self.paginate_queryset(queryset)
        if page is not None:
            return self.get_paginated_response(self.output(page, many=True))
        return Response(self.output(queryset, many=True))

    def idempotent_create(self, *, tenant: Tenant | None) -> Response:
        def run() -> Response:
            data = self.validated(self.create_serializer_class)
            instance = self.perform_create(data)
            return Response(self.created_output(instance), status=status.HTTP_201_CREATED)

        return idempotent(self.request, tenant=tenant, handler=run, redact=self.secret_fields)

    def created_output(self, instance: Any) -> Any:
        return self.output(instance)

    def perform_create(self, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def perform_update(self, instance: Any, data: dict[str, Any]) -> Any:
        raise NotImplementedError

    def perform_destroy(self, instance: Any) -> None:
        raise NotImplementedError


class TenantViewSet(BaseViewSet):
    """A resource owned by the request's tenant."""

    # Developers see (and may change) only rows where this path leads to themselves.
    owner_field: str | None = None

    @property
    def tenant_context(self) -> TenantContext:
        return resolve_tenant(self.request)

    @property
    def tenant(self) -> Tenant:
        return self.tenant_context.tenant

    @property
    def actor(self) -> Any:
        return self.request.user

    def select(self, *, tenant: Tenant) -> models.QuerySet:
        raise NotImplementedError

    def get_queryset(self) -> models.QuerySet:
        if getattr(self, "swagger_fake_view", False):
            return self.output_serializer_class.Meta.model._default_manager.none()
        context = self.tenant_context
        queryset = self.select(tenant=context.tenant)
        if context.role == Role.DEVELOPER and self.owner_field:
            queryset = queryset.filter(**{self.owner_field: context.user})
        return queryset


class ListMixin:
    def list(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.paged(self.get_queryset())  # type: ignore[attr-defined]


class RetrieveMixin:
    def retrieve(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return Response(self.output(self.get_object()))  # type: ignore[attr-defined]


class CreateMixin:
    def create(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return self.idempotent_create(tenant=self.tenant)  # type: ignore[attr-defined]


class UpdateMixin:
    def partial_update(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        instance = self.get_object()  # type: ignore[attr-defined]
        data = self.validated(self.update_serializer_class, partial=True, instance=instance)  # type: ignore[attr-defined]
        return Response(self.output(self.perform_update(instance, data)))  # type: ignore[attr-defined]


class DestroyMixin:
    def destroy(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        self.perform_destroy(self.get_object())  # type: ignore[attr-defined]
        return Response(status=status.HTTP_204_NO_CONTENT)


def apply_fields(instance: models.Model, data: dict[str, Any]) -> models.Model:
    """Copy validated scalar and foreign-key fields onto ``instance`` (the service validates and saves)."""
    for name, value in data.items():
        setattr(instance, name, value)
    return instance


def documented(tags: list[str], *, tenant_scoped: bool = True, **extra: Any):  # type: ignore[no-untyped-def]
    """Schema for a resource's standard actions from its serializer attributes.

    Every operation names its errors (the envelope) and, when tenant-scoped,
    the tenant selector; creates document ``Idempotency-Key``. Custom actions
    add their own ``extend_schema``.
    """

    def decorate(cls: type[BaseViewSet]) -> type[BaseViewSet]:
        params = list(TENANT_PARAMETERS) if tenant_scoped else []
        views: dict[str, Any] = {}
        noun = cls.noun
        if hasattr(cls, "list"):
            views["list"] = extend_schema(
                tags=tags,
                parameters=params,
                responses={200: cls.output_serializer_class(many=True), **ERRORS},
                summary=f"List {noun}",
            )
        if hasattr(cls, "retrieve"):
            views["retrieve"] = extend_schema(
                tags=tags,
                parameters=params,
                responses={200: cls.output_serializer_class, **ERRORS},
                summary=f"Read one of {noun}",
            )
        if hasattr(cls, "create"):
            views["create"] = extend_schema(
                tags=tags,
                parameters=[*params, IDEMPOTENCY_PARAMETER],
                request=cls.create_serializer_class,
                responses={201: extra.get("create_response", cls.output_serializer_class), **WRITE_ERRORS},
                summary=f"Create one of {noun}",
            )
        if hasattr(cls, "partial_update"):
            views["partial_update"] = extend_schema(
                tags=tags,
                parameters=params,
                request=cls.update_serializer_class,
                responses={200: cls.output_serializer_class, **WRITE_ERRORS},
                summary=f"Change one of {noun}",
            )
        if hasattr(cls, "destroy"):
            views["destroy"] = extend_schema(
                tags=tags, parameters=params, responses={204: None, **WRITE_ERRORS}, summary=f"Delete one of {noun}"
            )
        return extend_schema_view(**views)(cls)

    return decorate


def action_schema(tags: list[str], *, response: Any, request: Any = None, summary: str = "", **kwargs: Any):  # type: ignore[no-untyped-def]
    """``extend_schema`` for a POST action on one object (publish, revoke, approve …)."""
    return extend_schema(
        tags=tags,
        parameters=list(TENANT_PARAMETERS) if kwargs.pop("tenant_scoped", True) else [],
        request=request,
        responses={200: response, **WRITE_ERRORS},
        summary=summary,
        **kwargs,
    )
