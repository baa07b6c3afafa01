"""Builds the gateway snapshot from the database: the only gateway module that uses the ORM.

Runs in a worker thread (``gateway.reload``), never on the request path. The
fingerprint is read first, so a change committed while the snapshot is being
built moves the fingerprint past the loaded one and triggers another rebuild:
a snapshot can be briefly behind, never silently stale.
"""

from __future__ import annotations

import uuid
from collections.abc import Hashable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db import close_old_connections, connections, transaction
from django.db.models import Count, Max, Sum
from django.utils import timezone

from apim.models import API, ROUTABLE_STATUSES, Tenant, Upstream
from gateway.balancer import build_balancers
from gateway.config import GatewaySnapshot, UpstreamRuntime
from gateway.health import HealthRegistry
from gateway.models import TargetHealthReport
from gateway.reload import Loaded
from gateway.router import RouteTable
from gateway.snapshot import ApiSpec, RouteSpec, TenantSpec
from gateway.upstream.base import Timeouts
from gateway.upstream_spec import TargetSpec, UpstreamSpec
from policies.base import ApiInfo
from policies.engine import AttachmentSpec, PlanSpec, compile_chains
from policies.keystore import KeyRecord
from policies.models import PolicyAttachment


def config_fingerprint() -> Hashable:
    """Changes whenever any tenant's config version does, or a tenant comes or goes."""
    close_old_connections()
    row = Tenant.objects.aggregate(n=Count("id"), versions=Sum("config_version"), newest=Max("created_at"))
    return (row["n"], row["versions"] or 0, row["newest"].isoformat() if row["newest"] else None)


# A worker's report older than this is shown as stale; older than STALE_DROP it is deleted.
STALE_DROP = timedelta(minutes=5)


def report_health(gateway: str, described: dict[str, list[dict[str, Any]]]) -> int:
    """Replace this worker's target-health rows with ``described`` (from ``HealthRegistry.describe``)."""
    now = timezone.now()
    tenants = dict(Upstream.objects.filter(pk__in=list(described)).values_list("pk", "tenant_id"))
    rows = [
        TargetHealthReport(
            tenant_id=tenants[uuid.UUID(upstream_id)],
            upstream_id=upstream_id,
            gateway=gateway,
            target_url=target["url"][:500],
            state=target["state"],
            circuit=target["circuit"],
            consecutive_failures=target["consecutive_failures"],
            in_flight=target["in_flight"],
            ejected_until=(
                datetime.fromtimestamp(target["ejected_until"], tz=UTC) if target.get("ejected_until") else None
            ),
            reported_at=now,
        )
        for upstream_id, targets in described.items()
        if uuid.UUID(upstream_id) in tenants
        for target in targets
    ]
    with transaction.atomic():
        TargetHealthReport.objects.filter(gateway=gateway).delete()
        TargetHealthReport.objects.bulk_create(rows)
        TargetHealthReport.objects.filter(reported_at__lt=now - STALE_DROP).delete()
    return len(rows)


def clear_health(gateway: str) -> None:
    TargetHealthReport.objects.filter(gateway=gateway).delete()


def release_connections() -> None:
    """Close this thread's database connections (the watcher calls it on shutdown)."""
    connections.close_all()


def _upstream_spec(upstream: Upstream) -> UpstreamSpec:
    return UpstreamSpec.from_fields(
        id=upstream.pk,
        name=upstream.name,
        load_balancing=upstream.load_balancing,
        targets=[TargetSpec(url=t.url, weight=t.weight, enabled=t.enabled) for t in upstream.targets.all()],
        connect_timeout_ms=upstream.connect_timeout_ms,
        read_timeout_ms=upstream.read_timeout_ms,
        write_timeout_ms=upstream.write_timeout_ms,
        retries=upstream.retries,
        healthcheck_enabled=upstream.healthcheck_enabled,
        healthcheck_path=upstream.healthcheck_path,
        healthcheck_interval_s=upstream.healthcheck_interval_s,
        healthcheck_timeout_ms=upstream.healthcheck_timeout_ms,
        healthy_threshold=upstream.healthy_threshold,
        unhealthy_threshold=upstream.unhealthy_threshold,
        passive_failure_threshold=upstream.passive_failure_threshold,
        ejection_base_s=upstream.ejection_base_s,
    )


