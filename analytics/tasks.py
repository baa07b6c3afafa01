"""Celery tasks of the usage pipeline; beat runs them (``CELERY_BEAT_SCHEDULE`` in settings)."""

from __future__ import annotations

from dataclasses import asdict

from celery import shared_task
from django.conf import settings

from analytics.rollups import usage_rollup_recent
from analytics.services import usage_drain, usage_partitions_maintain


@shared_task(name="analytics.usage_drain_task", ignore_result=True, time_limit=120, soft_time_limit=100)
def usage_drain_task() -> dict | None:
    """One drain pass, bounded in time so beat's next tick finds the worker free.

    A database outage raises here: the entries stay pending in the stream and
    the next tick (or another worker, after the claim idle time) writes them.
    """
    result = usage_drain(time_budget=settings.APIM_USAGE_DRAIN_BUDGET)
    return asdict(result) if result is not None else None


@shared_task(name="analytics.usage_partitions_task", ignore_result=True, time_limit=600, soft_time_limit=540)
def usage_partitions_task() -> dict:
    report = usage_partitions_maintain(
        ahead=settings.APIM_USAGE_PARTITIONS_AHEAD,
        retain_months=settings.APIM_USAGE_RETENTION_MONTHS,
        rollup_retain_months=settings.APIM_ROLLUP_RETENTION_MONTHS,
    )
    return {
        "created": [m.isoformat() for m in report.created],
        "dropped": [m.isoformat() for m in report.dropped],
        "rollup_dropped": {g: [m.isoformat() for m in months] for g, months in report.rollup_dropped.items()},
    }


@shared_task(name="analytics.usage_rollup_task", ignore_result=True, time_limit=300, soft_time_limit=270)
def usage_rollup_task() -> dict:
    """Recompute the closed minutes of the last grace period and the hours and days they touch.

    Idempotent: a tick that overlaps the previous one (a slow run, a retry)
    rewrites the same buckets with the same rows.
    """
    return usage_rollup_recent().as_dict()
