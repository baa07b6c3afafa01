"""analytics.rollups: recomputed minute / hour / day rollups (both the SQL and the portable path)."""

from __future__ import annotations

import math
import random
import threading
import uuid
from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from analytics import histogram
from analytics.ingest import usage_records_ingest
from analytics.models import ROLLUP_MODELS, DayRollup, HourRollup, MinuteRollup
from analytics.partitions import ensure_months, list_partitions
from analytics.rollups import (
    COUNTERS,
    DIMENSIONS,
    ROLLUP_TABLES,
    rollup_days,
    rollup_hours,
    rollup_minutes,
    usage_rollup_range,
    usage_rollup_recent,
)
from analytics.tasks import usage_rollup_task
from tests.analytics.support import make_record

pytestmark = pytest.mark.django_db

NOW = datetime(2026, 11, 20, 12, 0, 30, tzinfo=UTC)  # the last closed minute is 11:59
TENANT = str(uuid.uuid4())
API = str(uuid.uuid4())
CONSUMER = str(uuid.uuid4())
APP = str(uuid.uuid4())


def record(at: datetime, **overrides):
    values = {"tenant_id": TENANT, "api_id": API, "consumer_id": CONSUMER, "application_id": APP}
    values.update(overrides)
    return make_record(at=at, **values)


def without_tenant(wire: tuple) -> tuple:
    return (*wire[:3], None, *wire[4:])  # the wire tuple's fourth field is the tenant


def ingest(*records) -> None:
    result = usage_records_ingest(records=list(records), now=NOW)
    assert result.invalid == result.out_of_range == 0


def rows(model) -> list[tuple]:
    """Every row without its id, sorted: what a rerun must reproduce exactly."""
    fields = ("bucket_start", *DIMENSIONS, *COUNTERS, "latency_hist")
    return sorted(
        (tuple(str(v) if isinstance(v, uuid.UUID) else v for v in row) for row in model.objects.values_list(*fields)),
        key=repr,
    )


def totals(model, **filters) -> dict:
    result = dict.fromkeys(COUNTERS, 0)
    hists = []
    for row in model.objects.filter(**filters).values(*COUNTERS, "latency_hist"):
        for name in COUNTERS:
            result[name] += row[name]
        hists.append(row["latency_hist"])
    result["latency_hist"] = histogram.merge(hists)
    return result


def test_minute_rollup_aggregates_counters_and_histogram():
    minute = datetime(2026, 11, 20, 11, 30, tzinfo=UTC)
    ingest(
        record(minute + timedelta(seconds=1), latency_us=400, upstream_latency_us=300, gateway_latency_us=100),
        record(minute + timedelta(seconds=59.999), latency_us=2500, upstream_latency_us=None, gateway_latency_us=2500,
               bytes_in=5, bytes_out=7),
        record(minute + timedelta(minutes=1), latency_us=900),  # the next minute
    )  # fmt: skip
    result = rollup_minutes(minute, minute + timedelta(minutes=2), now=NOW)
    assert (result.buckets, result.rows) == (2, 2)
    row = MinuteRollup.objects.get(bucket_start=minute)
    assert str(row.tenant_id) == TENANT and str(row.api_id) == API
    assert (row.requests, row.errors, row.status_class, row.deny_reason) == (2, 0, 2, "")
    assert (row.bytes_in, row.bytes_out) == (10 + 5, 120 + 7)
    assert (row.latency_us_sum, row.upstream_latency_us_sum, row.gateway_latency_us_sum) == (2900, 300, 2600)
    assert row.latency_hist == histogram.histogram_of([400, 2500])
    assert MinuteRollup.objects.get(bucket_start=minute + timedelta(minutes=1)).latency_hist == histogram.histogram_of(
        [900]
    )


