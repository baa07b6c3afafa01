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
