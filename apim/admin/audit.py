"""The audit trail, read-only for everyone: rows are written by services and never edited."""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from apim.models import AuditEvent

from .mixins import TenantScopedAdmin


@admin.register(AuditEvent)
class AuditEventAdmin(TenantScopedAdmin):
    """Tenant operators see their tenant's events; events without a tenant are for superusers."""

    list_display = ("created_at", "action", "object_repr", "object_type", "actor_label", "tenant")
    list_filter = ("action", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("tenant",)
    search_fields = ("object_repr", "actor_label", "object_id")
    date_hierarchy = "created_at"
    fields = (
        "created_at",
        "tenant",
        "actor",
        "actor_label",
        "action",
        "object_type",
        "object_id",
        "object_repr",
        "before",
        "after",
    )
    readonly_fields = fields

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False
