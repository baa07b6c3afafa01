"""Consumers, applications, keys, plans and subscriptions: every write goes through here.

Key plaintexts exist only in the ``IssuedKey`` these functions return; they
are never stored, logged or put in an audit snapshot.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apim.exceptions import IllegalTransition
from apim.models import API
from apim.services.common import audit_record, entity_delete, entity_save, locked_change, snapshot, tenant_config_bump

from . import keys
from .models import (
    SUBSCRIPTION_TRANSITIONS,
    APIKey,
    Application,
    Consumer,
    ConsumerStatus,
    Plan,
    Subscription,
    SubscriptionStatus,
)

if TYPE_CHECKING:
    from apim.models import Tenant
    from apim.services.common import Actor


@dataclass(frozen=True)
class IssuedKey:
    """A new key and its plaintext. Show ``plaintext`` once; it cannot be recovered."""

    key: APIKey
    plaintext: str

    def __repr__(self) -> str:  # keep the plaintext out of tracebacks and debug logs
        return f"IssuedKey(key={self.key.prefix!r}, plaintext='***')"


def consumer_create(*, tenant: Tenant, name: str, actor: Actor, **fields: Any) -> Consumer:
    return consumer_save(consumer=Consumer(tenant=tenant, name=name, **fields), actor=actor)


def consumer_save(*, consumer: Consumer, actor: Actor) -> Consumer:
    entity_save(instance=consumer, actor=actor)
    return consumer


def consumer_delete(*, consumer: Consumer, actor: Actor) -> None:
    entity_delete(instance=consumer, actor=actor)


def _consumer_set_status(*, consumer: Consumer, status: str, actor: Actor) -> Consumer:
    def change(locked: Consumer) -> list[str]:
        if locked.status == status:
            return []
        locked.status = status
        return ["status"]

    verb = "suspend" if status == ConsumerStatus.SUSPENDED else "activate"
    return locked_change(consumer, actor=actor, action=f"consumer.{verb}", change=change)


def consumer_suspend(*, consumer: Consumer, actor: Actor) -> Consumer:
    """Suspended consumers' keys stop working at the gateway; nothing is deleted."""
    return _consumer_set_status(consumer=consumer, status=ConsumerStatus.SUSPENDED, actor=actor)


def consumer_activate(*, consumer: Consumer, actor: Actor) -> Consumer:
    return _consumer_set_status(consumer=consumer, status=ConsumerStatus.ACTIVE, actor=actor)


def application_create(*, consumer: Consumer, name: str, actor: Actor, **fields: Any) -> Application:
    app = Application(tenant_id=consumer.tenant_id, consumer=consumer, name=name, **fields)
    return application_save(application=app, actor=actor)


def application_save(*, application: Application, actor: Actor) -> Application:
    entity_save(instance=application, actor=actor)
    return application


def application_delete(*, application: Application, actor: Actor) -> None:
    entity_delete(instance=application, actor=actor)


def _validate_expiry(expires_at: datetime | None) -> None:
    if expires_at is not None and expires_at <= timezone.now():
        raise ValidationError({"expires_at": "The expiry date must be in the future."})


def api_key_issue(
    *,
    application: Application,
    actor: Actor,
    name: str = "",
    scopes: Iterable[str] = (),
    allowed_apis: Iterable[API] = (),
    expires_at: datetime | None = None,
    rotated_from: APIKey | None = None,
) -> IssuedKey:
    """Create a key for ``application``; the plaintext is in the result and nowhere else."""
    _validate_expiry(expires_at)
    allowed = list(allowed_apis)
    foreign = [api for api in allowed if api.tenant_id != application.tenant_id]
    if foreign:
        raise ValidationError({"allowed_apis": "Allowed APIs must belong to the application's tenant."})
    generated = keys.generate()
    pepper_id = keys.current_pepper_id()
    key = APIKey(
        tenant_id=application.tenant_id,
        consumer_id=application.consumer_id,
        application=application,
        name=name,
        key_id=generated.key_id,
        prefix=generated.display_prefix,
        digest=keys.digest(generated.plaintext, pepper_id=pepper_id),
        pepper_id=pepper_id,
        scopes=list(scopes),
        expires_at=expires_at,
        rotated_from=rotated_from,
        created_by=actor if actor is not None and getattr(actor, "pk", None) else None,
    )
    with transaction.atomic():
        key.full_clean()
        key.save()
        key.allowed_apis.set(allowed)
        audit_record(
            tenant=application.tenant, actor=actor, action="apikey.issue", obj=key, before=None, after=snapshot(key)
        )
        tenant_config_bump(tenant=application.tenant)
    return IssuedKey(key=key, plaintext=generated.plaintext)


# Passed as ``expires_at`` to leave the expiry as it is (``None`` clears it).
UNCHANGED: Any = object()


def api_key_update(
    *,
    key: APIKey,
    actor: Actor,
    name: str | None = None,
    scopes: Iterable[str] | None = None,
    allowed_apis: Iterable[API] | None = None,
    expires_at: datetime | None = UNCHANGED,
) -> APIKey:
    """Change a key's name, scopes, allowed APIs or expiry (never its secret).

    The key is reloaded under a row lock, so the audit's "before" is what was
    stored even if the caller's instance already carries edits.
    """
    with transaction.atomic():
        stored = APIKey.objects.select_for_update().get(pk=key.pk)
        before = snapshot(stored)
        if name is not None:
            stored.name = name
        if scopes is not None:
            stored.scopes = list(scopes)
        if expires_at is not UNCHANGED:
            _validate_expiry(expires_at)
            stored.expires_at = expires_at
        stored.full_clean()
        stored.save()
        if allowed_apis is not None:
            allowed = list(allowed_apis)
            if any(api.tenant_id != stored.tenant_id for api in allowed):
                raise ValidationError({"allowed_apis": "Allowed APIs must belong to the key's tenant."})
            stored.allowed_apis.set(allowed)
        audit_record(
            tenant=stored.tenant, actor=actor, action="apikey.update", obj=stored, before=before, after=snapshot(stored)
        )
        tenant_config_bump(tenant=stored.tenant)
    key.refresh_from_db()
    return key


