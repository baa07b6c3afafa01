"""Consumers and their applications."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from apim.admin.mixins import ModelService, TenantScopedAdmin, TenantScopedInline
from apim.admin.tools import ObjectTool, run_tool, service_action
from consumers.models import APIKey, Application, Consumer, ConsumerStatus
from consumers.services import (
    api_key_issue,
    application_delete,
    application_save,
    consumer_activate,
    consumer_delete,
    consumer_save,
    consumer_suspend,
)

from .issued import render_issued

SUSPEND = ObjectTool(
    "suspend", "Suspend", "Suspended", consumer_suspend, "consumer", lambda c: c.status == ConsumerStatus.ACTIVE
)
ACTIVATE = ObjectTool(
    "activate", "Activate", "Activated", consumer_activate, "consumer", lambda c: c.status != ConsumerStatus.ACTIVE
)


def _issue_key(*, application: Application, actor: Any) -> Any:
    return api_key_issue(application=application, name="issued from console", actor=actor)


ISSUE_KEY = ObjectTool("issue_key", "Issue a new key", "Issued a key for", _issue_key, "application")


class ApplicationInline(TenantScopedInline, admin.TabularInline):
    model = Application
    fields = ("name", "description")
    show_change_link = True
    service = ModelService(arg="application", save=application_save, delete=application_delete)


@admin.register(Consumer)
class ConsumerAdmin(TenantScopedAdmin):
    list_display = ("name", "organization", "email", "status", "tenant", "created_at")
    list_filter = ("status", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("tenant",)
    search_fields = ("name", "organization", "email", "tenant__slug")
    readonly_fields = ("status", "created_at", "updated_at")
    fields = ("tenant", "name", "organization", "email", "user", "groups", "status", "created_at", "updated_at")
    inlines = (ApplicationInline,)
    service = ModelService(arg="consumer", save=consumer_save, delete=consumer_delete)
    actions = [service_action(SUSPEND), service_action(ACTIVATE)]


class APIKeyInline(TenantScopedInline, admin.TabularInline):
    """The application's keys at a glance; keys are issued and changed on their own pages."""

    model = APIKey
    fields = ("prefix", "name", "state", "expires_at", "created_at", "last_used_at")
    readonly_fields = fields
    show_change_link = True
    can_delete = False

    @admin.display(description="State")
    def state(self, obj: APIKey) -> str:
        return obj.state

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(Application)
class ApplicationAdmin(TenantScopedAdmin):
    list_display = ("name", "consumer", "tenant", "created_at")
    list_filter = (("tenant", admin.RelatedOnlyFieldListFilter),)
    list_select_related = ("consumer", "tenant")
    search_fields = ("name", "description", "consumer__name")
    autocomplete_fields = ("consumer",)
    readonly_fields = ("created_at", "updated_at")
    fields = ("tenant", "consumer", "name", "description", "created_at", "updated_at")
    inlines = (APIKeyInline,)
    service = ModelService(arg="application", save=application_save, delete=application_delete)
    fixed_after_create = ("consumer",)
    actions = ["issue_key"]

    @admin.action(permissions=["change"], description="Issue a new key for each selected application")
    def issue_key(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        done = run_tool(self, request, queryset, ISSUE_KEY)
        if not done:
            return None
        return render_issued(request, self, [issued for _, issued in done], title="API keys issued")
