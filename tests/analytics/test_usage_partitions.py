"""Monthly partitions: month-boundary writes, partitions ahead, retention by dropping whole partitions."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from analytics.ingest import usage_records_ingest
from analytics.models import UsageRecord
from analytics.partitions import USAGE_RECORDS, add_months, ensure_months, list_partitions, month_start
from analytics.services import usage_partitions_maintain
from tests.analytics.support import is_postgresql, make_record

pytestmark = pytest.mark.django_db


@pytest.fixture
def needs_pg():
    if not is_postgresql():
        pytest.skip("partitions exist on PostgreSQL only (DATABASE_URL=postgres://...)")


def partition_of_rows() -> dict[str, str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT record_id, tableoid::regclass::text FROM am_usage_records")
        return dict(cursor.fetchall())


def test_first_and_last_instant_of_every_month_of_a_year_are_written():
    this_month = month_start(datetime.now(UTC))
    expected = {}
    records = []
    for offset in range(12):
        month = add_months(this_month, offset)
        first = datetime(month.year, month.month, 1, tzinfo=UTC)
        following = add_months(month, 1)
        last = datetime(following.year, following.month, 1, tzinfo=UTC) - timedelta(microseconds=1)
        for moment in (first, last):
            record = make_record(at=moment)
            records.append(record)
            expected[record[0]] = (moment, USAGE_RECORDS.partition_name(month))
    result = usage_records_ingest(records=records)
    assert result.out_of_range == result.invalid == 0
    stored = dict(UsageRecord.objects.values_list("record_id", "timestamp"))
    assert stored == {rid: moment for rid, (moment, _) in expected.items()}
    if is_postgresql():
        assert partition_of_rows() == {rid: name for rid, (_, name) in expected.items()}


def test_partitions_exist_at_least_two_months_ahead_after_migrate(needs_pg):
    months = list_partitions(USAGE_RECORDS)
    this_month = month_start(datetime.now(UTC))
    assert {this_month, add_months(this_month, 1), add_months(this_month, 2)} <= set(months)


def test_usage_partitions_command_creates_ahead(needs_pg):
    out = StringIO()
    call_command("usage_partitions", "--ahead", "6", stdout=out)
    this_month = month_start(datetime.now(UTC))
    assert {add_months(this_month, i) for i in range(7)} <= set(list_partitions(USAGE_RECORDS))
    call_command("usage_partitions", "--ahead", "6", stdout=out)  # idempotent
    assert "Partitions now:" in out.getvalue()


def test_retention_drops_whole_old_partitions_and_keeps_the_rest(needs_pg):
    now = datetime(2026, 11, 20, 8, 0, tzinfo=UTC)
    months = [add_months(month_start(now), -i) for i in range(7)]  # 2026-05 … 2026-11
    ensure_months(USAGE_RECORDS, months)
    kept_records = []
    for month in months:
        record = make_record(at=datetime(month.year, month.month, 10, tzinfo=UTC))
        usage_records_ingest(records=[record], now=now)
        if month >= add_months(month_start(now), -3):
            kept_records.append(record[0])
    with connection.cursor() as cursor:  # a table that only looks related is not ours to drop
        cursor.execute("CREATE TABLE am_usage_records_archive (id int)")
    report = usage_partitions_maintain(ahead=2, retain_months=3, now=now)
    assert [f"{m:%Y-%m}" for m in report.dropped] == ["2026-05", "2026-06", "2026-07"]
    remaining = list_partitions(USAGE_RECORDS)
    assert min(remaining) == add_months(month_start(now), -3)
    assert sorted(UsageRecord.objects.values_list("record_id", flat=True)) == sorted(kept_records)
    with connection.cursor() as cursor:
        cursor.execute("SELECT to_regclass('am_usage_records_archive') IS NOT NULL")
        assert cursor.fetchone()[0]


def test_after_retention_a_late_record_for_a_kept_month_still_lands(needs_pg, settings):
    settings.APIM_USAGE_RETENTION_MONTHS = 0
    now = datetime.now(UTC)
    old_month = add_months(month_start(now), -2)
    usage_records_ingest(records=[make_record(at=datetime(old_month.year, old_month.month, 2, tzinfo=UTC))])
    with connection.cursor() as cursor:  # a partition removed behind the ingest's back
        cursor.execute(f"DROP TABLE {USAGE_RECORDS.partition_name(old_month)}")
    usage_records_ingest(records=[make_record(at=datetime(old_month.year, old_month.month, 3, tzinfo=UTC))])
    assert UsageRecord.objects.count() == 1


def test_retention_on_sqlite_deletes_old_rows():
    if is_postgresql():
        pytest.skip("SQLite path")
    now = datetime(2026, 11, 20, tzinfo=UTC)
    old = make_record(at=datetime(2026, 7, 31, 23, 59, 59, tzinfo=UTC))
    kept = make_record(at=datetime(2026, 8, 1, tzinfo=UTC))
    UsageRecord.objects.bulk_create(
        [UsageRecord(record_id=r[0], timestamp=datetime.fromtimestamp(r[1] / 1e6, UTC)) for r in (old, kept)]
    )
    usage_partitions_maintain(ahead=2, retain_months=3, now=now)
    assert list(UsageRecord.objects.values_list("record_id", flat=True)) == [kept[0]]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ahead", "1"], "--ahead must be between 2 and 36"),
        (["--retain-months", "-1"], "--retain-months must be between 0"),
    ],
)
def test_usage_partitions_command_refuses_bad_input(args, message):
    with pytest.raises(CommandError, match=message):
        call_command("usage_partitions", *args)