def api_key_revoke(*, key: APIKey, actor: Actor) -> APIKey:
    """Stop a key at once. Revoking twice is harmless."""

    def change(locked: APIKey) -> list[str]:
        if not locked.active:
            return []
        locked.active = False
        locked.revoked_at = timezone.now()
        return ["active", "revoked_at"]

    return locked_change(key, actor=actor, action="apikey.revoke", change=change)


def api_key_rotate(*, key: APIKey, actor: Actor, grace: timedelta | None = None) -> IssuedKey:
    """Issue a successor with the same scopes, APIs and expiry; the old key lives for ``grace``.

    The default grace (``API_KEY_ROTATION_GRACE_SECONDS``, 24 h) gives clients
    time to switch; ``grace=timedelta(0)`` ends the old key now. A revoked or
    expired key cannot be rotated (issue a new one instead), and a key already
    rotated cannot be rotated again (rotate its successor).
    """
    grace = settings.APIM_KEY_ROTATION_GRACE if grace is None else grace
    if grace < timedelta(0):
        raise ValidationError({"grace": "The grace period cannot be negative."})
    with transaction.atomic():
        old = APIKey.objects.select_for_update().get(pk=key.pk)
        if not old.is_usable:
            raise IllegalTransition(f"Key {old.prefix} is {old.state} and cannot be rotated; issue a new key.")
        if APIKey.objects.filter(rotated_from=old).exists():
            raise IllegalTransition(f"Key {old.prefix} was already rotated; rotate its successor instead.")
        issued = api_key_issue(
            application=old.application,
            actor=actor,
            name=old.name,
            scopes=old.scopes,
            allowed_apis=old.allowed_apis.all(),
            expires_at=old.expires_at,
            rotated_from=old,
        )
        before = snapshot(old)
        grace_end = timezone.now() + grace
        if old.expires_at is None or old.expires_at > grace_end:
            old.expires_at = grace_end
        old.save(update_fields=["expires_at", "updated_at"])
        audit_record(
            tenant=old.tenant, actor=actor, action="apikey.rotate", obj=old, before=before, after=snapshot(old)
        )
    key.refresh_from_db()
    return issued


def api_key_delete(*, key: APIKey, actor: Actor) -> None:
    entity_delete(instance=key, actor=actor)


def plan_create(*, tenant: Tenant, name: str, actor: Actor, **fields: Any) -> Plan:
    return plan_save(plan=Plan(tenant=tenant, name=name, **fields), actor=actor)


def plan_save(*, plan: Plan, actor: Actor) -> Plan:
    entity_save(instance=plan, actor=actor)
    return plan


def plan_delete(*, plan: Plan, actor: Actor) -> None:
    entity_delete(instance=plan, actor=actor)


def subscription_create(*, application: Application, api: API, plan: Plan, actor: Actor) -> Subscription:
    """Subscribe; active at once unless the plan requires approval (then pending)."""
    sub = Subscription(tenant_id=application.tenant_id, application=application, api=api, plan=plan)
    if not plan.requires_approval:
        sub.status = SubscriptionStatus.ACTIVE
        sub.decided_at = timezone.now()
    return subscription_save(subscription=sub, actor=actor)


def subscription_save(*, subscription: Subscription, actor: Actor) -> Subscription:
    if subscription.api_id and subscription.api.status == "retired":
        raise ValidationError({"api": f"API {subscription.api} is retired and takes no subscriptions."})
    entity_save(instance=subscription, actor=actor)
    return subscription


def subscription_delete(*, subscription: Subscription, actor: Actor) -> None:
    entity_delete(instance=subscription, actor=actor)


def subscription_transition(*, subscription: Subscription, to: str, actor: Actor) -> Subscription:
    def change(locked: Subscription) -> list[str]:
        if to not in SubscriptionStatus.values:
            raise IllegalTransition(f"{to!r} is not a subscription status.")
        if to not in SUBSCRIPTION_TRANSITIONS[SubscriptionStatus(locked.status)]:
            raise IllegalTransition(f"Subscription {locked} is {locked.status} and cannot become {to}.")
        locked.status = to
        locked.decided_at = timezone.now()
        return ["status", "decided_at"]

    return locked_change(subscription, actor=actor, action=f"subscription.{to}", change=change)


def subscription_approve(*, subscription: Subscription, actor: Actor) -> Subscription:
    if subscription.status != SubscriptionStatus.PENDING:
        raise IllegalTransition(f"Only pending subscriptions can be approved; this one is {subscription.status}.")
    return subscription_transition(subscription=subscription, to=SubscriptionStatus.ACTIVE, actor=actor)


def subscription_reject(*, subscription: Subscription, actor: Actor) -> Subscription:
    return subscription_transition(subscription=subscription, to=SubscriptionStatus.REJECTED, actor=actor)


def subscription_suspend(*, subscription: Subscription, actor: Actor) -> Subscription:
    return subscription_transition(subscription=subscription, to=SubscriptionStatus.SUSPENDED, actor=actor)


def subscription_cancel(*, subscription: Subscription, actor: Actor) -> Subscription:
    return subscription_transition(subscription=subscription, to=SubscriptionStatus.CANCELLED, actor=actor)
