"""What every apim admin shares: tenant scoping and writes through services.

Two rules hold for every model in the console:

* **Scoping.** A superuser sees everything. Any other staff user sees only
  rows of tenants where they hold a membership: owners and admins may write,
  viewers may only look. The same scope applies to changelists, foreign-key
  and many-to-many choices, autocomplete results and direct URLs; another
  tenant's object is a 404, never a "perhaps it was deleted" redirect that
  would confirm it exists.
* **Services.** The admin never calls ``save()`` or ``delete()`` itself. Each
  admin (and inline) names its ``ModelService``; saving, deleting, inline
  formsets and the bulk "delete selected" action all go through it, so the
  console validates, audits and bumps the tenant config exactly as the
  commands and the REST API do.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.actions import delete_selected as django_delete_selected
from django.contrib.admin.utils import unquote
from django.contrib.auth import get_user_model
from django.core.exceptions import FieldDoesNotExist, PermissionDenied, ValidationError
from django.db import models, transaction
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from apim.exceptions import ApplicationError
from apim.models import Role, Tenant
from apim.selectors import tenant_ids_for_user

from .fields import DefaultingJSONField, UsernameField

# Errors a service raises for bad input or a broken rule; the console shows them, never a 500.
SERVICE_ERRORS = (ApplicationError, ValidationError)


def error_text(exc: Exception) -> str:
    """One readable line for a service error."""
    if isinstance(exc, ApplicationError):
        return exc.message
    if isinstance(exc, ValidationError):
        return " ".join(exc.messages)
    return str(exc)


@dataclass(frozen=True)
class ModelService:
    """The service functions that save and delete one model.

    ``arg`` is the keyword the services take the instance by (``api_save(api=...)``).
    """

    arg: str
    save: Callable[..., Any]
    delete: Callable[..., Any] | None = None

    def run_save(self, obj: models.Model, actor: Any) -> Any:
        return self.save(**{self.arg: obj}, actor=actor)

    def run_delete(self, obj: models.Model, actor: Any) -> Any:
        if self.delete is None:
            raise PermissionDenied(f"{obj._meta.verbose_name} rows are never deleted.")
        return self.delete(**{self.arg: obj}, actor=actor)


def adopt(target: models.Model, source: models.Model) -> None:
    """Copy a row a service created into the admin's unsaved instance.

    Services that build their own instance (``api_key_issue``,
    ``subscription_create``) return it; the admin goes on to log and redirect
    using the form's instance, so that one must carry the saved row's values.
    """
    for field in source._meta.concrete_fields:
        setattr(target, field.attname, getattr(source, field.attname))
    target._state.adding = False
    target._state.db = source._state.db


def tenant_id_of(obj: models.Model) -> Any:
    """The tenant a row belongs to (a tenant belongs to itself)."""
    return obj.pk if isinstance(obj, Tenant) else getattr(obj, "tenant_id", None)


def _is_tenant_owned(model: type[models.Model]) -> bool:
    try:
        field = model._meta.get_field("tenant")
    except FieldDoesNotExist:
        return False
    return getattr(field, "related_model", None) is Tenant


class TenantScopeMixin:
    """Permissions, querysets and choices limited to the user's tenants.

    Shared by model admins and inlines. For an inline, ``obj`` in the
    ``has_*_permission`` methods is the parent row, whose tenant is the
    inline rows' tenant.

    ``owner_writes`` narrows writing to owners (memberships: admins may only look).
    """

    owner_writes = False
    service: ModelService | None = None

    def tenant_ids(self, request: HttpRequest, *, write: bool) -> set:
        """Tenant ids the user may read (or write), computed once per request."""
        cache = request.__dict__.setdefault("_apim_tenant_ids", {})
        key = ("owner" if self.owner_writes else "write") if write else "read"
        if key not in cache:
            if key == "owner":
                cache[key] = tenant_ids_for_user(request.user, roles=(Role.OWNER,))
            else:
                cache[key] = tenant_ids_for_user(request.user, write=write)
        return cache[key]

    def tenant_allowed(self, request: HttpRequest, obj: models.Model | None, *, write: bool) -> bool:
        if request.user.is_superuser:
            return True
        ids = self.tenant_ids(request, write=write)
        if obj is None:
            return bool(ids)
        return tenant_id_of(obj) in ids

    def has_view_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.tenant_allowed(request, obj, write=False)

    def has_add_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.tenant_allowed(request, obj, write=True)

    def has_change_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.tenant_allowed(request, obj, write=True)

    def has_delete_permission(self, request: HttpRequest, obj: models.Model | None = None) -> bool:
        return self.tenant_allowed(request, obj, write=True)

    def has_module_permission(self, request: HttpRequest) -> bool:
        return self.tenant_allowed(request, None, write=False)

    def get_queryset(self, request: HttpRequest) -> models.QuerySet:
        queryset = super().get_queryset(request)  # type: ignore[misc]
        if request.user.is_superuser:
            return queryset
        lookup = "pk__in" if self.model is Tenant else "tenant__in"  # type: ignore[attr-defined]
        return queryset.filter(**{lookup: self.tenant_ids(request, write=False)})

    def writable_queryset(self, request: HttpRequest, model: type[models.Model]) -> models.QuerySet:
        """Rows of ``model`` the user may attach things to: those of tenants they operate."""
        queryset = model._default_manager.all()
        if request.user.is_superuser:
            return queryset
        lookup = "pk__in" if model is Tenant else "tenant__in"
        return queryset.filter(**{lookup: self.tenant_ids(request, write=True)})

    def formfield_for_dbfield(self, db_field: models.Field, request: HttpRequest, **kwargs: Any) -> Any:
        if isinstance(db_field, models.JSONField) and not db_field.null:
            kwargs.setdefault("form_class", DefaultingJSONField)
            kwargs.setdefault("empty_factory", db_field.get_default)
        if (
            isinstance(db_field, models.ForeignKey)
            and db_field.related_model is get_user_model()
            and not request.user.is_superuser
        ):
            return UsernameField(
                required=not db_field.blank, label=db_field.verbose_name.capitalize(), help_text=db_field.help_text
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_foreignkey(self, db_field: models.ForeignKey, request: HttpRequest, **kwargs: Any) -> Any:
        related = db_field.related_model
        if related is Tenant or _is_tenant_owned(related):
            kwargs["queryset"] = self.writable_queryset(request, related)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)  # type: ignore[misc]

    def formfield_for_manytomany(self, db_field: models.ManyToManyField, request: HttpRequest, **kwargs: Any) -> Any:
        if _is_tenant_owned(db_field.related_model):
            kwargs["queryset"] = self.writable_queryset(request, db_field.related_model)
        return super().formfield_for_manytomany(db_field, request, **kwargs)  # type: ignore[misc]


class TenantScopedInline(TenantScopeMixin):
    """An inline whose rows take their tenant from the parent. Mix in before TabularInline."""

    extra = 0


class TenantScopedAdmin(TenantScopeMixin, admin.ModelAdmin):
    """The base of every tenant-scoped model admin in the console."""

    list_per_page = 50
    # Fields editable on the add page only (e.g. which consumer an application belongs to).
    fixed_after_create: tuple[str, ...] = ()

    # Scoping of single objects: another tenant's object does not exist.

    def _get_obj_does_not_exist_redirect(self, request: HttpRequest, opts: Any, object_id: str) -> HttpResponse:
        raise Http404(f"No {opts.verbose_name} matches the given query.")

    def get_readonly_fields(self, request: HttpRequest, obj: models.Model | None = None) -> tuple:
        """Fields fixed once the object exists: its tenant (an object never moves) and ``fixed_after_create``."""
        fields = tuple(super().get_readonly_fields(request, obj))
        if obj is None:
            return fields
        fixed = ("tenant", *self.fixed_after_create) if _is_tenant_owned(self.model) else self.fixed_after_create
        return fields + tuple(name for name in fixed if name not in fields)

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        """Preselect the tenant when the user operates exactly one."""
        initial = super().get_changeform_initial_data(request)
        if _is_tenant_owned(self.model) and not request.user.is_superuser:
            ids = self.tenant_ids(request, write=True)
            if len(ids) == 1:
                initial.setdefault("tenant", next(iter(ids)))
        return initial

    # Service errors at save time become form errors.

    def changeform_view(
        self, request: HttpRequest, object_id: str | None = None, form_url: str = "", extra_context: Any = None
    ) -> HttpResponse:
        """Run the form again with the service's error attached if saving was refused.

        The model form already runs ``full_clean``, but a service may refuse for
        a reason the form cannot see (a rule across rows, a lost unique race).
        Django's view runs in one transaction, so the failed attempt is rolled
        back entirely before the form is shown again with the error.
        """
        try:
            return super().changeform_view(request, object_id, form_url, extra_context)
        except SERVICE_ERRORS as exc:
            if request.method != "POST":
                raise
            request._apim_save_error = exc  # type: ignore[attr-defined]
            return super().changeform_view(request, object_id, form_url, extra_context)

    def get_form(self, request: HttpRequest, obj: models.Model | None = None, change: bool = False, **kwargs: Any):
        form_class = super().get_form(request, obj, change=change, **kwargs)
        error = getattr(request, "_apim_save_error", None)
        if error is None:
            return form_class

        def _post_clean(form: Any) -> None:
            form_class._post_clean(form)
            attach_error(form, error)

        return type(form_class.__name__, (form_class,), {"_post_clean": _post_clean})

    # Writes go through services.

    def save_model(self, request: HttpRequest, obj: models.Model, form: Any, change: bool) -> None:
        self.get_service().run_save(obj, request.user)

    def delete_model(self, request: HttpRequest, obj: models.Model) -> None:
        self.get_service().run_delete(obj, request.user)

    def save_formset(self, request: HttpRequest, form: Any, formset: Any, change: bool) -> None:
        """Save inline rows one by one through the inline's service, in the parent's tenant."""
        service = self._inline_service(formset.model)
        parent_tenant_id = tenant_id_of(form.instance)
        instances = formset.save(commit=False)
        for obj in formset.deleted_objects:
            service.run_delete(obj, request.user)
        for obj in instances:
            if _is_tenant_owned(type(obj)):
                obj.tenant_id = parent_tenant_id
            service.run_save(obj, request.user)
        formset.save_m2m()

    def delete_queryset(self, request: HttpRequest, queryset: models.QuerySet) -> None:
        """Delete each object through the service; a refusal is reported and the rest go on."""
        deleted = 0
        for obj in queryset:
            try:
                with transaction.atomic():
                    self.log_deletions(request, [obj])
                    self.delete_model(request, obj)
            except SERVICE_ERRORS as exc:
                self.message_user(request, error_text(exc), messages.ERROR)
            else:
                deleted += 1
        if deleted:
            self.message_user(request, f"Deleted {deleted} {self._plural(deleted)}.", messages.SUCCESS)

    def delete_view(self, request: HttpRequest, object_id: str, extra_context: Any = None) -> HttpResponse:
        """A refused delete goes back to the object with the service's reason.

        Another tenant's object is a 404 even where deleting is never allowed:
        Django would answer 403 before looking the object up.
        """
        if self.get_object(request, unquote(object_id)) is None:
            self._get_obj_does_not_exist_redirect(request, self.model._meta, object_id)
        try:
            return super().delete_view(request, object_id, extra_context)
        except SERVICE_ERRORS as exc:
            self.message_user(request, error_text(exc), messages.ERROR)
            opts = self.model._meta
            return HttpResponseRedirect(reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[object_id]))

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        actions = super().get_actions(request)
        if "delete_selected" in actions:
            actions["delete_selected"] = (delete_selected, "delete_selected", actions["delete_selected"][2])
        return actions

    def get_service(self) -> ModelService:
        if self.service is None:
            raise NotImplementedError(f"{type(self).__name__} names no service; it cannot write.")
        return self.service

    def _inline_service(self, model: type[models.Model]) -> ModelService:
        for inline in self.inlines:
            if inline.model is model and getattr(inline, "service", None) is not None:
                return inline.service
        raise NotImplementedError(f"No inline of {type(self).__name__} names a service for {model.__name__}.")

    def _plural(self, count: int) -> str:
        opts = self.model._meta
        return str(opts.verbose_name if count == 1 else opts.verbose_name_plural)


def attach_error(form: Any, exc: Exception) -> None:
    """Put a service error on the form: on its field when the form has it, else at the top."""
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        for field, errors in exc.error_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, error_text(exc))


@admin.action(permissions=["delete"], description="Delete selected %(verbose_name_plural)s")
def delete_selected(modeladmin: TenantScopedAdmin, request: HttpRequest, queryset: models.QuerySet) -> Any:
    """Django's bulk delete, except the deletion itself goes through ``delete_queryset``.

    Django logs every deletion and announces success before knowing whether
    the service refused one (a published API); here only what was really
    deleted is logged and announced. The confirmation and "protected objects"
    pages stay Django's own.
    """
    if not request.POST.get("post"):
        return django_delete_selected(modeladmin, request, queryset)
    _, _, perms_needed, protected = modeladmin.get_deleted_objects(queryset, request)
    if perms_needed or protected:
        return django_delete_selected(modeladmin, request, queryset)
    modeladmin.delete_queryset(request, queryset)
    return None
