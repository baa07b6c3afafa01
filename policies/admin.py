"""Policy attachments at every scope (API-scoped ones are also inline on the API page)."""

from __future__ import annotations

from django.contrib import admin

from apim.admin.mixins import ModelService, TenantScopedAdmin
from policies.models import PolicyAttachment
from policies.services import policy_attachment_delete, policy_attachment_save


@admin.register(PolicyAttachment)
class PolicyAttachmentAdmin(TenantScopedAdmin):
    list_display = ("policy", "scope", "api", "consumer", "tenant", "enabled", "priority", "updated_at")
    list_filter = ("policy", "enabled", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("api", "consumer", "tenant")
    search_fields = ("policy", "api__name", "consumer__name", "tenant__slug")
    autocomplete_fields = ("api", "consumer")
    readonly_fields = ("scope", "created_at", "updated_at")
    fields = (
        "tenant",
        "policy",
        "api",
        "consumer",
        "config",
        "enabled",
        "priority",
        "scope",
        "created_at",
        "updated_at",
    )
    service = ModelService(arg="attachment", save=policy_attachment_save, delete=policy_attachment_delete)

    @admin.display(description="Scope")
    def scope(self, obj: PolicyAttachment) -> str:
        return obj.scope
