"""Serializer pieces shared by every app's API: tenant-scoped relations and the error envelope."""

from __future__ import annotations

from typing import Any

from django.db import models
from drf_spectacular.utils import extend_schema_serializer
from rest_framework import serializers

from apim.models import Role

from .tenancy import resolve_tenant


class TenantRelatedField(serializers.PrimaryKeyRelatedField):
    """A foreign key that only resolves to rows of the request's tenant.

    Another tenant's id fails exactly like a missing one ("object does not
    exist"), so ids cannot be probed across tenants. ``owner_field`` narrows a
    developer's choices to rows of consumers they own.
    """

    def __init__(self, *, model: type[models.Model], owner_field: str | None = None, **kwargs: Any) -> None:
        self.model = model
        self.owner_field = owner_field
        kwargs.setdefault("queryset", model._default_manager.none())
        super().__init__(**kwargs)

    def get_queryset(self) -> models.QuerySet:
        request = self.context.get("request")
        if request is None:
            return self.model._default_manager.none()
        context = resolve_tenant(request)
        queryset = self.model._default_manager.filter(tenant=context.tenant)
        if context.role == Role.DEVELOPER and self.owner_field:
            queryset = queryset.filter(**{self.owner_field: context.user})
        return queryset


class ErrorBodySerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable machine-readable code, e.g. validation_error, not_found.")
    message = serializers.CharField(help_text="A human explanation, naming the field when one is at fault.")
    details = serializers.DictField(help_text="Field errors (field → list of messages) or extra facts.")


@extend_schema_serializer(component_name="ErrorEnvelope")
class ErrorEnvelopeSerializer(serializers.Serializer):
    success = serializers.BooleanField(default=False)
    error = ErrorBodySerializer()
