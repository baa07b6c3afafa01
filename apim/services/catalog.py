"""APIs, their lifecycle and routes; upstreams and their targets."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from apim.exceptions import IllegalTransition
from apim.models import API, API_TRANSITIONS, ApiStatus, Route, Target, Tenant, Upstream
from apim.target_addresses import private_targets_allowed, url_refusal
from apim.validators import validate_upstream_url

from .common import entity_delete, entity_save, locked_change

if TYPE_CHECKING:
    from .common import Actor

# When each lifecycle status is entered, the matching timestamp is set.
_STATUS_TIMESTAMP = {
    ApiStatus.PUBLISHED: "published_at",
    ApiStatus.DEPRECATED: "deprecated_at",
    ApiStatus.RETIRED: "retired_at",
}


def _lock_tenant(tenant_id: Any) -> None:
    """Serialise catalog writes of one tenant so the base-path check cannot race."""
    list(Tenant.objects.select_for_update().filter(pk=tenant_id).values_list("pk", flat=True))


def api_create(*, tenant: Tenant, actor: Actor, **fields: Any) -> API:
    return api_save(api=API(tenant=tenant, **fields), actor=actor)


def api_save(*, api: API, actor: Actor) -> API:
    """Create or update an API (not its status: that moves only through ``api_transition``)."""
    with transaction.atomic():
        _lock_tenant(api.tenant_id)
        entity_save(instance=api, actor=actor)
    return api


def api_delete(*, api: API, actor: Actor) -> None:
    """Only drafts and retired APIs may be deleted; live ones are deprecated and retired first."""
    if api.status in (ApiStatus.PUBLISHED, ApiStatus.DEPRECATED):
        raise IllegalTransition(
            f"API {api} is {api.status}; deprecate and retire it before deleting it.", code="api_live"
        )
    entity_delete(instance=api, actor=actor)


def api_allowed_transitions(*, api: API) -> tuple[str, ...]:
    return API_TRANSITIONS[ApiStatus(api.status)]


def api_transition(*, api: API, to: str, actor: Actor) -> API:
    """Move an API along ``draft → published → deprecated → retired``; nothing else is legal.

    Publishing needs an upstream with at least one enabled target, so a
    published API can always be routed somewhere.
    """

    def change(locked: API) -> list[str]:
        if to not in ApiStatus.values:
            raise IllegalTransition(f"{to!r} is not a lifecycle status; use {', '.join(ApiStatus.values)}.")
        allowed = API_TRANSITIONS[ApiStatus(locked.status)]
        if to not in allowed:
            hint = f"it can only become {' or '.join(allowed)}" if allowed else "retired is final"
            raise IllegalTransition(f"API {locked} is {locked.status} and cannot become {to}: {hint}.")
        if to == ApiStatus.PUBLISHED:
            if locked.upstream_id is None:
                raise IllegalTransition(f"API {locked} has no upstream; set one before publishing.", code="no_upstream")
            if not locked.upstream.targets.filter(enabled=True).exists():
                raise IllegalTransition(
                    f"Upstream {locked.upstream} of API {locked} has no enabled target; add one before publishing.",
                    code="no_target",
                )
        stamp = _STATUS_TIMESTAMP[ApiStatus(to)]
        locked.status = to
        setattr(locked, stamp, timezone.now())
        return ["status", stamp]

    return locked_change(api, actor=actor, action=f"api.{to}", change=change)


def api_publish(*, api: API, actor: Actor) -> API:
    return api_transition(api=api, to=ApiStatus.PUBLISHED, actor=actor)


def api_deprecate(*, api: API, actor: Actor) -> API:
    return api_transition(api=api, to=ApiStatus.DEPRECATED, actor=actor)


def api_retire(*, api: API, actor: Actor) -> API:
    return api_transition(api=api, to=ApiStatus.RETIRED, actor=actor)


def route_save(*, route: Route, actor: Actor) -> Route:
    entity_save(instance=route, actor=actor)
    return route


def route_delete(*, route: Route, actor: Actor) -> None:
    entity_delete(instance=route, actor=actor)


def upstream_create(
    *, tenant: Tenant, actor: Actor, targets: list[str] | tuple[str, ...] = (), **fields: Any
) -> Upstream:
    with transaction.atomic():
        upstream = upstream_save(upstream=Upstream(tenant=tenant, **fields), actor=actor)
        for url in targets:
            target_save(target=Target(tenant=tenant, upstream=upstream, url=url), actor=actor)
    return upstream


def upstream_save(*, upstream: Upstream, actor: Actor) -> Upstream:
    entity_save(instance=upstream, actor=actor)
    return upstream


def upstream_delete(*, upstream: Upstream, actor: Actor) -> None:
    entity_delete(instance=upstream, actor=actor)


def target_save(*, target: Target, actor: Actor) -> Target:
    """Create or update a target; its host must not lead back into the gateway (SSRF).

    Unless ``APIM_ALLOW_PRIVATE_TARGETS``, every address the host resolves to
    is checked (``apim.target_addresses``): loopback, unspecified, link-local
    and the deployment's own ports are refused as a field error on ``url``.
    The gateway checks again when it connects (DNS may change in between).
    Only a new target or a changed URL is checked: a target saved while the
    setting allowed it can still be edited (weight, enabled) or deleted.
    """
    if target._state.adding or target.url != _stored_url(target):
        target_url_check(url=target.url)
    entity_save(instance=target, actor=actor)
    return target


def _stored_url(target: Target) -> str | None:
    return Target.objects.filter(pk=target.pk).values_list("url", flat=True).first()


def target_url_check(*, url: str) -> None:
    """Raise a ``url`` field error when ``url`` points at an address targets may not use."""
    if private_targets_allowed():
        return
    try:
        validate_upstream_url(url)
    except ValidationError:
        return  # full_clean reports the malformed URL in the validator's own words
    reason = url_refusal(url)
    if reason is not None:
        raise ValidationError(
            {
                "url": ValidationError(
                    "%(reason)s. Targets may not point at loopback, link-local (cloud metadata) or unspecified "
                    "addresses, nor at the gateway's own ports, unless APIM_ALLOW_PRIVATE_TARGETS is set.",
                    code="url_forbidden_address",
                    params={"reason": reason[:1].upper() + reason[1:]},
                )
            }
        )


def target_delete(*, target: Target, actor: Actor) -> None:
    entity_delete(instance=target, actor=actor)
