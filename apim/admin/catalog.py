"""APIs with their routes and policies, upstreams with their targets."""

from __future__ import annotations

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html, format_html_join

from apim.models import API, ApiStatus, Route, Target, Upstream
from apim.services.catalog import (
    api_allowed_transitions,
    api_delete,
    api_deprecate,
    api_publish,
    api_retire,
    api_save,
    route_delete,
    route_save,
    target_delete,
    target_save,
    target_url_check,
    upstream_delete,
    upstream_save,
)
from gateway.selectors import target_health_for_upstream
from policies.admin import PolicyAttachmentForm
from policies.models import PolicyAttachment
from policies.services import policy_attachment_delete, policy_attachment_save

from .mixins import ModelService, TenantScopedAdmin, TenantScopedInline
from .tools import ObjectTool, ObjectToolsMixin, service_action


def _can_become(status: str):
    return lambda api: status in api_allowed_transitions(api=api)


PUBLISH = ObjectTool("publish", "Publish", "Published", api_publish, "api", _can_become(ApiStatus.PUBLISHED))
DEPRECATE = ObjectTool("deprecate", "Deprecate", "Deprecated", api_deprecate, "api", _can_become(ApiStatus.DEPRECATED))
RETIRE = ObjectTool("retire", "Retire", "Retired", api_retire, "api", _can_become(ApiStatus.RETIRED))


class RouteInline(TenantScopedInline, admin.TabularInline):
    model = Route
    fields = ("name", "path", "methods", "enabled")
    service = ModelService(arg="route", save=route_save, delete=route_delete)


class PolicyAttachmentInline(TenantScopedInline, admin.TabularInline):
    """Policies of this API (for every consumer or one); tenant-wide ones are on the policy list."""

    model = PolicyAttachment
    form = PolicyAttachmentForm
    fk_name = "api"
    fields = ("policy", "consumer", "config", "enabled", "priority")
    autocomplete_fields = ("consumer",)
    service = ModelService(arg="attachment", save=policy_attachment_save, delete=policy_attachment_delete)


@admin.register(API)
class APIAdmin(ObjectToolsMixin, TenantScopedAdmin):
    """The lifecycle moves only through the publish / deprecate / retire tools and actions."""

    list_display = ("name", "version", "title", "tenant", "base_path", "status", "upstream", "updated_at")
    list_filter = ("status", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("tenant", "upstream")
    search_fields = ("name", "title", "base_path", "tenant__slug")
    autocomplete_fields = ("upstream",)
    readonly_fields = ("status", "published_at", "deprecated_at", "retired_at", "created_at", "updated_at")
    fieldsets = (
        (None, {"fields": ("tenant", "name", "version", "title", "description")}),
        ("Routing", {"fields": ("base_path", "hosts", "strip_base_path", "upstream")}),
        ("Lifecycle", {"fields": ("status", "published_at", "deprecated_at", "retired_at")}),
        ("Documentation", {"classes": ("collapse",), "fields": ("openapi_document",)}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (RouteInline, PolicyAttachmentInline)
    service = ModelService(arg="api", save=api_save, delete=api_delete)
    object_tools = (PUBLISH, DEPRECATE, RETIRE)
    actions = [service_action(tool) for tool in object_tools]


class TargetInlineForm(forms.ModelForm):
    """Runs the service's address check while validating, so a refused URL is an error on its own row."""

    class Meta:
        model = Target
        fields = ("url", "weight", "enabled")

    def clean_url(self) -> str:
        url = self.cleaned_data["url"]
        if self.instance.pk is not None and url == self.instance.url:
            return url  # unchanged: the service does not check it again either
        try:
            target_url_check(url=url)
        except ValidationError as exc:
            raise ValidationError(exc.message_dict["url"]) from None
        return url


class TargetInline(TenantScopedInline, admin.TabularInline):
    model = Target
    form = TargetInlineForm
    fields = ("url", "weight", "enabled")
    service = ModelService(arg="target", save=target_save, delete=target_delete)


@admin.register(Upstream)
class UpstreamAdmin(TenantScopedAdmin):
    list_display = ("name", "tenant", "load_balancing", "healthcheck_enabled", "retries", "updated_at")
    list_filter = ("load_balancing", "healthcheck_enabled", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("tenant",)
    search_fields = ("name", "description", "tenant__slug", "targets__url")
    readonly_fields = ("created_at", "updated_at", "live_target_health")
    fieldsets = (
        (None, {"fields": ("tenant", "name", "description", "load_balancing")}),
        ("Live target health (as the gateways see it)", {"fields": ("live_target_health",)}),
        ("Timeouts and retries", {"fields": ("connect_timeout_ms", "read_timeout_ms", "write_timeout_ms", "retries")}),
        (
            "Active health checks",
            {
                "fields": (
                    "healthcheck_enabled",
                    "healthcheck_path",
                    "healthcheck_interval_s",
                    "healthcheck_timeout_ms",
                    "healthy_threshold",
                    "unhealthy_threshold",
                )
            },
        ),
        ("Passive health checks", {"fields": ("passive_failure_threshold", "ejection_base_s")}),
        ("Record", {"fields": ("created_at", "updated_at")}),
    )
    inlines = (TargetInline,)
    service = ModelService(arg="upstream", save=upstream_save, delete=upstream_delete)

    @admin.display(description="Target health")
    def live_target_health(self, obj: Upstream) -> str:
        """What each running gateway worker last reported (within 30 s) about each target."""
        if obj is None or obj.pk is None:
            return "—"
        reports = list(target_health_for_upstream(upstream=obj))
        if not reports:
            return "No gateway reported on this upstream in the last 30 s (not routed, or no gateway runs)."
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((r.target_url, r.state, r.circuit, r.consecutive_failures, r.in_flight, r.gateway) for r in reports),
        )
        head = format_html(
            "<tr><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th><th>{}</th></tr>",
            "Target",
            "State",
            "Circuit",
            "Consecutive failures",
            "In flight",
            "Gateway worker",
        )
        return format_html("<table>{}{}</table>", head, rows)
