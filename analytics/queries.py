"""Analytics reads for dashboards, CSV export and the REST API: from the rollups only.

Every answer comes from the minute / hour / day rollup tables, never from the
raw usage records: a month of a busy tenant is millions of records but only
hundreds of rollup rows per API, so a dashboard stays fast however much
traffic there was (API Umbrella's operators called raw-table dashboards
"exceptionally slow"). Percentiles come from the rollups' fixed-bucket latency
histograms, which merge by addition (``analytics.histogram``), so a p95 over a
day is exact to the bucket, not an average of hourly p95s.

Everything is bounded: the number of points of a series (``MAX_POINTS``; a
range too long for the chosen granularity is refused, not truncated), the
length of every top-N list (``MAX_TOP``) and the raw-record range. The tenant
is an argument the caller takes from the requester's identity; filters by
another tenant's API or consumer id find nothing, exactly like a missing id.

Buckets are whole: a query covers the buckets that start in
``[floor(start), end)`` at its granularity, so the answer never depends on how
a bucket straddles the range's edges. The current hour and day are
provisional: the rollup task rewrites them every minute from their closed
minutes, so the newest point of an hour or day series grows until it closes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from django.db.models import BigIntegerField, Func, Max, Min, Q, QuerySet, Sum
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from analytics import histogram
from analytics.models import ROLLUP_MODELS, UsageRecord
from apim.exceptions import ApplicationError
from apim.models import API, Tenant
from consumers.models import Application, Consumer

GRANULARITIES: tuple[str, ...] = ("minute", "hour", "day")
STEPS: Mapping[str, timedelta] = {
    "minute": timedelta(minutes=1),
    "hour": timedelta(hours=1),
    "day": timedelta(days=1),
}
# The most points one series may have; longer ranges need a coarser granularity.
MAX_POINTS = 1500
# Chosen automatically: the finest granularity giving at most this many points.
AUTO_POINTS = 720
DEFAULT_RANGE = timedelta(hours=24)
DEFAULT_TOP = 10
MAX_TOP = 50
# Raw records are read page by page, never aggregated, and only over this much time at once.
MAX_RECORD_RANGE = timedelta(days=31)
PERCENTILES: Mapping[str, float] = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


class AnalyticsQueryError(ApplicationError):
    """A query that cannot be answered as asked; ``details`` names the fields."""

    code = "invalid_query"
    status = 400


@dataclass(frozen=True)
class AnalyticsQuery:
    tenant: Tenant
    start: datetime
    end: datetime
    granularity: str
    api_id: UUID | None = None
    consumer_id: UUID | None = None
    application_id: UUID | None = None
    top: int = DEFAULT_TOP

    @property
    def step(self) -> timedelta:
        return STEPS[self.granularity]

    @property
    def points(self) -> int:
        return _points(self.start, self.end, self.granularity)


@dataclass(frozen=True)
class Point:
    bucket_start: datetime
    requests: int = 0
    errors: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    latency_us_sum: int = 0
    p50: float | None = None
    p95: float | None = None
    p99: float | None = None

    @property
    def error_rate(self) -> float | None:
        return _rate(self.errors, self.requests)

    @property
    def avg_latency_ms(self) -> float | None:
        return round(self.latency_us_sum / self.requests / 1000, 3) if self.requests else None


@dataclass(frozen=True)
class TopRow:
    """One API, consumer or deny reason with its counts. ``name`` is None for a deleted object."""

    key: str
    name: str | None
    requests: int
    errors: int
    bytes_in: int = 0
    bytes_out: int = 0

    @property
    def error_rate(self) -> float | None:
        return _rate(self.errors, self.requests)


@dataclass(frozen=True)
class AnalyticsReport:
    query: AnalyticsQuery
    series: list[Point]
    totals: Point
    top_apis: list[TopRow] = field(default_factory=list)
    top_consumers: list[TopRow] = field(default_factory=list)
    deny_reasons: list[TopRow] = field(default_factory=list)


def _rate(errors: int, requests: int) -> float | None:
    return round(errors / requests, 6) if requests else None


def _floor(moment: datetime, granularity: str) -> datetime:
    moment = moment.astimezone(UTC)
    if granularity == "minute":
        return moment.replace(second=0, microsecond=0)
    if granularity == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def _points(start: datetime, end: datetime, granularity: str) -> int:
    """Buckets starting in ``[floor(start), end)``."""
    span = end - _floor(start, granularity)
    return max(0, math.ceil(span / STEPS[granularity]))


def granularity_for(start: datetime, end: datetime) -> str:
    """The finest granularity that draws the range in at most ``AUTO_POINTS`` points."""
    for granularity in GRANULARITIES:
        if _points(start, end, granularity) <= AUTO_POINTS:
            return granularity
    return GRANULARITIES[-1]


def analytics_query_build(
    *,
    tenant: Tenant,
    start: datetime | None = None,
    end: datetime | None = None,
    granularity: str | None = None,
    api_id: UUID | None = None,
    consumer_id: UUID | None = None,
    application_id: UUID | None = None,
    top: int | None = None,
    now: datetime | None = None,
) -> AnalyticsQuery:
    """Check a query and fill in its defaults: the last 24 hours, the granularity from the range.

    Refuses (``AnalyticsQueryError``, 400, per-field details) an empty or
    inverted range, an unknown granularity, a range with more than
    ``MAX_POINTS`` points at the chosen granularity, and a top-N outside 1..MAX_TOP.
    """
    now = now or datetime.now(UTC)
    errors: dict[str, list[str]] = {}
    for name, value in (("start", start), ("end", end)):
        if value is not None and value.tzinfo is None:
            errors[name] = ["Give a time zone (e.g. 2026-01-31T12:00:00Z)."]
    if errors:
        raise AnalyticsQueryError("Times must carry a time zone.", details=errors)
    end = (end or now).astimezone(UTC)
    start = (start or end - DEFAULT_RANGE).astimezone(UTC)
    if start >= end:
        raise AnalyticsQueryError("start must be before end.", details={"start": ["Must be before end."]})
    if granularity is not None and granularity not in STEPS:
        raise AnalyticsQueryError(
            f"Unknown granularity {granularity!r}.",
            details={"granularity": [f"Choose one of {', '.join(GRANULARITIES)}."]},
        )
    granularity = granularity or granularity_for(start, end)
    points = _points(start, end, granularity)
    if points > MAX_POINTS:
        coarser = [g for g in GRANULARITIES if _points(start, end, g) <= MAX_POINTS]
        hint = f"use granularity={coarser[0]}" if coarser else "shorten the range"
        raise AnalyticsQueryError(
            f"The range has {points} {granularity} points; at most {MAX_POINTS} are returned: {hint}.",
            details={"granularity": [f"At most {MAX_POINTS} points per series; {hint}."]},
        )
    top = DEFAULT_TOP if top is None else top
    if not 1 <= top <= MAX_TOP:
        raise AnalyticsQueryError(
            f"top must be between 1 and {MAX_TOP}.", details={"top": [f"Between 1 and {MAX_TOP}."]}
        )
    return AnalyticsQuery(
        tenant=tenant,
        start=start,
        end=end,
        granularity=granularity,
        api_id=api_id,
        consumer_id=consumer_id,
        application_id=application_id,
        top=top,
    )


def rollup_rows(query: AnalyticsQuery) -> QuerySet:
    """The query's rollup rows: its tenant, its buckets, its filters."""
    model = ROLLUP_MODELS[query.granularity]
    rows = model.objects.filter(
        tenant_id=query.tenant.pk,
        bucket_start__gte=_floor(query.start, query.granularity),
        bucket_start__lt=query.end,
    )
    if query.api_id is not None:
        rows = rows.filter(api_id=query.api_id)
    if query.consumer_id is not None:
        rows = rows.filter(consumer_id=query.consumer_id)
    if query.application_id is not None:
        rows = rows.filter(application_id=query.application_id)
    return rows


