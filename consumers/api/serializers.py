"""Request and response shapes for consumers, applications, keys, plans and subscriptions.

No output ever carries a key's digest, pepper id or key id field beyond the
display ``prefix``; the plaintext appears only in ``ApiKeyIssuedOutputSerializer``,
in the one response that issues (or rotates) it.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from rest_framework import serializers

from apim.api.fields import TenantRelatedField
from apim.api.tenancy import resolve_tenant
from apim.models import API
from consumers.models import PLAN_SETTINGS, APIKey, Application, Consumer, Plan, Subscription


class TenantMemberField(serializers.SlugRelatedField):
    """A user named by username who is a member of the request's tenant (the consumer's portal account)."""

    def __init__(self, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(slug_field="username", queryset=get_user_model().objects.none(), **kwargs)

    def get_queryset(self):  # type: ignore[no-untyped-def]
        request = self.context.get("request")
        if request is None:
            return get_user_model().objects.none()
        return get_user_model().objects.filter(memberships__tenant=resolve_tenant(request).tenant, is_active=True)


class ConsumerOutputSerializer(serializers.ModelSerializer):
    user = serializers.SlugRelatedField(
        slug_field="username", read_only=True, allow_null=True, help_text="The portal account's username, if any."
    )
    # Not EmailField: the address is optional, and "" is not ``format: email`` (schemathesis caught it).
    email = serializers.CharField(read_only=True, help_text="The consumer's email address, or empty.")

    class Meta:
        model = Consumer
        fields = ["id", "name", "organization", "email", "status", "user", "groups", "created_at", "updated_at"]
        read_only_fields = fields


class ConsumerInputSerializer(serializers.ModelSerializer):
    user = TenantMemberField(required=False, allow_null=True, help_text="Username of a member of this tenant.")
    groups = serializers.ListField(child=serializers.CharField(max_length=64), required=False)

    class Meta:
        model = Consumer
        fields = ["name", "organization", "email", "user", "groups"]


class ApplicationOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Application
        fields = ["id", "consumer", "name", "description", "created_at", "updated_at"]
        read_only_fields = fields


class ApplicationInputSerializer(serializers.ModelSerializer):
    consumer = TenantRelatedField(model=Consumer, owner_field="user")

    class Meta:
        model = Application
        fields = ["consumer", "name", "description"]


class ApplicationUpdateInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Application
        fields = ["name", "description"]


class ApiKeyOutputSerializer(serializers.ModelSerializer):
    state = serializers.CharField(read_only=True, help_text="active, expired or revoked.")
    allowed_apis = serializers.PrimaryKeyRelatedField(many=True, read_only=True)

    class Meta:
        model = APIKey
        fields = [
            "id",
            "application",
            "consumer",
            "name",
            "prefix",
            "scopes",
            "allowed_apis",
            "expires_at",
            "state",
            "active",
            "revoked_at",
            "rotated_from",
            "last_used_at",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields


class ApiKeyIssuedOutputSerializer(ApiKeyOutputSerializer):
    key = serializers.SerializerMethodField(help_text="The key itself, shown this once. Store it now.")

    class Meta(ApiKeyOutputSerializer.Meta):
        fields = [*ApiKeyOutputSerializer.Meta.fields, "key"]
        read_only_fields = fields

    def get_key(self, key: APIKey) -> str | None:
        return self.context.get("plaintext")


class ApiKeyIssueInputSerializer(serializers.Serializer):
    application = TenantRelatedField(model=Application, owner_field="consumer__user")
    name = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    scopes = serializers.ListField(child=serializers.CharField(max_length=64), required=False, default=list)
    allowed_apis = TenantRelatedField(model=API, many=True, required=False, default=list)
    expires_at = serializers.DateTimeField(required=False, allow_null=True, default=None)


class ApiKeyUpdateInputSerializer(serializers.Serializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)
    scopes = serializers.ListField(child=serializers.CharField(max_length=64), required=False)
    allowed_apis = TenantRelatedField(model=API, many=True, required=False)
    expires_at = serializers.DateTimeField(required=False, allow_null=True)


class ApiKeyRotateInputSerializer(serializers.Serializer):
    grace_seconds = serializers.IntegerField(
        required=False,
        min_value=0,
        max_value=30 * 24 * 3600,
        help_text="How long the old key keeps working (default API_KEY_ROTATION_GRACE_SECONDS, 24 h).",
    )


PLAN_FIELDS = ["name", *PLAN_SETTINGS]


class PlanOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = ["id", *PLAN_FIELDS, "created_at", "updated_at"]
        read_only_fields = fields


class PlanInputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Plan
        fields = PLAN_FIELDS


class SubscriptionOutputSerializer(serializers.ModelSerializer):
    class Meta:
        model = Subscription
        fields = ["id", "application", "api", "plan", "status", "decided_at", "created_at", "updated_at"]
        read_only_fields = fields


class SubscriptionCreateInputSerializer(serializers.Serializer):
    application = TenantRelatedField(model=Application)
    api = TenantRelatedField(model=API)
    plan = TenantRelatedField(model=Plan)
