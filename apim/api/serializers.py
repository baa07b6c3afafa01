"""Request and response shapes of the core resources (tenants, members, catalog, audit, tokens).

Input serializers list exactly the fields a client may set: ``tenant``,
``status``, ``config_version`` and friends are not among them, so a body that
sends them changes nothing. Business rules stay in the services (``full_clean``
runs there); these only shape and type the input.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apim.models import (
    API,
    UPSTREAM_SETTINGS,
    AuditEvent,
    Membership,
    PersonalAccessToken,
    Role,
    Route,
    Target,
    Tenant,
    Upstream,
)
from apim.services.catalog import api_allowed_transitions

from .fields import TenantRelatedField


class TenantOutputSerializer(serializers.ModelSerializer):
    hosts = serializers.SerializerMethodField()

    class Meta:
        model = Tenant
        fields = ["id", "slug", "name", "is_default", "hosts", "config_version", "created_at", "updated_at"]
        read_only_fields = fields

    def get_hosts(self, tenant: Tenant) -> list[str]:
        return [entry.host for entry in tenant.hosts.all()]


class TenantCreateInputSerializer(serializers.Serializer):
    slug = serializers.CharField(max_length=64)
    name = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")
    is_default = serializers.BooleanField(required=False, default=False)
    hosts = serializers.ListField(child=serializers.CharField(max_length=253), required=False, default=list)


class TenantUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=200, required=False)
    is_default = serializers.BooleanField(required=False)


class MembershipOutputSerializer(serializers.ModelSerializer):
    username = serializers.CharField(source="user.username", read_only=True)
    email = serializers.CharField(source="user.email", read_only=True)

    class Meta:
        model = Membership
        fields = ["id", "user", "username", "email", "role", "created_at"]
        read_only_fields = fields


class MembershipCreateInputSerializer(serializers.Serializer):
    username = serializers.SlugRelatedField(
        slug_field="username", queryset=get_user_model().objects.filter(is_active=True), source="user"
    )
    role = serializers.ChoiceField(choices=Role.choices)


class MembershipUpdateInputSerializer(serializers.Serializer):
    role = serializers.ChoiceField(choices=Role.choices)


class ApiOutputSerializer(serializers.ModelSerializer):
    allowed_transitions = serializers.SerializerMethodField()

    class Meta:
        model = API
        fields = [
            "id",
            "name",
            "title",
            "version",
            "description",
            "base_path",
            "hosts",
            "strip_base_path",
            "upstream",
            "status",
            "allowed_transitions",
            "published_at",
            "deprecated_at",
            "retired_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_allowed_transitions(self, api: API) -> list[str]:
        return list(api_allowed_transitions(api=api))


class ApiInputSerializer(serializers.ModelSerializer):
    upstream = TenantRelatedField(model=Upstream, required=False, allow_null=True)
    hosts = serializers.ListField(child=serializers.CharField(max_length=253), required=False)

    class Meta:
        model = API
        fields = ["name", "title", "version", "description", "base_path", "hosts", "strip_base_path", "upstream"]


class RouteOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Route
        fields = ["id", "api", "name", "path", "methods", "enabled", "created_at", "updated_at"]
        read_only_fields = fields


class RouteInputSerializer(serializers.ModelSerializer):
    api = TenantRelatedField(model=API)
    methods = serializers.ListField(child=serializers.CharField(max_length=16), required=False)

    class Meta:
        model = Route
        fields = ["api", "name", "path", "methods", "enabled"]


UPSTREAM_FIELDS = ["name", *UPSTREAM_SETTINGS]


class UpstreamOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upstream
        fields = ["id", *UPSTREAM_FIELDS, "created_at", "updated_at"]
        read_only_fields = fields


class UpstreamInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Upstream
        fields = UPSTREAM_FIELDS


class TargetHealthOutputSerializer(serializers.Serializer):
    gateway = serializers.CharField(help_text="The reporting gateway worker (host:pid).")
    target_url = serializers.CharField()
    state = serializers.CharField()
    circuit = serializers.CharField()
    consecutive_failures = serializers.IntegerField()
    in_flight = serializers.IntegerField()
    ejected_until = serializers.DateTimeField(allow_null=True)
    reported_at = serializers.DateTimeField()


class TargetOutputSerializer(serializers.ModelSerializer):
    health = serializers.SerializerMethodField(help_text="Fresh reports of every gateway worker about this target.")

    class Meta:
        model = Target
        fields = ["id", "upstream", "url", "weight", "enabled", "health", "created_at", "updated_at"]
        read_only_fields = fields

    @extend_schema_field(TargetHealthOutputSerializer(many=True))
    def get_health(self, target: Target) -> list[dict[str, Any]]:
        reports = self.context.get("target_health", {}).get((target.upstream_id, target.url), [])
        return TargetHealthOutputSerializer(reports, many=True).data


class TargetInputSerializer(serializers.ModelSerializer):
    upstream = TenantRelatedField(model=Upstream)

    class Meta:
        model = Target
        fields = ["upstream", "url", "weight", "enabled"]


class AuditEventOutputSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_label", read_only=True)

    class Meta:
        model = AuditEvent
        fields = ["id", "action", "object_type", "object_id", "object_repr", "actor", "before", "after", "created_at"]
        read_only_fields = fields


class AccessTokenOutputSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text="active, expired or revoked.")

    class Meta:
        model = PersonalAccessToken
        fields = [
            "id",
            "name",
            "prefix",
            "read_only",
            "state",
            "expires_at",
            "last_used_at",
            "revoked_at",
            "created_at",
        ]
        read_only_fields = fields


class AccessTokenIssuedOutputSerializer(AccessTokenOutputSerializer):
    token = serializers.SerializerMethodField(
        help_text="The token itself, shown this once. It cannot be recovered; store it now."
    )

    class Meta(AccessTokenOutputSerializer.Meta):
        fields = [*AccessTokenOutputSerializer.Meta.fields, "token"]
        read_only_fields = fields

    def get_token(self, token: PersonalAccessToken) -> str | None:
        return self.context.get("plaintext")


class AccessTokenIssueInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100)
    read_only = serializers.BooleanField(required=False, default=False)
    expires_at = serializers.DateTimeField(
        required=False, allow_null=True, default=None, help_text="Default: 90 days from now; at most 365."
    )
