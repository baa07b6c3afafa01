"""Where a policy applies: the tenant, an API, a consumer, or an API+consumer pair."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.db import models

from apim.models import API, TenantOwned
from consumers.models import Consumer

from .base import ConfigError
from .registry import choices as policy_choices
from .validation import check_scope, parse_config


class PolicyAttachment(TenantOwned):
    """One policy of one type at one scope. The most specific attachment of a type wins,
    like Kong's plugin scoping: API+consumer, then consumer, then API, then tenant."""

    policy = models.CharField(max_length=64, choices=policy_choices)
    api = models.ForeignKey(
        API, on_delete=models.CASCADE, null=True, blank=True, related_name="policies", verbose_name="API"
    )
    consumer = models.ForeignKey(Consumer, on_delete=models.CASCADE, null=True, blank=True, related_name="policies")
    config = models.JSONField(default=dict, blank=True)
    enabled = models.BooleanField(default=True)
    priority = models.IntegerField(null=True, blank=True, help_text="Overrides the policy type's execution order.")

    same_tenant_fields = ("api", "consumer")

    class Meta:
        db_table = "am_policies"
        verbose_name = "policy"
        verbose_name_plural = "policies"
        ordering = ["policy"]
        constraints = [
            models.UniqueConstraint(
                fields=["tenant", "policy"],
                condition=models.Q(api__isnull=True, consumer__isnull=True),
                name="am_policies_unique_tenant_scope",
                violation_error_message="This tenant already has a tenant-wide policy of this type.",
            ),
            models.UniqueConstraint(
                fields=["tenant", "policy", "api"],
                condition=models.Q(api__isnull=False, consumer__isnull=True),
                name="am_policies_unique_api_scope",
                violation_error_message="This API already has a policy of this type.",
            ),
            models.UniqueConstraint(
                fields=["tenant", "policy", "consumer"],
                condition=models.Q(api__isnull=True, consumer__isnull=False),
                name="am_policies_unique_consumer_scope",
                violation_error_message="This consumer already has a policy of this type.",
            ),
            models.UniqueConstraint(
                fields=["tenant", "policy", "api", "consumer"],
                condition=models.Q(api__isnull=False, consumer__isnull=False),
                name="am_policies_unique_pair_scope",
                violation_error_message="This API and consumer already have a policy of this type.",
            ),
        ]

    def audit_redact(self, data: dict) -> dict:
        """The audit log is read by viewers: secrets in the config are left out like a key's digest."""
        from .secrets import redact

        if isinstance(data.get("config"), dict):
            data["config"] = redact(self.policy, data["config"])
        return data

    def __str__(self) -> str:
        return f"{self.policy} ({self.scope})"

    @property
    def scope(self) -> str:
        if self.api_id and self.consumer_id:
            return "api+consumer"
        if self.api_id:
            return "api"
        if self.consumer_id:
            return "consumer"
        return "tenant"

    def clean(self) -> None:
        if self.api_id and not self.tenant_id:
            self.tenant_id = self.api.tenant_id
        super().clean()
        if not isinstance(self.config, dict):
            raise ValidationError({"config": 'Config must be a JSON object, e.g. {"limit": 10}.'})
        problem = check_scope(self.policy, self.scope)
        if problem:
            raise ValidationError({"consumer": problem})
        try:
            parse_config(self.policy, self.config)
        except ConfigError as exc:
            raise ValidationError({"config": str(exc)}) from None
