"""Operations on the usage tables (the writes of the analytics app).

These run from Celery beat and management commands, not from a user's
request, so they take no ``actor`` and write no audit event: they change no
tenant's configuration. What they drop is logged at WARNING with the months.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime

import redis
from django.conf import settings

from analytics.ingest import forget_partitions
from analytics.partitions import USAGE_RECORDS, drop_before, ensure_ahead, retention_cutoff
from analytics.pipeline import DrainResult, usage_stream_drain
from analytics.rollups import ROLLUP_TABLES

logger = logging.getLogger(__name__)


@dataclass
class PartitionReport:
    created: list[date] = field(default_factory=list)
    dropped: list[date] = field(default_factory=list)
    cutoff: date | None = None
    # Per rollup granularity ("minute", "hour", "day"):
    rollup_created: dict[str, list[date]] = field(default_factory=dict)
    rollup_dropped: dict[str, list[date]] = field(default_factory=dict)
    rollup_cutoffs: dict[str, date] = field(default_factory=dict)


def usage_partitions_maintain(
    *,
    ahead: int,
    retain_months: int | None,
    rollup_retain_months: Mapping[str, int] | None = None,
    now: datetime | None = None,
    using: str = "default",
) -> PartitionReport:
    """Create partitions ``ahead`` months ahead for the raw and the rollup tables; drop whole older months.

    ``retain_months`` (> 0) applies to the raw records, ``rollup_retain_months``
    (granularity → months, 0 keeps all) to the rollup tables.
    """
    now = now or datetime.now(UTC)
    report = PartitionReport(created=ensure_ahead(USAGE_RECORDS, now=now, ahead=ahead, using=using))
    for granularity, table in ROLLUP_TABLES.items():
        report.rollup_created[granularity] = ensure_ahead(table, now=now, ahead=ahead, using=using)
    if retain_months:
        report.cutoff = retention_cutoff(now=now, retain_months=retain_months)
        report.dropped = drop_before(USAGE_RECORDS, report.cutoff, using=using)
        if report.dropped:
            forget_partitions(using)
            logger.warning("usage retention dropped partitions for %s", ", ".join(f"{m:%Y-%m}" for m in report.dropped))
    for granularity, months in (rollup_retain_months or {}).items():
        if not months:
            continue
        cutoff = report.rollup_cutoffs[granularity] = retention_cutoff(now=now, retain_months=months)
        dropped = report.rollup_dropped[granularity] = drop_before(ROLLUP_TABLES[granularity], cutoff, using=using)
        if dropped:
            logger.warning(
                "%s rollup retention dropped partitions for %s", granularity, ", ".join(f"{m:%Y-%m}" for m in dropped)
            )
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
