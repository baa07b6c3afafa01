"""Reads of what gateways report, for the control plane."""

from __future__ import annotations

from datetime import timedelta

from django.db.models import QuerySet
from django.utils import timezone

from apim.models import Upstream
from gateway.models import TargetHealthReport

# Workers report every 5 s; a report older than this is from a worker that stopped.
FRESH_FOR = timedelta(seconds=30)


def target_health_for_upstream(*, upstream: Upstream) -> QuerySet[TargetHealthReport]:
    """Fresh reports of every gateway worker about ``upstream``'s targets (tenant-scoped by the upstream)."""
    return TargetHealthReport.objects.filter(
        tenant_id=upstream.tenant_id, upstream=upstream, reported_at__gte=timezone.now() - FRESH_FOR
    ).order_by("target_url", "gateway")


def target_health_for_targets(*, tenant_id: object, targets: list) -> dict[tuple, list[TargetHealthReport]]:
    """Fresh reports for ``targets`` of one tenant, keyed by (upstream id, target URL): one query for a page."""
    upstream_ids = {target.upstream_id for target in targets}
    if not upstream_ids:
        return {}
    reports = TargetHealthReport.objects.filter(
        tenant_id=tenant_id, upstream_id__in=upstream_ids, reported_at__gte=timezone.now() - FRESH_FOR
    ).order_by("target_url", "gateway")
    grouped: dict[tuple, list[TargetHealthReport]] = {}
    for report in reports:
        grouped.setdefault((report.upstream_id, report.target_url), []).append(report)
    return grouped
