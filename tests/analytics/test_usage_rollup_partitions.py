"""Rollup tables: monthly partitions ahead, month-boundary buckets, retention by dropping partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.db import connection

from analytics import histogram
from analytics.ingest import usage_records_ingest
from analytics.models import DayRollup, HourRollup, MinuteRollup
from analytics.partitions import add_months, ensure_months, list_partitions, month_start
from analytics.rollups import ROLLUP_TABLES, usage_rollup_range
from analytics.services import usage_partitions_maintain
from analytics.tasks import usage_partitions_task
from tests.analytics.support import is_postgresql, make_record

pytestmark = pytest.mark.django_db

RETENTION = {"minute": 2, "hour": 13, "day": 60}


@pytest.fixture
def needs_pg():
    if not is_postgresql():
        pytest.skip("partitions exist on PostgreSQL only (DATABASE_URL=postgres://...)")


def make_rollup(model, at: datetime, requests: int = 1):
    return model.objects.create(
        bucket_start=at, tenant_id="7a0f1d0e-0000-4000-8000-000000000001", status_class=2, requests=requests,
        latency_hist=histogram.empty(),
    )  # fmt: skip


def test_rollup_partitions_exist_at_least_two_months_ahead_after_migrate(needs_pg):
    this_month = month_start(datetime.now(UTC))
    for table in ROLLUP_TABLES.values():
        assert {this_month, add_months(this_month, 1), add_months(this_month, 2)} <= set(list_partitions(table))


def test_partition_maintenance_and_command_create_rollup_partitions_ahead(needs_pg):
    this_month = month_start(datetime.now(UTC))
    report = usage_partitions_maintain(ahead=6, retain_months=None)
    for granularity, table in ROLLUP_TABLES.items():
        assert {add_months(this_month, i) for i in range(7)} <= set(list_partitions(table))
        assert add_months(this_month, 6) in report.rollup_created[granularity]
    out = StringIO()
    call_command("usage_partitions", "--ahead", "8", stdout=out)
    assert add_months(this_month, 8) in list_partitions(ROLLUP_TABLES["day"])
    assert "minute rollup partitions:" in out.getvalue()


def test_a_rollup_of_a_month_without_partitions_creates_them():
    now = datetime.now(UTC)
    previous = add_months(month_start(now), -1)
    boundary = datetime(previous.year, previous.month, 1, tzinfo=UTC) - timedelta(minutes=1)  # last minute before
    usage_records_ingest(
        records=[make_record(at=boundary + timedelta(seconds=59)), make_record(at=boundary + timedelta(minutes=1))]
    )
    usage_rollup_range(since=boundary, until=boundary + timedelta(minutes=2), now=now)
    assert sorted(MinuteRollup.objects.values_list("bucket_start", flat=True)) == [
        boundary,
        boundary + timedelta(minutes=1),
    ]
    assert DayRollup.objects.count() == 2  # the last day of one month and the first of the next
    if is_postgresql():
        assert month_start(boundary) in list_partitions(ROLLUP_TABLES["minute"])


def test_retention_drops_whole_rollup_partitions_per_granularity(needs_pg):
    now = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    months = [add_months(month_start(now), -i) for i in range(15)]  # 2025-09 … 2026-11
    for table in ROLLUP_TABLES.values():
        ensure_months(table, months)
    for month in months:
        at = datetime(month.year, month.month, 3, tzinfo=UTC)
        for model in (MinuteRollup, HourRollup, DayRollup):
            make_rollup(model, at)
    with connection.cursor() as cursor:  # a table that only looks related is not ours to drop
        cursor.execute("CREATE TABLE am_usage_rollup_minute_archive (id int)")
    report = usage_partitions_maintain(ahead=3, retain_months=None, rollup_retain_months=RETENTION, now=now)
    this_month = month_start(now)
    assert report.rollup_cutoffs == {g: add_months(this_month, -months) for g, months in RETENTION.items()}
    assert report.rollup_dropped["minute"] == sorted(m for m in months if m < add_months(month_start(now), -2))
    assert report.rollup_dropped["hour"] == [add_months(month_start(now), -14)]
    assert report.rollup_dropped["day"] == []
    assert min(list_partitions(ROLLUP_TABLES["minute"])) == add_months(month_start(now), -2)
    assert MinuteRollup.objects.count() == 3
    assert HourRollup.objects.count() == 14
    assert DayRollup.objects.count() == 15
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('am_usage_rollup_minute_archive')")
        assert cursor.fetchone()[0] is not None


def test_retention_on_a_plain_table_deletes_old_rows():
    if is_postgresql():
        pytest.skip("the plain-table path is for SQLite")
    now = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    make_rollup(MinuteRollup, datetime(2026, 8, 31, 23, 59, tzinfo=UTC))
    make_rollup(MinuteRollup, datetime(2026, 9, 1, tzinfo=UTC))
    make_rollup(HourRollup, datetime(2026, 8, 31, 23, tzinfo=UTC))
    usage_partitions_maintain(ahead=3, retain_months=None, rollup_retain_months=RETENTION, now=now)
    assert list(MinuteRollup.objects.values_list("bucket_start", flat=True)) == [datetime(2026, 9, 1, tzinfo=UTC)]
    assert HourRollup.objects.count() == 1


def test_the_scheduled_retention_task_covers_rollups(settings, needs_pg):
    settings.APIM_ROLLUP_RETENTION_MONTHS = {"minute": 2, "hour": 0, "day": 0}
    old = add_months(month_start(datetime.now(UTC)), -4)
    ensure_months(ROLLUP_TABLES["minute"], [old])
    ensure_months(ROLLUP_TABLES["hour"], [old])
    result = usage_partitions_task.delay().get()
    assert old.isoformat() in result["rollup_dropped"]["minute"]
    assert "hour" not in result["rollup_dropped"]
    assert old not in list_partitions(ROLLUP_TABLES["minute"])
    assert old in list_partitions(ROLLUP_TABLES["hour"])
