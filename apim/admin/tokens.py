"""Personal access tokens in the console: find them, see their state, revoke them.

Tokens are issued where their plaintext can be shown once (the REST API's
``POST /api/v1/tokens/`` and ``manage.py token_issue``), so there is no add
page here; nor a delete: a revoked token stays listed, as evidence. The
digest and pepper id appear nowhere: not in lists, forms or read-only fields.

Who sees what (``access_token_list_for_operator``): a superuser every token; a
staff user their own and those of the members of tenants they operate (owner
or admin). The revoke action is allowed on every token the user can see; a
direct URL to any other token is a 404.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin, messages
from django.db import models
from django.http import Http404, HttpRequest, HttpResponse
from django.utils import timezone

from apim.models import PersonalAccessToken
from apim.selectors import access_token_list_for_operator, tenant_ids_for_user
from apim.services.tokens import token_revoke

from .mixins import SERVICE_ERRORS, error_text

# Every field an operator may see; ``digest`` and ``pepper_id`` are deliberately absent.
SHOWN_FIELDS = (
    "name",
    "user",
    "prefix",
    "state",
    "read_only",
    "expires_at",
    "revoked_at",
    "last_used_at",
    "created_at",
)


class TokenStateFilter(admin.SimpleListFilter):
    title = "state"
    parameter_name = "state"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        return [("active", "Active"), ("expired", "Expired"), ("revoked", "Revoked")]

    def queryset(self, request: HttpRequest, queryset: models.QuerySet) -> models.QuerySet:
        now = timezone.now()
        value = self.value()
        if value == "active":
            return queryset.filter(active=True, expires_at__gt=now)
        if value == "expired":
            return queryset.filter(active=True, expires_at__lte=now)
        if value == "revoked":
            return queryset.filter(active=False)
        return queryset


@admin.register(PersonalAccessToken)
class PersonalAccessTokenAdmin(admin.ModelAdmin):
    list_display = ("prefix", "name", "user", "state", "read_only", "expires_at", "last_used_at", "created_at")
    list_filter = (TokenStateFilter, "read_only")
    list_select_related = ("user",)
    search_fields = ("prefix", "name", "user__username", "user__email")
    fields = SHOWN_FIELDS
    readonly_fields = SHOWN_FIELDS
    ordering = ("-created_at",)
    actions = ["revoke"]

    @admin.display(description="State")
    def state(self, obj: PersonalAccessToken) -> str:
        return obj.state

    def _get_obj_does_not_exist_redirect(self, request: HttpRequest, opts: Any, object_id: str) -> HttpResponse:
        raise Http404("No personal access token matches the given query.")  # as for every scoped apim page

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        return access_token_list_for_operator(user=request.user).select_related("user")

    def has_module_permission(self, request: HttpRequest) -> bool:
        """Superusers, and staff who operate or view at least one tenant (as for every apim page)."""
        user = request.user
        if not (user.is_active and user.is_staff):
            return False
        return user.is_superuser or bool(tenant_ids_for_user(user))

    def has_view_permission(self, request: HttpRequest, obj: PersonalAccessToken | None = None) -> bool:
        if not self.has_module_permission(request):
            return False
        return obj is None or self.get_queryset(request).filter(pk=obj.pk).exists()

    def has_revoke_permission(self, request: HttpRequest, obj: PersonalAccessToken | None = None) -> bool:
        return self.has_view_permission(request, obj)

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False  # issued where the plaintext can be shown once: the REST API or manage.py token_issue

    def has_change_permission(self, request: HttpRequest, obj: PersonalAccessToken | None = None) -> bool:
        return False  # nothing is editable; revoking is an action

    def has_delete_permission(self, request: HttpRequest, obj: PersonalAccessToken | None = None) -> bool:
        return False  # a revoked token stays listed

    @admin.action(permissions=["revoke"], description="Revoke selected personal access tokens")
    def revoke(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        """Revoke each selected token (the queryset is already scoped); already revoked ones are skipped."""
        done = []
        for token in queryset:
            if not token.active:
                continue
            try:
                token_revoke(token=token, actor=request.user)
            except SERVICE_ERRORS as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
                continue
            self.log_change(request, token, "Revoked.")
            done.append(str(token))
        if done:
            noun = "token" if len(done) == 1 else "tokens"
            self.message_user(request, f"Revoked {len(done)} {noun}: {', '.join(done)}.", messages.SUCCESS)
        else:
            self.message_user(request, "No active token was selected.", messages.WARNING)