def test_grouping_by_status_class_deny_reason_and_null_dimensions():
    minute = datetime(2026, 11, 20, 10, 5, tzinfo=UTC)
    at = minute + timedelta(seconds=10)
    other_tenant = str(uuid.uuid4())
    ingest(
        record(at, status=200),
        record(at, status=204),
        record(at, status=404),
        record(at, status=503),
        record(at, status=429, deny_reason="rate_limited", upstream_latency_us=None),
        record(at, status=429, deny_reason="rate_limited", upstream_latency_us=None),
        record(at, status=401, deny_reason="key_invalid", consumer_id=None, application_id=None),
        record(at, status=0, deny_reason="", api_id=None, consumer_id=None, application_id=None),
        record(at, status=200, tenant_id=other_tenant),
        without_tenant(make_record(at=at)),  # no tenant: not rolled up
    )
    rollup_minutes(minute, minute + timedelta(minutes=1), now=NOW)
    got = {
        (str(r.tenant_id), r.api_id and str(r.api_id), r.consumer_id and str(r.consumer_id), r.status_class,
         r.deny_reason): (r.requests, r.errors)
        for r in MinuteRollup.objects.all()
    }  # fmt: skip
    assert got == {
        (TENANT, API, CONSUMER, 2, ""): (2, 0),
        (TENANT, API, CONSUMER, 4, ""): (1, 1),
        (TENANT, API, CONSUMER, 5, ""): (1, 1),
        (TENANT, API, CONSUMER, 4, "rate_limited"): (2, 2),
        (TENANT, API, None, 4, "key_invalid"): (1, 1),
        (TENANT, None, None, 0, ""): (1, 1),
        (other_tenant, API, CONSUMER, 2, ""): (1, 0),
    }
    assert MinuteRollup.objects.get(deny_reason="key_invalid").application_id is None


def test_recompute_twice_gives_identical_rows():
    rng = random.Random(7)
    start = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)
    tenants = [str(uuid.uuid4()) for _ in range(2)]
    ingest(
        *(
            record(
                start + timedelta(seconds=rng.uniform(0, 3 * 3600)),
                tenant_id=rng.choice(tenants),
                status=rng.choice([200, 201, 404, 500, 0]),
                latency_us=rng.randint(50, 3_000_000),
            )
            for _ in range(300)
        )
    )
    until = start + timedelta(hours=3)
    usage_rollup_range(since=start, until=until, now=NOW)
    first = {name: rows(model) for name, model in ROLLUP_MODELS.items()}
    assert first["minute"] and first["hour"] and first["day"]
    usage_rollup_range(since=start, until=until, now=NOW)
    assert {name: rows(model) for name, model in ROLLUP_MODELS.items()} == first
    assert sum(r.requests for r in HourRollup.objects.all()) == 300


def test_hour_and_day_equal_the_sum_of_their_minutes():
    rng = random.Random(3)
    day = datetime(2026, 11, 19, tzinfo=UTC)
    samples = [rng.randint(10, 90_000_000) for _ in range(400)]
    ingest(*(record(day + timedelta(seconds=rng.uniform(0, 86400 - 1)), latency_us=value) for value in samples))
    end = day + timedelta(days=1)
    rollup_minutes(day, end, now=NOW)
    rollup_hours(day, end, now=NOW)
    rollup_days(day, end, now=NOW)
    for hour in (day + timedelta(hours=h) for h in range(24)):
        minute_totals = totals(MinuteRollup, bucket_start__gte=hour, bucket_start__lt=hour + timedelta(hours=1))
        assert totals(HourRollup, bucket_start=hour) == minute_totals
    assert totals(DayRollup) == totals(MinuteRollup) == totals(HourRollup)
    day_hist = totals(DayRollup)["latency_hist"]
    assert day_hist == histogram.histogram_of(samples)
    assert DayRollup.objects.get().bucket_start == day
    exact = sorted(samples)[math.ceil(0.95 * len(samples)) - 1]
    index = histogram.bucket_of(exact)
    low = 0 if index == 0 else histogram.BOUNDS_MS[index - 1]
    assert low <= histogram.percentile(day_hist, 0.95) <= histogram.BOUNDS_MS[index]


