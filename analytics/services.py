"""Operations on the usage tables (the writes of the analytics app).

These run from Celery beat and management commands, not from a user's
request, so they take no ``actor`` and write no audit event: they change no
tenant's configuration. What they drop is logged at WARNING with the months.
"""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import redis
from django.conf import settings

from analytics.ingest import forget_partitions
from analytics.partitions import USAGE_RECORDS, drop_before, ensure_ahead, retention_cutoff
from analytics.pipeline import DrainResult, usage_stream_drain

logger = logging.getLogger(__name__)


@dataclass
class PartitionReport:
    created: list[date] = field(default_factory=list)
    dropped: list[date] = field(default_factory=list)
    cutoff: date | None = None


def usage_partitions_maintain(
    *, ahead: int, retain_months: int | None, now: datetime | None = None, using: str = "default"
) -> PartitionReport:
    """Create partitions ``ahead`` months ahead; with ``retain_months`` (> 0), drop whole older months."""
    now = now or datetime.now(UTC)
    report = PartitionReport(created=ensure_ahead(USAGE_RECORDS, now=now, ahead=ahead, using=using))
    if retain_months:
        report.cutoff = retention_cutoff(now=now, retain_months=retain_months)
        report.dropped = drop_before(USAGE_RECORDS, report.cutoff, using=using)
        if report.dropped:
            forget_partitions(using)
            logger.warning("usage retention dropped partitions for %s", ", ".join(f"{m:%Y-%m}" for m in report.dropped))
    return report


def consumer_name() -> str:
    """Stable per process: a restarted process gets a new name, and its predecessor's
    pending entries are claimed after ``APIM_USAGE_CLAIM_IDLE_MS``."""
    return f"{socket.gethostname()}:{os.getpid()}"


def usage_drain(
    *,
    consumer: str | None = None,
    max_entries: int | None = None,
    time_budget: float | None = None,
    claim_idle_ms: int | None = None,
    using: str = "default",
) -> DrainResult | None:
    """Drain the configured usage stream into the database; None when no usage Redis is configured."""
    url = settings.APIM_USAGE_REDIS_URL
    if not url:
        return None
    client = redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=30)
    try:
        return usage_stream_drain(
            client=client,
            stream=settings.APIM_USAGE_STREAM,
            group=settings.APIM_USAGE_STREAM_GROUP,
            consumer=consumer or consumer_name(),
            count=settings.APIM_USAGE_DRAIN_COUNT,
            claim_idle_ms=settings.APIM_USAGE_CLAIM_IDLE_MS if claim_idle_ms is None else claim_idle_ms,
            max_entries=max_entries,
            time_budget=time_budget,
            using=using,
        )
    finally:
        client.close()
