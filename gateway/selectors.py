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