def test_only_closed_minutes_are_rolled_up():
    ingest(record(NOW - timedelta(seconds=40)), record(NOW - timedelta(seconds=10)))  # 11:59:50 and 12:00:20
    result = rollup_minutes(NOW - timedelta(hours=1), NOW + timedelta(hours=1), now=NOW)
    assert result.end == datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
    assert list(MinuteRollup.objects.values_list("bucket_start", "requests")) == [
        (datetime(2026, 11, 20, 11, 59, tzinfo=UTC), 1)
    ]
    usage_rollup_recent(now=NOW)
    hour = HourRollup.objects.get(bucket_start=datetime(2026, 11, 20, 11, tzinfo=UTC))
    assert hour.requests == 1
    assert not HourRollup.objects.filter(bucket_start=datetime(2026, 11, 20, 12, tzinfo=UTC)).exists()


def test_a_late_record_within_grace_is_included_by_the_next_run(settings):
    settings.APIM_ROLLUP_GRACE_SECONDS = 600
    minute = datetime(2026, 11, 20, 11, 55, tzinfo=UTC)
    ingest(record(minute + timedelta(seconds=5)))
    usage_rollup_recent(now=NOW)
    assert MinuteRollup.objects.get(bucket_start=minute).requests == 1
    ingest(record(minute + timedelta(seconds=30), status=500))  # arrives 5 minutes late
    usage_rollup_recent(now=NOW + timedelta(minutes=1))
    row = MinuteRollup.objects.get(bucket_start=minute, status_class=2)
    assert (row.requests, row.errors) == (1, 0)
    late = MinuteRollup.objects.get(bucket_start=minute, status_class=5)
    assert (late.requests, late.errors) == (1, 1)
    hour = datetime(2026, 11, 20, 11, tzinfo=UTC)
    assert sum(HourRollup.objects.filter(bucket_start=hour).values_list("requests", flat=True)) == 2
    assert sum(DayRollup.objects.values_list("requests", flat=True)) == 2


def test_a_record_later_than_grace_waits_for_the_backfill_command(settings):
    settings.APIM_ROLLUP_GRACE_SECONDS = 600
    old_minute = datetime(2026, 11, 20, 11, 30, tzinfo=UTC)  # closed 30 minutes before NOW
    ingest(record(old_minute + timedelta(seconds=1)))
    ingest(record(datetime(2026, 11, 20, 11, 50, 1, tzinfo=UTC)))  # the oldest minute within the grace
    report = usage_rollup_recent(now=NOW).as_dict()
    assert report["minute"]["start"] == "2026-11-20T11:49:00+00:00"
    assert MinuteRollup.objects.get().bucket_start == datetime(2026, 11, 20, 11, 50, tzinfo=UTC)
    assert not MinuteRollup.objects.filter(bucket_start=old_minute).exists()
    out = StringIO()
    call_command("usage_rollup", "--since", "2026-11-20T11:00", "--until", "2026-11-20T12:00Z", stdout=out)
    assert MinuteRollup.objects.get(bucket_start=old_minute).requests == 1
    assert HourRollup.objects.get(bucket_start=datetime(2026, 11, 20, 11, tzinfo=UTC)).requests == 2
    assert "minute: 60 buckets from 2026-11-20 11:00 to 2026-11-20 12:00 UTC, 2 rows." in out.getvalue()


def test_the_command_can_keep_recent_rollups_current_without_beat():
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=3)
    usage_records_ingest(records=[record(minute + timedelta(seconds=1))])
    out = StringIO()
    err = StringIO()
    call_command("usage_rollup", "--every", "0.01", "--times", "2", stdout=out, stderr=err)
    assert err.getvalue() == ""
    assert out.getvalue().count("minute: ") == 2
    assert MinuteRollup.objects.get(bucket_start=minute).requests == 1
    with pytest.raises(CommandError, match="no --since"):
        call_command("usage_rollup", "--every", "5", "--since", "2026-11-20", stdout=StringIO())
    with pytest.raises(CommandError, match="--since is required"):
        call_command("usage_rollup", stdout=StringIO())
    with pytest.raises(CommandError, match="positive"):
        call_command("usage_rollup", "--every", "0", stdout=StringIO())


