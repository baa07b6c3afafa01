"""Housekeeping of ``IdempotencyRecord``: records past ``APIM_IDEMPOTENCY_TTL`` are deleted.

An expired record is already ignored (and replaced) by ``apim.api.idempotency``
when its key comes back; without a purge the table would still grow by one
row per create sent with a key, for ever. Beat runs the task hourly
(``idempotency-purge`` in ``CELERY_BEAT_SCHEDULE``); ``manage.py
idempotency_purge`` does the same by hand.

Deletion goes in batches of primary keys, each its own short transaction, so
a large backlog never holds one long lock on the table that creates write to.
No audit event: the records are a cache of responses, not a change anyone made.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apim.models import IdempotencyRecord


def idempotency_records_purge(
    *, now: datetime | None = None, ttl: timedelta | None = None, batch_size: int = 1000
) -> int:
    """Delete every record created more than ``ttl`` (default ``APIM_IDEMPOTENCY_TTL``) before ``now``.

    Returns how many were deleted. Records younger than the TTL are never touched.
    """
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    cutoff = (now or timezone.now()) - (ttl if ttl is not None else settings.APIM_IDEMPOTENCY_TTL)
    deleted = 0
    while True:
        with transaction.atomic():
            ids = list(
                IdempotencyRecord.objects.filter(created_at__lte=cutoff)
                .order_by("created_at")
                .values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return deleted
            count, _ = IdempotencyRecord.objects.filter(pk__in=ids, created_at__lte=cutoff).delete()
        deleted += count
        if len(ids) < batch_size:
            return deleted


def idempotency_records_expired_count(*, now: datetime | None = None, ttl: timedelta | None = None) -> int:
    cutoff = (now or timezone.now()) - (ttl if ttl is not None else settings.APIM_IDEMPOTENCY_TTL)
    return IdempotencyRecord.objects.filter(created_at__lte=cutoff).count()
