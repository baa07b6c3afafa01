"""Celery tasks of the control plane; beat runs them (``CELERY_BEAT_SCHEDULE`` in settings)."""

from __future__ import annotations

from celery import shared_task

from apim.services.idempotency import idempotency_records_purge


@shared_task(name="apim.idempotency_records_purge_task", ignore_result=True, time_limit=600, soft_time_limit=540)
def idempotency_records_purge_task() -> int:
    """Delete idempotency records past their TTL; returns how many went."""
    return idempotency_records_purge()
