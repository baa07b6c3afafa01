"""Tenants, their gateway hostnames and memberships; the user admin stays superuser-only."""

from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import get_user_model
from django.contrib.auth.admin import GroupAdmin, UserAdmin
from django.contrib.auth.models import Group
from django.http import HttpRequest

from apim.models import Membership, Tenant, TenantHost
from apim.services.tenants import (
    membership_remove,
    membership_save,
    tenant_delete,
    tenant_host_remove,
    tenant_host_save,
    tenant_save,
)

from .mixins import ModelService, TenantScopedAdmin, TenantScopedInline


class TenantHostInline(TenantScopedInline, admin.TabularInline):
    model = TenantHost
    fields = ("host",)
    service = ModelService(arg="entry", save=tenant_host_save, delete=tenant_host_remove)


@admin.register(Tenant)
class TenantAdmin(TenantScopedAdmin):
    """Tenant operators may view and rename their own tenant; only superusers create or delete tenants."""

    list_display = ("slug", "name", "is_default", "config_version", "created_at")
    list_filter = ("is_default",)
    search_fields = ("slug", "name", "hosts__host")
    readonly_fields = ("config_version", "created_at", "updated_at")
    fields = ("slug", "name", "is_default", "config_version", "created_at", "updated_at")
    inlines = (TenantHostInline,)
    service = ModelService(arg="tenant", save=tenant_save, delete=tenant_delete)

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser

    def get_readonly_fields(self, request: HttpRequest, obj: Tenant | None = None) -> tuple:
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is not None:
            fields += ("slug",)  # gateways and commands know the tenant by its slug
        if not request.user.is_superuser:
            fields += ("is_default",)  # serving unmatched hosts affects every tenant
        return fields


@admin.register(Membership)
class MembershipAdmin(TenantScopedAdmin):
    """Owners manage who operates their tenant; admins may look."""

    owner_writes = True
    list_display = ("user", "tenant", "role", "created_at")
    list_filter = ("role", ("tenant", admin.RelatedOnlyFieldListFilter))
    list_select_related = ("user", "tenant")
    search_fields = ("user__username", "user__email", "tenant__slug")
    fields = ("tenant", "user", "role", "created_at")
    readonly_fields = ("created_at",)
    fixed_after_create = ("user",)
    service = ModelService(arg="membership", save=membership_save, delete=membership_remove)


class SuperuserOnly:
    """Accounts are installation-wide: tenant operators never see or change them here."""

    def has_module_permission(self, request: HttpRequest) -> bool:
        return request.user.is_superuser

    def has_view_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser

    def has_add_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return request.user.is_superuser


class SuperuserOnlyUserAdmin(SuperuserOnly, UserAdmin):
    pass


class SuperuserOnlyGroupAdmin(SuperuserOnly, GroupAdmin):
    pass


for _model, _admin in ((get_user_model(), SuperuserOnlyUserAdmin), (Group, SuperuserOnlyGroupAdmin)):
    if admin.site.is_registered(_model):
        admin.site.unregister(_model)
    admin.site.register(_model, _admin)
