"""What every mutation shares: validation, the audit row, the config bump.

Each service runs in ``transaction.atomic``, validates with ``full_clean`` (so
the admin, commands and API refuse bad input with the same messages), writes
one ``AuditEvent`` and, when the gateway's view of the tenant changed, bumps
the tenant's ``config_version`` and publishes the event after commit.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, TypeVar

from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.db import IntegrityError, models, transaction
from django.db.models import F, ProtectedError

from apim.events import publish_config_changed
from apim.exceptions import Conflict
from apim.models import AuditEvent, Tenant

if TYPE_CHECKING:
    from django.contrib.auth.models import AbstractBaseUser

    Actor = AbstractBaseUser | None

M = TypeVar("M", bound=models.Model)

# Never copied into an audit snapshot, whatever the model.
SECRET_FIELDS = frozenset({"digest", "password", "plaintext", "secret"})


def actor_label(actor: Actor) -> str:
    if actor is None:
        return "system"
    return getattr(actor, "get_username", lambda: str(actor))()


def snapshot(instance: models.Model) -> dict[str, Any]:
    """A JSON-safe dict of the instance's concrete fields (and many-to-many ids), secrets left out."""
    data: dict[str, Any] = {}
    for field in instance._meta.concrete_fields:
        if field.name in SECRET_FIELDS:
            continue
        data[field.attname] = field.value_from_object(instance)
    if instance.pk is not None and not instance._state.adding:
        for field in instance._meta.many_to_many:
            data[field.name] = sorted(str(pk) for pk in getattr(instance, field.name).values_list("pk", flat=True))
    redact = getattr(instance, "audit_redact", None)  # a model's secrets inside a field (policy configs)
    if redact is not None:
        data = redact(data)
    return json.loads(json.dumps(data, cls=DjangoJSONEncoder))


def snapshot_from_db(instance: models.Model) -> dict[str, Any] | None:
    """The stored state of ``instance`` (before the caller's unsaved edits), or None if new."""
    if instance.pk is None or instance._state.adding:
        return None
    stored = type(instance)._default_manager.filter(pk=instance.pk).first()
    return snapshot(stored) if stored is not None else None


def audit_record(
    *,
    tenant: Tenant | None,
    actor: Actor,
    action: str,
    obj: models.Model,
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> AuditEvent:
    return AuditEvent.objects.create(
        tenant=tenant,
        actor=actor if actor is not None and getattr(actor, "pk", None) else None,
        actor_label=actor_label(actor)[:200],
        action=action,
        object_type=obj._meta.label_lower,
        object_id=str(obj.pk),
        object_repr=str(obj)[:200],
        before=before,
        after=after,
    )


def tenant_config_bump(*, tenant: Tenant) -> int:
    """Increment the tenant's config version; publish the event once the transaction commits."""
    Tenant.objects.filter(pk=tenant.pk).update(config_version=F("config_version") + 1)
    version = Tenant.objects.values_list("config_version", flat=True).get(pk=tenant.pk)
    tenant.config_version = version
    tenant_id = str(tenant.pk)
    transaction.on_commit(lambda: publish_config_changed(tenant_id=tenant_id, version=version))
    return version


def validated_save(instance: models.Model) -> None:
    """``full_clean`` then save; a unique race that slips past validation becomes a ValidationError."""
    instance.full_clean()
    try:
        with transaction.atomic():
            instance.save()
    except IntegrityError as exc:
        raise ValidationError(f"{instance._meta.verbose_name} conflicts with an existing one: {exc}") from None


def entity_save(*, instance: models.Model, actor: Actor, config: bool = True) -> models.Model:
    """Create or update a tenant-owned row with validation, audit and (optionally) a config bump."""
    with transaction.atomic():
        before = snapshot_from_db(instance)
        validated_save(instance)
        tenant = _tenant_of(instance)
        verb = "create" if before is None else "update"
        audit_record(
            tenant=tenant,
            actor=actor,
            action=f"{instance._meta.model_name}.{verb}",
            obj=instance,
            before=before,
            after=snapshot(instance),
        )
        if config and tenant is not None:
            tenant_config_bump(tenant=tenant)
    return instance


def locked_change(
    instance: M, *, actor: Actor, action: str, change: Callable[[M], Iterable[str]], config: bool = True
) -> M:
    """A guarded state change: lock the stored row, let ``change`` check and edit it, record it.

    ``change`` receives the locked row, raises to refuse, and returns the fields
    it set (empty: nothing to do, nothing recorded). The stored row is the
    audit's "before", whatever edits the caller's instance carries.
    """
    with transaction.atomic():
        locked = type(instance)._default_manager.select_for_update().get(pk=instance.pk)
        before = snapshot(locked)
        fields = list(change(locked))
        if fields:
            locked.save(update_fields=[*fields, "updated_at"])
            tenant = _tenant_of(locked)
            audit_record(tenant=tenant, actor=actor, action=action, obj=locked, before=before, after=snapshot(locked))
            if config and tenant is not None:
                tenant_config_bump(tenant=tenant)
    instance.refresh_from_db()
    return instance


def entity_delete(*, instance: models.Model, actor: Actor, config: bool = True) -> None:
    with transaction.atomic():
        tenant = _tenant_of(instance)
        before = snapshot(instance)
        audit_record(
            tenant=tenant,
            actor=actor,
            action=f"{instance._meta.model_name}.delete",
            obj=instance,
            before=before,
            after=None,
        )
        try:
            with transaction.atomic():
                instance.delete()
        except ProtectedError as exc:
            users = ", ".join(sorted(str(obj) for obj in exc.protected_objects)[:5])
            raise Conflict(
                f"{instance._meta.verbose_name} {instance} is still used by: {users}.", code="in_use"
            ) from None
        if config and tenant is not None:
            tenant_config_bump(tenant=tenant)


def _tenant_of(instance: models.Model) -> Tenant | None:
    if isinstance(instance, Tenant):
        return instance
    tenant_id = getattr(instance, "tenant_id", None)
    return Tenant.objects.get(pk=tenant_id) if tenant_id else None