def _attachment_specs() -> list[AttachmentSpec]:
    return [
        AttachmentSpec(
            id=str(a.pk),
            policy=a.policy,
            tenant_id=str(a.tenant_id),
            config=a.config,
            api_id=str(a.api_id) if a.api_id else None,
            consumer_id=str(a.consumer_id) if a.consumer_id else None,
            enabled=a.enabled,
            priority=a.priority,
        )
        for a in PolicyAttachment.objects.all()
    ]


def _plan_specs() -> dict[str, PlanSpec]:
    from consumers.models import Plan

    return {
        str(p.pk): PlanSpec(
            id=str(p.pk),
            tenant_id=str(p.tenant_id),
            name=p.name,
            rate_limit_per_second=p.rate_limit_per_second,
            rate_limit_per_minute=p.rate_limit_per_minute,
            rate_limit_per_hour=p.rate_limit_per_hour,
            rate_limit_per_day=p.rate_limit_per_day,
            quota_per_day=p.quota_per_day,
            quota_per_month=p.quota_per_month,
            quota_timezone=p.quota_timezone,
        )
        for p in Plan.objects.all()
    }


def _api_info(api: API) -> ApiInfo:
    return ApiInfo(
        api_id=str(api.pk),
        tenant_id=str(api.tenant_id),
        name=api.name,
        base_path=api.base_path,
        openapi=api.openapi_document or None,
        route_patterns=tuple((r.path, frozenset(r.methods)) for r in api.routes.all() if r.enabled),
    )


def load_snapshot(registry: HealthRegistry, services: Mapping[str, Any] | None = None) -> Loaded[GatewaySnapshot]:
    close_old_connections()
    fingerprint = config_fingerprint()
    tenant_rows = list(Tenant.objects.prefetch_related("hosts"))
    tenants = [
        TenantSpec(tenant_id=str(t.pk), hosts=tuple(h.host for h in t.hosts.all()), is_default=t.is_default)
        for t in tenant_rows
    ]
    apis = list(API.objects.filter(status__in=ROUTABLE_STATUSES).prefetch_related("routes"))
    tenant_versions = {str(t.pk): t.config_version for t in tenant_rows}
    chains = compile_chains(
        [_api_info(api) for api in apis],
        _attachment_specs(),
        services=services or {},
        extra={"plans": _plan_specs(), "tenant_versions": tenant_versions},
    )
    api_specs = [
        ApiSpec(
            api_id=str(api.pk),
            tenant_id=str(api.tenant_id),
            base_path=api.base_path,
            hosts=tuple(api.hosts or ()),
            strip_base_path=api.strip_base_path,
            upstream_id=str(api.upstream_id) if api.upstream_id else None,
            routes=tuple(
                RouteSpec(
                    route_id=str(route.pk), path=route.path, methods=frozenset(route.methods), enabled=route.enabled
                )
                for route in api.routes.all()
            ),
            extra=chains.get(str(api.pk)),
        )
        for api in apis
    ]
    upstream_ids = {api.upstream_id for api in apis if api.upstream_id}
    specs = [_upstream_spec(u) for u in Upstream.objects.filter(pk__in=upstream_ids).prefetch_related("targets")]
    registry.sync(specs)
    balancers = build_balancers(specs, registry)
    upstreams = {
        spec.id: UpstreamRuntime(
            spec=spec,
            balancer=balancers[spec.id],
            timeouts=Timeouts(connect=spec.connect_timeout, read=spec.read_timeout, write=spec.write_timeout),
        )
        for spec in specs
    }
    snapshot = GatewaySnapshot(
        router=RouteTable(tenants, api_specs),
        upstreams=upstreams,
        tenant_versions=tenant_versions,
    )
    return Loaded(snapshot=snapshot, fingerprint=fingerprint)