def test_backfill_command_refuses_bad_ranges():
    with pytest.raises(CommandError, match="not an ISO date"):
        call_command("usage_rollup", "--since", "yesterday", stdout=StringIO())
    with pytest.raises(CommandError, match="before --until"):
        call_command("usage_rollup", "--since", "2026-11-20", "--until", "2026-11-19", stdout=StringIO())


def test_the_beat_task_recomputes_recent_minutes():
    minute = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(minutes=2)
    usage_records_ingest(records=[record(minute + timedelta(seconds=3))])
    report = usage_rollup_task.delay().get()
    assert report["minute"]["buckets"] >= 11
    assert MinuteRollup.objects.get(bucket_start=minute).requests == 1


def test_recompute_never_reaches_past_the_source_retention(settings):
    settings.APIM_ROLLUP_RETENTION_MONTHS = {"minute": 2, "hour": 13, "day": 60}
    old_hour = datetime(2026, 6, 10, 8, tzinfo=UTC)  # minutes of June are past the 2-month minute retention
    ensure_months(ROLLUP_TABLES["hour"], [old_hour.date()])
    HourRollup.objects.create(
        bucket_start=old_hour, tenant_id=TENANT, status_class=2, requests=5, latency_hist=histogram.empty()
    )
    report = usage_rollup_range(since=old_hour, until=old_hour + timedelta(days=1), now=NOW)
    assert report.results["hour"].start is None  # nothing recomputed: the hour is kept as it is
    assert HourRollup.objects.get(bucket_start=old_hour).requests == 5


@pytest.mark.django_db(transaction=True)
def test_concurrent_recomputes_never_duplicate_a_bucket():
    if connection.vendor != "postgresql":
        pytest.skip("the advisory lock is PostgreSQL's; SQLite serializes writers itself")
    start = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
    ingest(*(record(start + timedelta(seconds=7 * i), status=200 + (i % 4) * 100) for i in range(500)))
    errors = []
    barrier = threading.Barrier(4)

    def run() -> None:
        try:
            barrier.wait(timeout=30)
            usage_rollup_range(since=start, until=start + timedelta(hours=1), now=NOW)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == []
    keys = list(MinuteRollup.objects.values_list("bucket_start", *DIMENSIONS))
    assert len(keys) == len(set(keys))
    assert sum(MinuteRollup.objects.values_list("requests", flat=True)) == 500
    assert sum(HourRollup.objects.values_list("requests", flat=True)) == 500


def test_a_backfill_from_a_distant_past_starts_at_the_first_data(settings):
    settings.APIM_USAGE_RETENTION_MONTHS = 0
    settings.APIM_ROLLUP_RETENTION_MONTHS = {"minute": 0, "hour": 0, "day": 0}
    minute = datetime(2026, 11, 20, 9, 13, tzinfo=UTC)
    ingest(record(minute + timedelta(seconds=2)))
    report = usage_rollup_range(since=datetime(1990, 1, 1, tzinfo=UTC), until=NOW, now=NOW)
    assert report.results["minute"].start == minute
    assert report.results["hour"].start == datetime(2026, 11, 20, 9, tzinfo=UTC)
    assert report.results["day"].start == datetime(2026, 11, 20, tzinfo=UTC)
    assert MinuteRollup.objects.get().requests == 1
    if connection.vendor == "postgresql":
        assert min(list_partitions(ROLLUP_TABLES["minute"])).year == 2026


def test_a_long_backfill_without_data_does_nothing():
    report = usage_rollup_range(since=datetime(2025, 1, 1, tzinfo=UTC), until=NOW, now=NOW)
    assert all(result.start is None and result.rows == 0 for result in report.results.values())
