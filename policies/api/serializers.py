"""Policy attachments over REST. The config is checked by the policy type's own schema in the service
(``PolicyAttachment.clean`` → ``policies.validation``), so the API refuses exactly what the admin refuses,
with the field path in the message: ``config.allow[1]: '10.0.0.0/33' is not a valid CIDR``."""

from __future__ import annotations

from rest_framework import serializers

from apim.api.fields import TenantRelatedField
from apim.models import API
from consumers.models import Consumer
from policies.models import PolicyAttachment
from policies.registry import choices as policy_choices
from policies.secrets import REDACTED, redact


class PolicyAttachmentOutputSerializer(serializers.ModelSerializer):
    scope = serializers.CharField(read_only=True, help_text="tenant, api, consumer or api+consumer.")
    config = serializers.SerializerMethodField(
        help_text=f"Secret fields (writeOnly in the policy type's schema) read as {REDACTED!r}; "
        "sending the placeholder back keeps the stored secret."
    )

    class Meta:
        model = PolicyAttachment
        fields = [
            "id",
            "policy",
            "scope",
            "api",
            "consumer",
            "config",
            "enabled",
            "priority",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_config(self, obj: PolicyAttachment) -> dict:
        return redact(obj.policy, obj.config)


class PolicyAttachmentInputSerializer(serializers.ModelSerializer):
    policy = serializers.ChoiceField(choices=[])
    api = TenantRelatedField(model=API, required=False, allow_null=True)
    consumer = TenantRelatedField(model=Consumer, required=False, allow_null=True)
    config = serializers.JSONField(required=False, help_text="Checked against the policy type's JSON Schema.")

    class Meta:
        model = PolicyAttachment
        fields = ["policy", "api", "consumer", "config", "enabled", "priority"]

    def __init__(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        super().__init__(*args, **kwargs)
        # The registry is settings-driven: read the choices when used, not at import.
        if "policy" in self.fields:
            self.fields["policy"].choices = policy_choices()


class PolicyAttachmentUpdateInputSerializer(PolicyAttachmentInputSerializer):
    class Meta(PolicyAttachmentInputSerializer.Meta):
        fields = ["api", "consumer", "config", "enabled", "priority"]
