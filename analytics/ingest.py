"""Writing a batch of usage records into ``am_usage_records``, idempotently.

PostgreSQL: ``COPY`` into a temporary staging table (emptied at commit), then
``INSERT ... SELECT ... ON CONFLICT (record_id, timestamp) DO NOTHING``. COPY is
the fast way in (measured: about five times ``bulk_create``); the staging step
is what makes it idempotent, since COPY itself cannot skip duplicates. A batch
delivered twice (a retried flush, a redelivered stream entry) adds nothing.

Other databases (the embedded SQLite install): ``bulk_create`` with
``ignore_conflicts``, same key, same result.

Before writing, the months the batch touches get their partitions (normally
they already exist; the cache makes that check free). Records whose time is
outside the window the table keeps — older than retention, or more than a
year ahead (a broken clock) — would either be dropped at the next retention
run or create partitions nobody wants: they are counted as dropped instead.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connections, transaction

from analytics import metrics
from analytics.partitions import (
    USAGE_RECORDS,
    add_months,
    ensure_months,
    is_partitioned,
    month_start,
    retention_cutoff,
)
from analytics.records import COLUMNS, Record, rows_of

logger = logging.getLogger(__name__)

FUTURE_MONTHS = 12
_QUOTED = ", ".join(f'"{c}"' for c in COLUMNS)
_STAGING = "am_usage_staging"
# Months known to have a partition, per database alias (partitions are only ever
# dropped below the retention cutoff, which ``_window`` excludes anyway).
_known_months: dict[str, set[date]] = {}


@dataclass
class IngestResult:
    received: int = 0
    inserted: int = 0  # new rows (duplicates skipped); on SQLite: rows offered
    invalid: int = 0
    out_of_range: int = 0


def _window(now: datetime) -> tuple[datetime | None, datetime]:
    retain = settings.APIM_USAGE_RETENTION_MONTHS
    current = month_start(now)
    upper = add_months(current, FUTURE_MONTHS + 1)
    upper_dt = datetime(upper.year, upper.month, 1, tzinfo=UTC)
    if not retain:
        return None, upper_dt
    cutoff = retention_cutoff(now=now, retain_months=retain)
    return datetime(cutoff.year, cutoff.month, 1, tzinfo=UTC), upper_dt


def usage_records_ingest(
    *, records: Sequence[Record], using: str = "default", now: datetime | None = None
) -> IngestResult:
    """Write ``records`` (wire tuples) into the usage table in one transaction.

    Raises the database's error if the write fails; then nothing of the batch
    was written and the caller keeps it (the stream entry stays unacknowledged).
    """
    now = now or datetime.now(UTC)
    rows, invalid = rows_of(records)
    lower, upper = _window(now)
    kept = [r for r in rows if (lower is None or r[1] >= lower) and r[1] < upper]
    result = IngestResult(received=len(records), invalid=invalid, out_of_range=len(rows) - len(kept))
    if invalid:
        metrics.RECORDS_DROPPED.labels(reason="invalid").inc(invalid)
    if result.out_of_range:
        metrics.RECORDS_DROPPED.labels(reason="out_of_range").inc(result.out_of_range)
        logger.warning("dropped %d usage records outside the kept time window", result.out_of_range)
    if not kept:
        return result
    if is_partitioned(using):
        _ensure_partitions(kept, using)
        try:
            result.inserted = _copy_insert(kept, using)
        except IntegrityError as exc:
            if "no partition" not in str(exc):
                raise
            # The cache believed in a partition that is gone (rolled back, dropped by hand): look again.
            forget_partitions(using)
            _ensure_partitions(kept, using)
            result.inserted = _copy_insert(kept, using)
    else:
        result.inserted = _bulk_insert(kept, using)
    metrics.RECORDS_INGESTED.inc(result.inserted)
    return result


def _ensure_partitions(rows: list[tuple[Any, ...]], using: str) -> None:
    known = _known_months.setdefault(using, set())
    months = {month_start(r[1]) for r in rows} - known
    if months:
        ensure_months(USAGE_RECORDS, months, using=using)
        known.update(months)


def forget_partitions(using: str | None = None) -> None:
    """Drop the partition cache (after retention or in tests that recreate tables)."""
    if using is None:
        _known_months.clear()
    else:
        _known_months.pop(using, None)


def _copy_insert(rows: list[tuple[Any, ...]], using: str) -> int:
    connection = connections[using]
    with transaction.atomic(using=using), connection.cursor() as cursor:
        # Kept per connection, emptied at commit; the DELETE covers a caller's outer transaction.
        cursor.execute(
            f'CREATE TEMP TABLE IF NOT EXISTS "{_STAGING}" (LIKE "{USAGE_RECORDS.name}" INCLUDING DEFAULTS) '
            "ON COMMIT DELETE ROWS"
        )
        cursor.execute(f'DELETE FROM "{_STAGING}"')  # noqa: S608
        with cursor.cursor.copy(f'COPY "{_STAGING}" ({_QUOTED}) FROM STDIN') as copy:
            for row in rows:
                copy.write_row(row)
        cursor.execute(
            f'INSERT INTO "{USAGE_RECORDS.name}" ({_QUOTED}) SELECT {_QUOTED} FROM "{_STAGING}" '  # noqa: S608
            'ON CONFLICT ("record_id", "timestamp") DO NOTHING'
        )
        return max(cursor.rowcount, 0)


def _bulk_insert(rows: list[tuple[Any, ...]], using: str) -> int:
    from analytics.models import UsageRecord

    objects = [UsageRecord(**dict(zip(COLUMNS, row, strict=True))) for row in rows]
    with transaction.atomic(using=using):
        UsageRecord.objects.using(using).bulk_create(objects, ignore_conflicts=True, batch_size=500)
    return len(objects)
