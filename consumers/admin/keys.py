"""API keys: issued, updated, rotated and revoked only through the key services.

The add page issues a key with ``api_key_issue`` and answers with the "key
issued" page; the change page edits name, scopes, allowed APIs and expiry
with ``api_key_update``. The digest and pepper id never appear in any form,
list or read-only field.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.utils import timezone

from apim.admin.mixins import ModelService, TenantScopedAdmin, adopt
from apim.admin.tools import ObjectTool, ObjectToolsMixin, run_tool, service_action
from consumers.models import APIKey
from consumers.services import UNCHANGED, api_key_delete, api_key_issue, api_key_revoke, api_key_rotate, api_key_update

from .issued import pop_issued, remember_issued, render_issued

SCOPES_HELP = (
    'A JSON list of scope strings, e.g. ["orders:read", "orders:write"]. '
    "Each is 1-64 letters, digits and : . _ * / -. Leave empty for no scopes."
)

REVOKE = ObjectTool("revoke", "Revoke", "Revoked", api_key_revoke, "key", lambda key: key.active)
ROTATE = ObjectTool("rotate", "Rotate", "Rotated", api_key_rotate, "key", lambda key: key.is_usable)


class APIKeyForm(forms.ModelForm):
    """Checks the service would make anyway, so they show on the right field."""

    class Meta:
        model = APIKey
        fields = ("application", "name", "scopes", "allowed_apis", "expires_at")
        help_texts = {"scopes": SCOPES_HELP}

    def clean_expires_at(self) -> Any:
        expires_at = self.cleaned_data.get("expires_at")
        if "expires_at" in self.changed_data:
            if expires_at is not None and expires_at <= timezone.now():
                raise forms.ValidationError("The expiry date must be in the future.")
            if expires_at is None and self.instance.expires_at is not None:
                raise forms.ValidationError("An expiry cannot be removed; issue a new key without one instead.")
        return expires_at

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        application = cleaned.get("application") or getattr(self.instance, "application", None)
        apis = cleaned.get("allowed_apis") or []
        if application is not None and any(api.tenant_id != application.tenant_id for api in apis):
            self.add_error("allowed_apis", "Allowed APIs must belong to the application's tenant.")
        return cleaned


@admin.register(APIKey)
class APIKeyAdmin(ObjectToolsMixin, TenantScopedAdmin):
    form = APIKeyForm
    list_display = ("prefix", "name", "application", "consumer", "tenant", "state", "expires_at", "last_used_at")
    list_filter = ("active", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("application__consumer", "consumer", "tenant")
    search_fields = ("prefix", "name", "application__name", "consumer__name")
    filter_horizontal = ("allowed_apis",)
    readonly_fields = (
        "prefix",
        "state",
        "application",
        "consumer",
        "tenant",
        "active",
        "revoked_at",
        "rotated_from",
        "created_by",
        "created_at",
        "last_used_at",
    )
    service = ModelService(arg="key", save=api_key_update, delete=api_key_delete)
    object_tools = (ROTATE, REVOKE)
    actions = [service_action(REVOKE), "rotate"]

    def get_fieldsets(self, request: HttpRequest, obj: APIKey | None = None) -> Any:
        if obj is None:
            return ((None, {"fields": ("application", "name", "scopes", "allowed_apis", "expires_at")}),)
        return (
            (None, {"fields": ("prefix", "name", "application", "consumer", "tenant", "state")}),
            ("Access", {"fields": ("scopes", "allowed_apis", "expires_at")}),
            (
                "Record",
                {"fields": ("active", "revoked_at", "rotated_from", "created_by", "created_at", "last_used_at")},
            ),
        )

    def get_readonly_fields(self, request: HttpRequest, obj: APIKey | None = None) -> tuple:
        return () if obj is None else super().get_readonly_fields(request, obj)

    @admin.display(description="State")
    def state(self, obj: APIKey) -> str:
        return obj.state

    def save_model(self, request: HttpRequest, obj: APIKey, form: Any, change: bool) -> None:
        data = form.cleaned_data
        if not change:
            issued = api_key_issue(
                application=data["application"],
                name=data["name"],
                scopes=data["scopes"],
                allowed_apis=data["allowed_apis"],
                expires_at=data["expires_at"],
                actor=request.user,
            )
            remember_issued(request, issued)
            adopt(obj, issued.key)
            return
        stored = APIKey(pk=obj.pk)  # the form already applied its edits to ``obj``; the service reloads
        api_key_update(
            key=stored,
            name=data["name"],
            scopes=data["scopes"],
            allowed_apis=data["allowed_apis"],
            expires_at=data["expires_at"] if "expires_at" in form.changed_data else UNCHANGED,
            actor=request.user,
        )
        adopt(obj, stored)

    def save_related(self, request: HttpRequest, form: Any, formsets: Any, change: bool) -> None:
        """Allowed APIs were set by the service; the form must not write them again."""

    def response_add(self, request: HttpRequest, obj: APIKey, post_url_continue: str | None = None) -> HttpResponse:
        issued = pop_issued(request)
        if not issued:
            return super().response_add(request, obj, post_url_continue)
        return render_issued(request, self, issued, title="API key issued")

    @admin.action(permissions=["change"], description="Rotate selected API keys")
    def rotate(self, request: HttpRequest, queryset: Any) -> HttpResponse | None:
        done = run_tool(self, request, queryset, ROTATE)
        if not done:
            return None
        return render_issued(request, self, [issued for _, issued in done], title="API keys rotated")

    def object_tool_response(self, request: HttpRequest, obj: Any, tool: ObjectTool, done: list) -> HttpResponse:
        if tool is ROTATE and done:
            return render_issued(request, self, [issued for _, issued in done], title="API key rotated")
        return super().object_tool_response(request, obj, tool, done)