COUNTERS: tuple[str, ...] = ("requests", "errors", "bytes_in", "bytes_out", "latency_us_sum")


def _point(bucket_start: datetime, sums: Mapping[str, Any], hist: Sequence[int] | None) -> Point:
    quantiles = {name: _ms(histogram.percentile(hist, q)) for name, q in PERCENTILES.items()} if hist else {}
    return Point(bucket_start=bucket_start, **{name: sums.get(name) or 0 for name in COUNTERS}, **quantiles)


def _ms(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


class JsonArrayLength(Func):
    """The length of a JSON array column, on PostgreSQL (jsonb) and SQLite."""

    function = "JSON_ARRAY_LENGTH"
    output_field = BigIntegerField()

    def as_postgresql(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        return self.as_sql(compiler, connection, function="JSONB_ARRAY_LENGTH", **extra)


def _series_aggregates() -> dict[str, Any]:
    """Per bucket: the counters, each histogram slot summed, and the histogram lengths (a check).

    The database adds the histograms up slot by slot (``latency_hist->>i``),
    so only one row per bucket comes back, never every rollup row's JSON: a
    30-day hourly series over 144,000 rollup rows is one aggregate query.
    """
    slots = {
        f"h{index}": Sum(Cast(KeyTextTransform(str(index), "latency_hist"), BigIntegerField()))
        for index in range(histogram.NUM_BUCKETS)
    }
    length = JsonArrayLength("latency_hist")
    return {**{name: Sum(name) for name in COUNTERS}, **slots, "min_len": Min(length), "max_len": Max(length)}


def _bucket_histogram(row: Mapping[str, Any]) -> list[int]:
    if row["min_len"] != histogram.NUM_BUCKETS or row["max_len"] != histogram.NUM_BUCKETS:
        # Data written with other bounds must not be mixed in silently (see analytics.histogram).
        raise ValueError(
            f"rollup histograms of {row['min_len']}..{row['max_len']} buckets, expected {histogram.NUM_BUCKETS}"
        )
    return [row[f"h{index}"] or 0 for index in range(histogram.NUM_BUCKETS)]


def analytics_series(query: AnalyticsQuery) -> tuple[list[Point], Point]:
    """One point per bucket of the range (empty buckets are zeros) and the range's totals.

    One aggregate query grouped by bucket; the totals add the buckets' counters
    and ``histogram.merge`` their histograms. Memory is bounded by the points.
    """
    rows = rollup_rows(query).order_by().values("bucket_start").annotate(**_series_aggregates())
    found = {row["bucket_start"]: (row, _bucket_histogram(row)) for row in rows}
    first = _floor(query.start, query.granularity)
    series = []
    for index in range(query.points):
        bucket = first + index * query.step
        series.append(_point(bucket, *found[bucket]) if bucket in found else Point(bucket_start=bucket))
    totals = {name: sum(row[name] or 0 for row, _ in found.values()) for name in COUNTERS}
    hist = histogram.merge(hist for _, hist in found.values()) if found else None
    return series, _point(first, totals, hist)


def _top(rows: QuerySet, column: str, limit: int) -> list[dict[str, Any]]:
    return list(
        rows.values(column)
        .annotate(
            n=Sum("requests"),
            e=Sum("errors"),
            bi=Sum("bytes_in"),
            bo=Sum("bytes_out"),
        )
        .order_by("-n", column)[:limit]
    )


def analytics_top_apis(query: AnalyticsQuery) -> list[TopRow]:
    """The APIs with the most requests (requests that matched no API are left out)."""
    found = _top(rollup_rows(query).filter(api_id__isnull=False), "api_id", query.top)
    names = {
        api.pk: f"{api.name} {api.version}".strip()
        for api in API.objects.filter(tenant=query.tenant, pk__in=[row["api_id"] for row in found])
    }
    return [_row(str(row["api_id"]), names.get(row["api_id"]), row) for row in found]


def analytics_top_consumers(query: AnalyticsQuery) -> list[TopRow]:
    """The consumers with the most requests (anonymous requests are left out)."""
    found = _top(rollup_rows(query).filter(consumer_id__isnull=False), "consumer_id", query.top)
    names = dict(
        Consumer.objects.filter(tenant=query.tenant, pk__in=[row["consumer_id"] for row in found]).values_list(
            "pk", "name"
        )
    )
    return [_row(str(row["consumer_id"]), names.get(row["consumer_id"]), row) for row in found]


def analytics_deny_reasons(query: AnalyticsQuery) -> list[TopRow]:
    """Why the gateway answered itself (``deny_reason``), most frequent first."""
    found = _top(rollup_rows(query).exclude(deny_reason=""), "deny_reason", query.top)
    return [_row(row["deny_reason"], row["deny_reason"], row) for row in found]


def _row(key: str, name: str | None, row: Mapping[str, Any]) -> TopRow:
    return TopRow(
        key=key,
        name=name,
        requests=row["n"] or 0,
        errors=row["e"] or 0,
        bytes_in=row["bi"] or 0,
        bytes_out=row["bo"] or 0,
    )


def analytics_report(query: AnalyticsQuery) -> AnalyticsReport:
    """Everything a dashboard draws for one query."""
    series, totals = analytics_series(query)
    return AnalyticsReport(
        query=query,
        series=series,
        totals=totals,
        top_apis=analytics_top_apis(query),
        top_consumers=analytics_top_consumers(query),
        deny_reasons=analytics_deny_reasons(query),
    )


def analytics_filter_choices(*, tenant: Tenant) -> dict[str, list[tuple[str, str]]]:
    """The tenant's APIs, consumers and applications, for filter drop-downs (bounded)."""
    apis = API.objects.filter(tenant=tenant).order_by("name", "version").values_list("pk", "name", "version")[:500]
    consumers = Consumer.objects.filter(tenant=tenant).order_by("name").values_list("pk", "name")[:500]
    applications = (
        Application.objects.filter(consumer__tenant=tenant)
        .order_by("consumer__name", "name")
        .values_list("pk", "consumer__name", "name")[:500]
    )
    return {
        "api": [(str(pk), f"{name} {version}".strip()) for pk, name, version in apis],
        "consumer": [(str(pk), name) for pk, name in consumers],
        "application": [(str(pk), f"{consumer} / {name}") for pk, consumer, name in applications],
    }


def usage_record_list(
    *,
    tenant: Tenant,
    start: datetime | None = None,
    end: datetime | None = None,
    api_id: UUID | None = None,
    consumer_id: UUID | None = None,
    application_id: UUID | None = None,
    status: int | None = None,
    deny_reason: str | None = None,
    now: datetime | None = None,
) -> QuerySet[UsageRecord]:
    """A tenant's raw usage records in a bounded time range (default: the last 24 hours), newest first.

    The range is bounded (``MAX_RECORD_RANGE``) so a page never scans more
    than a month's partition. Records hold only the key's prefix, never a key.
    """
    now = now or datetime.now(UTC)
    end = end or now
    start = start or end - DEFAULT_RANGE
    if start >= end:
        raise AnalyticsQueryError("start must be before end.", details={"start": ["Must be before end."]})
    if end - start > MAX_RECORD_RANGE:
        raise AnalyticsQueryError(
            f"Raw records are listed at most {MAX_RECORD_RANGE.days} days at a time; use analytics for longer ranges.",
            details={"start": [f"At most {MAX_RECORD_RANGE.days} days before end."]},
        )
    filters = Q(tenant_id=tenant.pk, timestamp__gte=start, timestamp__lt=end)
    for name, value in (
        ("api_id", api_id),
        ("consumer_id", consumer_id),
        ("application_id", application_id),
        ("status", status),
        ("deny_reason", deny_reason),
    ):
        if value is not None:
            filters &= Q(**{name: value})
    return UsageRecord.objects.filter(filters).order_by("-timestamp", "-record_id")


def csv_safe(value: object) -> str:
    """A cell a spreadsheet will not run: text starting with = + - @ (or a tab/CR) gets a leading '."""
    text = "" if value is None else str(value)
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


CSV_HEADER: tuple[str, ...] = (
    "section",
    "bucket_start",
    "key",
    "name",
    "requests",
    "errors",
    "error_rate",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "bytes_in",
    "bytes_out",
)


def analytics_csv_rows(report: AnalyticsReport) -> Iterable[list[str]]:
    """The report as CSV rows: the series, then the totals, top APIs, top consumers and deny reasons.

    One file answers the same query the page draws; ``section`` says which
    part a row belongs to. Every cell goes through ``csv_safe`` (names are
    operator-chosen text).
    """
    yield list(CSV_HEADER)
    for point in report.series:
        yield _csv_point("series", point, point.bucket_start.isoformat())
    yield _csv_point("totals", report.totals, "")
    for section, rows in (
        ("top_api", report.top_apis),
        ("top_consumer", report.top_consumers),
        ("deny_reason", report.deny_reasons),
    ):
        for row in rows:
            yield [
                csv_safe(value)
                for value in (
                    section,
                    "",
                    row.key,
                    row.name,
                    row.requests,
                    row.errors,
                    row.error_rate,
                    None,
                    None,
                    None,
                    row.bytes_in,
                    row.bytes_out,
                )
            ]


def _csv_point(section: str, point: Point, bucket: str) -> list[str]:
    values = (
        section,
        bucket,
        "",
        "",
        point.requests,
        point.errors,
        point.error_rate,
        point.p50,
        point.p95,
        point.p99,
        point.bytes_in,
        point.bytes_out,
    )
    return [csv_safe(value) for value in values]
