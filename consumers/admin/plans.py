"""Plans and subscriptions."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from apim.admin.mixins import ModelService, TenantScopedAdmin, adopt
from apim.admin.tools import ObjectTool, service_action
from consumers.models import Plan, Subscription
from consumers.services import (
    plan_delete,
    plan_save,
    subscription_approve,
    subscription_cancel,
    subscription_create,
    subscription_delete,
    subscription_reject,
    subscription_save,
    subscription_suspend,
)


@admin.register(Plan)
class PlanAdmin(TenantScopedAdmin):
    list_display = (
        "name",
        "tenant",
        "rate_limit_per_second",
        "rate_limit_per_minute",
        "quota_per_day",
        "quota_per_month",
        "requires_approval",
        "is_public",
    )
    list_filter = ("requires_approval", "is_public", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("tenant",)
    search_fields = ("name", "description", "tenant__slug")
    readonly_fields = ("created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("tenant", "name", "description", "requires_approval", "is_public")}),
        (
            "Rate limits (requests)",
            {"fields": ("rate_limit_per_second", "rate_limit_per_minute", "rate_limit_per_hour", "rate_limit_per_day")},
        ),
        ("Quotas", {"fields": ("quota_per_day", "quota_per_month", "quota_timezone")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    service = ModelService(arg="plan", save=plan_save, delete=plan_delete)


_TOOLS = (
    ObjectTool("approve", "Approve", "Approved", subscription_approve, "subscription"),
    ObjectTool("reject", "Reject", "Rejected", subscription_reject, "subscription"),
    ObjectTool("suspend", "Suspend", "Suspended", subscription_suspend, "subscription"),
    ObjectTool("cancel", "Cancel", "Cancelled", subscription_cancel, "subscription"),
)


@admin.register(Subscription)
class SubscriptionAdmin(TenantScopedAdmin):
    """New subscriptions go through ``subscription_create`` (active at once unless the plan needs approval)."""

    list_display = ("__str__", "application", "api", "plan", "status", "tenant", "created_at")
    list_filter = ("status", ("tenant", admin.RelatedOnlyFieldListFilter), ("plan", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("application__consumer", "api", "plan", "tenant")
    search_fields = ("application__name", "application__consumer__name", "api__name", "plan__name")
    autocomplete_fields = ("application", "api", "plan")
    readonly_fields = ("status", "decided_at", "created_at", "updated_at")
    fields = ("tenant", "application", "api", "plan", "status", "decided_at", "created_at", "updated_at")
    service = ModelService(arg="subscription", save=subscription_save, delete=subscription_delete)
    fixed_after_create = ("application", "api")
    actions = [service_action(tool) for tool in _TOOLS]

    def save_model(self, request: HttpRequest, obj: Subscription, form: Any, change: bool) -> None:
        if change:
            super().save_model(request, obj, form, change)
            return
        created = subscription_create(application=obj.application, api=obj.api, plan=obj.plan, actor=request.user)
        adopt(obj, created)
