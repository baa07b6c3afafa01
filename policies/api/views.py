"""Policy attachments over REST: the tenant's operators attach, change and detach policies.

Developers do not read them: a config may hold a shared secret (jwt's HS256
``secret``), which the console shows only to operators and viewers too.
"""

from __future__ import annotations

from typing import Any

import django_filters
from django.db.models import QuerySet

from apim.api.viewsets import (
    CreateMixin,
    DestroyMixin,
    ListMixin,
    RetrieveMixin,
    TenantViewSet,
    UpdateMixin,
    apply_fields,
    documented,
)
from apim.models import READER_ROLES, Tenant
from policies import selectors, services
from policies.models import PolicyAttachment

from . import serializers as s


class PolicyAttachmentFilter(django_filters.FilterSet):
    api = django_filters.UUIDFilter(field_name="api_id")
    consumer = django_filters.UUIDFilter(field_name="consumer_id")

    class Meta:
        model = PolicyAttachment
        fields = ["policy", "enabled", "api", "consumer"]


@documented(["policies"])
class PolicyAttachmentApi(ListMixin, RetrieveMixin, CreateMixin, UpdateMixin, DestroyMixin, TenantViewSet):
    noun = "policies"
    read_roles = READER_ROLES
    output_serializer_class = s.PolicyAttachmentOutputSerializer
    create_serializer_class = s.PolicyAttachmentInputSerializer
    update_serializer_class = s.PolicyAttachmentUpdateInputSerializer
    filterset_class = PolicyAttachmentFilter
    ordering_fields = ["policy", "created_at", "priority"]

    def select(self, *, tenant: Tenant) -> QuerySet[PolicyAttachment]:
        return selectors.policy_attachment_list(tenant=tenant)

    def perform_create(self, data: dict[str, Any]) -> PolicyAttachment:
        return services.policy_attachment_save(
            attachment=PolicyAttachment(tenant=self.tenant, **data), actor=self.actor
        )

    def perform_update(self, instance: PolicyAttachment, data: dict[str, Any]) -> PolicyAttachment:
        return services.policy_attachment_save(attachment=apply_fields(instance, data), actor=self.actor)

    def perform_destroy(self, instance: PolicyAttachment) -> None:
        services.policy_attachment_delete(attachment=instance, actor=self.actor)