def consumer_lookup(tenant_id: str, name: str) -> tuple[int, tuple[str, str, str, list[str]] | None] | None:
    """A consumer of a tenant by name, with the tenant's config version read in the same statement.

    For the JWT consumer directory (``policies.consumer_directory``) on a cache
    miss. Returns ``None`` when the tenant does not exist, else ``(version,
    consumer)`` where ``consumer`` is ``(id, name, status, groups)`` or ``None``.
    One statement, so the version tags exactly the state that was read: a
    change committed afterwards bumps the version past the cached entry.
    """
    from django.db.models import JSONField, OuterRef, Subquery

    from consumers.models import Consumer

    close_old_connections()
    match = Consumer.objects.filter(tenant_id=OuterRef("pk"), name=name)
    row = (
        Tenant.objects.filter(pk=tenant_id)
        .annotate(
            c_id=Subquery(match.values("pk")[:1]),
            c_status=Subquery(match.values("status")[:1]),
            c_groups=Subquery(match.values("groups")[:1], output_field=JSONField()),
        )
        .values_list("config_version", "c_id", "c_status", "c_groups")
        .first()
    )
    if row is None:
        return None
    version, consumer_id, status, groups = row
    if consumer_id is None:
        return version, None
    return version, (str(consumer_id), name, status, list(groups or []))


def api_key_lookup(key_id: str) -> KeyRecord | None:
    """An API key by its public id, for the key store (``policies.keystore``) on a cache miss.

    The key row, its consumer and its tenant's ``config_version`` come from one
    statement (a join), so the version tags exactly the key state that was
    read: a revoke or rotation committed afterwards bumps the version past the
    cached record. Allowed APIs and active subscriptions are read right after;
    anything changed in between also bumped the version, so the record is at
    worst re-read once more, never trusted beyond its version.
    """
    from consumers.models import APIKey, Consumer, Subscription, SubscriptionStatus

    close_old_connections()
    # Consumer groups (acl) are read in the same statement when the model has them.
    has_groups = any(f.name == "groups" for f in Consumer._meta.get_fields())
    key = (
        APIKey.objects.select_related("tenant", "consumer")
        .only(
            "key_id",
            "digest",
            "pepper_id",
            "tenant_id",
            "consumer_id",
            "application_id",
            "scopes",
            "expires_at",
            "active",
            "tenant__config_version",
            "consumer__name",
            "consumer__status",
            *(("consumer__groups",) if has_groups else ()),
        )
        .filter(key_id=key_id)
        .first()
    )
    if key is None:
        return None
    consumer = key.consumer
    allowed = key.allowed_apis.values_list("pk", flat=True)
    subscriptions = Subscription.objects.filter(
        application_id=key.application_id, status=SubscriptionStatus.ACTIVE
    ).values_list("api_id", "pk", "plan_id")
    return KeyRecord(
        key_id=key.key_id,
        digest=key.digest,
        pepper_id=key.pepper_id,
        tenant_id=str(key.tenant_id),
        consumer_id=str(key.consumer_id),
        consumer_name=consumer.name,
        consumer_active=consumer.status == "active",
        application_id=str(key.application_id),
        scopes=frozenset(key.scopes or ()),
        allowed_api_ids=frozenset(str(pk) for pk in allowed),
        expires_at=key.expires_at.timestamp() if key.expires_at is not None else None,
        active=key.active,
        subscriptions={str(api_id): (str(pk), str(plan_id)) for api_id, pk, plan_id in subscriptions},
        groups=frozenset(getattr(consumer, "groups", None) or ()),
        version=key.tenant.config_version,
    )


def api_keys_touch(key_ids: list[str], when: float) -> int:
    """Record that these keys were used (``last_used_at``), in batches; no audit, no config bump.

    Written by the key store's periodic flush, never per request. Not a config
    change: bumping the tenant's version here would reload every gateway each
    minute. A later time never moves backwards across workers.
    """
    from django.db.models import Q

    from consumers.models import APIKey

    close_old_connections()
    at = datetime.fromtimestamp(when, tz=UTC)
    updated = 0
    for start in range(0, len(key_ids), 500):
        batch = key_ids[start : start + 500]
        updated += (
            APIKey.objects.filter(key_id__in=batch)
            .filter(Q(last_used_at__isnull=True) | Q(last_used_at__lt=at))
            .update(last_used_at=at)
        )
    return updated
