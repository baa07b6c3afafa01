"""Recomputing the minute, hour and day rollups: per bucket, never incremented.

A bucket's rows are always rebuilt whole from their source: delete the rows of
the buckets in a batch, insert their aggregate, in one transaction. Running a
recompute twice therefore gives the same rows, and a record that arrives late
is included simply by recomputing its bucket again.

* minutes come from the raw records (``am_usage_records``);
* hours from minutes, days from hours (the sums are exact and the histograms
  merge exactly, so an hour equals the sum of its minutes by construction and
  costs 60 times fewer rows to read than the raw records).

Only closed minutes are ever aggregated (a minute closes when the clock passes
its end). An hour or day still in progress is computed from its closed minutes
and rewritten every minute until it closes: provisional, never wrong.

A coarser bucket is only rebuilt while its source still exists: a recompute
never reaches back past the source's retention (rebuilding an hour whose
minutes were dropped would erase it), nor past the target's own (its
partition would be dropped again). Records without a tenant (a host nobody
serves) are not rolled up: every rollup row belongs to a tenant.

PostgreSQL aggregates in SQL (``GROUP BY`` with ``width_bucket`` for the
latency histogram); concurrent recomputes of one granularity are serialized
by a transaction-level advisory lock, so two overlapping runs cannot both
insert a bucket. Other databases (the embedded SQLite install) aggregate in
Python, slower but the same rows.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import connections, transaction

from analytics import histogram
from analytics.models import ROLLUP_MODELS, UsageRecord, UsageRollup
from analytics.partitions import PartitionedTable, add_months, ensure_months, month_start, retention_cutoff

logger = logging.getLogger(__name__)

GRANULARITIES = ("minute", "hour", "day")
STEPS = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1), "day": timedelta(days=1)}
SOURCES = {"minute": None, "hour": "minute", "day": "hour"}  # None: the raw records
# Buckets per transaction: bounded transactions, few enough round trips.
BATCH_BUCKETS = {"minute": 360, "hour": 48, "day": 31}
ROLLUP_TABLES = {g: PartitionedTable(f"am_usage_rollup_{g}", column="bucket_start") for g in GRANULARITIES}
# A range longer than this (a backfill) first looks for its earliest data: one query that saves
# walking, and creating partitions for, empty years after a distant ``--since``.
LONG_RANGE = timedelta(days=7)
WORK_MEM = "128MB"  # for the rollup transaction only (SET LOCAL)
_LOCK_KEYS = {"minute": 0x61706D01, "hour": 0x61706D02, "day": 0x61706D03}

DIMENSIONS = ("tenant_id", "api_id", "consumer_id", "application_id", "status_class", "deny_reason")
COUNTERS = (
    "requests",
    "errors",
    "bytes_in",
    "bytes_out",
    "latency_us_sum",
    "upstream_latency_us_sum",
    "gateway_latency_us_sum",
)
_COLUMNS = ("bucket_start", *DIMENSIONS, *COUNTERS, "latency_hist")


@dataclass
class RollupResult:
    granularity: str
    start: datetime | None = None  # the buckets recomputed: [start, end)
    end: datetime | None = None
    buckets: int = 0
    rows: int = 0


@dataclass
class RollupReport:
    results: dict[str, RollupResult] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            g: {
                "start": r.start.isoformat() if r.start else None,
                "end": r.end.isoformat() if r.end else None,
                "buckets": r.buckets,
                "rows": r.rows,
            }
            for g, r in self.results.items()
        }


def floor_to(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(UTC)
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    if granularity == "day":
        return moment.replace(hour=0, minute=0, second=0, microsecond=0)
    raise ValueError(f"unknown granularity {granularity!r}")


def ceil_to(moment: datetime, granularity: str) -> datetime:
    floor = floor_to(moment, granularity)
    return floor if floor == moment else floor + STEPS[granularity]


def last_closed_minute_end(now: datetime | None = None) -> datetime:
    """The end of the last closed minute: minutes before it will get no new on-time records."""
    return floor_to(now or datetime.now(UTC), "minute")


def kept_from(granularity: str, *, now: datetime) -> datetime | None:
    """The earliest bucket start a recompute of ``granularity`` may touch (None: no limit).

    The later of the source's retention cutoff and the target's own.
    """
    source = SOURCES[granularity]
    months = [
        settings.APIM_USAGE_RETENTION_MONTHS if source is None else settings.APIM_ROLLUP_RETENTION_MONTHS[source],
        settings.APIM_ROLLUP_RETENTION_MONTHS[granularity],
    ]
    cutoffs = [retention_cutoff(now=now, retain_months=m) for m in months if m]
    if not cutoffs:
        return None
    cutoff = max(cutoffs)
    return datetime(cutoff.year, cutoff.month, 1, tzinfo=UTC)


def rollup_recompute(
    granularity: str, *, start: datetime, end: datetime, now: datetime | None = None, using: str = "default"
) -> RollupResult:
    """Recompute every ``granularity`` bucket overlapping [start, end), from closed minutes only.

    Returns the buckets actually recomputed (after the retention clamps); a
    database error propagates and leaves the batches not yet committed as they were.
    """
    if granularity not in GRANULARITIES:
        raise ValueError(f"unknown granularity {granularity!r}")
    now = now or datetime.now(UTC)
    result = RollupResult(granularity)
    low = floor_to(start, granularity)
    high = ceil_to(min(end, last_closed_minute_end(now)), granularity)
    floor = kept_from(granularity, now=now)
    if floor is not None:
        low = max(low, floor)
    if low >= high:
        return result
    if high - low > LONG_RANGE:
        earliest = _earliest_data(granularity, low, high, using)
        if earliest is None:
            return result  # neither source rows nor rollup rows in the range: nothing to rebuild
        low = max(low, floor_to(earliest, granularity))
    result.start, result.end = low, high
    _ensure_partitions(granularity, low, high, using)
    step = STEPS[granularity]
    batch = step * BATCH_BUCKETS[granularity]
    batch_start = low
    while batch_start < high:
        batch_end = min(batch_start + batch, high)
        result.rows += _recompute_batch(granularity, batch_start, batch_end, using)
        result.buckets += round((batch_end - batch_start) / step)
        batch_start = batch_end
    return result


def rollup_minutes(
    start: datetime, end: datetime, *, now: datetime | None = None, using: str = "default"
) -> RollupResult:
    """Recompute every closed minute in [start, end) from the raw records."""
    return rollup_recompute("minute", start=start, end=end, now=now, using=using)


def rollup_hours(
    start: datetime, end: datetime, *, now: datetime | None = None, using: str = "default"
) -> RollupResult:
    """Recompute the hours overlapping [start, end) from the minute rollups."""
    return rollup_recompute("hour", start=start, end=end, now=now, using=using)


def rollup_days(start: datetime, end: datetime, *, now: datetime | None = None, using: str = "default") -> RollupResult:
    """Recompute the UTC days overlapping [start, end) from the hour rollups."""
    return rollup_recompute("day", start=start, end=end, now=now, using=using)


def usage_rollup_range(
    *, since: datetime, until: datetime, now: datetime | None = None, using: str = "default"
) -> RollupReport:
    """Minutes in [since, until), then the hours and days they touch (the backfill)."""
    now = now or datetime.now(UTC)
    report = RollupReport()
    for granularity in GRANULARITIES:
        report.results[granularity] = rollup_recompute(granularity, start=since, end=until, now=now, using=using)
    return report


def usage_rollup_recent(
    *, now: datetime | None = None, grace_seconds: int | None = None, using: str = "default"
) -> RollupReport:
    """What beat runs every minute: the closed minutes of the last grace period, and their hours and days.

    Records arriving up to ``grace_seconds`` after their minute closed are
    included by a later run; later ones wait for ``usage_rollup --since``.
    """
    now = now or datetime.now(UTC)
    grace = settings.APIM_ROLLUP_GRACE_SECONDS if grace_seconds is None else grace_seconds
    closed = last_closed_minute_end(now)
    start = closed - timedelta(seconds=grace) - STEPS["minute"]  # the latest minute plus a full grace
    return usage_rollup_range(since=start, until=closed, now=now, using=using)


def _months(low: datetime, high: datetime) -> Iterator:
    month = month_start(low)
    last = month_start(high - timedelta(microseconds=1))
    while month <= last:
        yield month
        month = add_months(month, 1)


def _earliest_data(granularity: str, low: datetime, high: datetime, using: str) -> datetime | None:
    """The first source record or rollup row in [low, high): a backfill from a distant ``--since``
    starts there instead of walking (and creating partitions for) years of nothing."""
    source = SOURCES[granularity]
    if source is None:
        source_rows = UsageRecord.objects.using(using).filter(timestamp__gte=low, timestamp__lt=high)
        first_source = source_rows.order_by("timestamp").values_list("timestamp", flat=True).first()
    else:
        source_rows = ROLLUP_MODELS[source].objects.using(using).filter(bucket_start__gte=low, bucket_start__lt=high)
        first_source = source_rows.order_by("bucket_start").values_list("bucket_start", flat=True).first()
    target_rows = ROLLUP_MODELS[granularity].objects.using(using).filter(bucket_start__gte=low, bucket_start__lt=high)
    first_target = target_rows.order_by("bucket_start").values_list("bucket_start", flat=True).first()
    found = [moment for moment in (first_source, first_target) if moment is not None]
    return min(found) if found else None


def _ensure_partitions(granularity: str, low: datetime, high: datetime, using: str) -> None:
    ensure_months(ROLLUP_TABLES[granularity], _months(low, high), using=using)


def _recompute_batch(granularity: str, low: datetime, high: datetime, using: str) -> int:
    connection = connections[using]
    model = ROLLUP_MODELS[granularity]
    with transaction.atomic(using=using):
        if connection.vendor == "postgresql":
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_LOCK_KEYS[granularity]])
                # One wide GROUP BY: JIT compiling its ~40 expressions costs more than it saves
                # (measured ~1.5 s a statement), and the default work_mem spills the hash to disk.
                cursor.execute("SET LOCAL jit = off")
                cursor.execute("SET LOCAL TimeZone = 'UTC'")  # date_trunc below truncates in UTC
                cursor.execute(f"SET LOCAL work_mem = '{WORK_MEM}'")
                cursor.execute(
                    f'DELETE FROM "{model._meta.db_table}" WHERE bucket_start >= %s AND bucket_start < %s',  # noqa: S608
                    [low, high],
                )
                cursor.execute(_pg_insert_sql(granularity), [low, high])
                return max(cursor.rowcount, 0)
        model.objects.using(using).filter(bucket_start__gte=low, bucket_start__lt=high).delete()
        rows = _python_aggregate(granularity, low, high, using)
        model.objects.using(using).bulk_create(rows, batch_size=500)
        return len(rows)


def _pg_insert_sql(granularity: str) -> str:
    target = ROLLUP_TABLES[granularity].name
    columns = ", ".join(_COLUMNS)
    source = SOURCES[granularity]
    if source is None:
        thresholds = ", ".join(str(int(b) + 1) for b in histogram.BOUNDS_US[:-1])
        hist = ", ".join(f"count(*) FILTER (WHERE hb = {i})" for i in range(histogram.NUM_BUCKETS))
        return f"""
            INSERT INTO "{target}" ({columns})
            SELECT date_trunc('minute', "timestamp"), tenant_id, api_id, consumer_id, application_id,
                   status / 100, deny_reason,
                   count(*), count(*) FILTER (WHERE status >= 400 OR status = 0),
                   sum(bytes_in)::bigint, sum(bytes_out)::bigint, sum(latency_us)::bigint,
                   coalesce(sum(upstream_latency_us), 0)::bigint, sum(gateway_latency_us)::bigint,
                   jsonb_build_array({hist})
            FROM (
                SELECT "timestamp", tenant_id, api_id, consumer_id, application_id, status, deny_reason,
                       bytes_in, bytes_out, latency_us, upstream_latency_us, gateway_latency_us,
                       width_bucket(latency_us, ARRAY[{thresholds}]::integer[]) AS hb
                FROM "{UsageRecord._meta.db_table}"
                WHERE "timestamp" >= %s AND "timestamp" < %s AND tenant_id IS NOT NULL
            ) AS raw
            GROUP BY 1, 2, 3, 4, 5, 6, 7
        """  # noqa: S608
    sums = ", ".join(f"sum({c})::bigint" for c in COUNTERS)
    hist = ", ".join(f"sum((latency_hist->>{i})::bigint)::bigint" for i in range(histogram.NUM_BUCKETS))
    return f"""
        INSERT INTO "{target}" ({columns})
        SELECT date_trunc('{granularity}', bucket_start), {", ".join(DIMENSIONS)}, {sums},
               jsonb_build_array({hist})
        FROM "{ROLLUP_TABLES[source].name}"
        WHERE bucket_start >= %s AND bucket_start < %s
        GROUP BY 1, 2, 3, 4, 5, 6, 7
    """  # noqa: S608


def _python_aggregate(granularity: str, low: datetime, high: datetime, using: str) -> list[UsageRollup]:
    """The portable path: the same rows as the SQL, summed in Python."""
    groups: dict[tuple, list[Any]] = {}
    source = SOURCES[granularity]
    if source is None:
        records = (
            UsageRecord.objects.using(using)
            .filter(timestamp__gte=low, timestamp__lt=high, tenant_id__isnull=False)
            .values_list(
                "timestamp",
                "tenant_id",
                "api_id",
                "consumer_id",
                "application_id",
                "status",
                "deny_reason",
                "bytes_in",
                "bytes_out",
                "latency_us",
                "upstream_latency_us",
                "gateway_latency_us",
            )
        )
        for ts, tenant, api, consumer, app, status, reason, b_in, b_out, lat, up, gw in records.iterator():
            key = (floor_to(ts, "minute"), tenant, api, consumer, app, status // 100, reason)
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = [0] * len(COUNTERS) + [histogram.empty()]
            acc[0] += 1
            acc[1] += 1 if status >= 400 or status == 0 else 0
            acc[2] += b_in
            acc[3] += b_out
            acc[4] += lat
            acc[5] += up or 0
            acc[6] += gw
            acc[7][histogram.bucket_of(lat)] += 1
    else:
        rows = (
            ROLLUP_MODELS[source]
            .objects.using(using)
            .filter(bucket_start__gte=low, bucket_start__lt=high)
            .values_list("bucket_start", *DIMENSIONS, *COUNTERS, "latency_hist")
        )
        width = len(DIMENSIONS)
        for row in rows.iterator():
            key = (floor_to(row[0], granularity), *row[1 : 1 + width])
            acc = groups.get(key)
            if acc is None:
                acc = groups[key] = [0] * len(COUNTERS) + [histogram.empty()]
            for index, value in enumerate(row[1 + width : 1 + width + len(COUNTERS)]):
                acc[index] += value
            acc[-1] = histogram.merge([acc[-1], row[-1]])
    model = ROLLUP_MODELS[granularity]
    return [model(**dict(zip(_COLUMNS, (*key, *acc), strict=True))) for key, acc in groups.items()]
