"""Read-only queries for consumers and keys. Every one is scoped by tenant."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import QuerySet
from django.utils import timezone

from apim.models import Tenant

from . import keys
from .models import APIKey, Application, Consumer, ConsumerStatus, Plan, Subscription


@dataclass(frozen=True)
class KeyCheck:
    """The outcome of checking a presented key: the key when valid, else why not.

    ``reason`` is one of ``key_invalid`` (unknown, malformed, another tenant's,
    revoked), ``key_expired`` or ``consumer_suspended``. Callers that answer
    clients must not reveal which, beyond what the policy issue allows.
    """

    key: APIKey | None
    reason: str | None

    @property
    def ok(self) -> bool:
        return self.key is not None


def api_key_verify(*, tenant: Tenant, plaintext: str) -> KeyCheck:
    """Check ``plaintext`` against the stored digests of ``tenant``'s keys (constant-time compare)."""
    parsed = keys.parse(plaintext)
    if parsed is None:
        return KeyCheck(None, "key_invalid")
    key = APIKey.objects.select_related("consumer", "application").filter(tenant=tenant, key_id=parsed.key_id).first()
    if key is None or not keys.matches(plaintext, stored_digest=key.digest, pepper_id=key.pepper_id):
        return KeyCheck(None, "key_invalid")
    if not key.active:
        return KeyCheck(None, "key_invalid")
    if key.expires_at is not None and key.expires_at <= timezone.now():
        return KeyCheck(None, "key_expired")
    if key.consumer.status != ConsumerStatus.ACTIVE:
        return KeyCheck(None, "consumer_suspended")
    return KeyCheck(key, None)


def api_key_list_for_application(*, application: Application) -> QuerySet[APIKey]:
    return APIKey.objects.filter(tenant_id=application.tenant_id, application=application).order_by("-created_at")


def api_key_get_by_prefix(*, tenant: Tenant, prefix: str) -> APIKey | None:
    """A key by its display prefix (``apim_<id>``) or bare public id."""
    key_id = prefix[len(keys.KEY_PREFIX) :] if prefix.startswith(keys.KEY_PREFIX) else prefix
    return APIKey.objects.filter(tenant=tenant, key_id=key_id).first()


def consumer_list(*, tenant: Tenant) -> QuerySet[Consumer]:
    return Consumer.objects.filter(tenant=tenant).select_related("user").order_by("name")


def application_list(*, tenant: Tenant) -> QuerySet[Application]:
    return Application.objects.filter(tenant=tenant).select_related("consumer").order_by("consumer__name", "name")


def api_key_list(*, tenant: Tenant) -> QuerySet[APIKey]:
    return APIKey.objects.filter(tenant=tenant).prefetch_related("allowed_apis").order_by("-created_at")


def plan_list(*, tenant: Tenant) -> QuerySet[Plan]:
    return Plan.objects.filter(tenant=tenant).order_by("name")


def subscription_list(*, tenant: Tenant) -> QuerySet[Subscription]:
    return Subscription.objects.filter(tenant=tenant).order_by("-created_at")
