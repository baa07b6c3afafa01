"""usage_records_ingest: idempotent writes, defensive row conversion, the kept time window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from analytics.ingest import usage_records_ingest
from analytics.models import UsageRecord
from tests.analytics.support import counter, make_record

pytestmark = pytest.mark.django_db


def test_the_same_batch_twice_gives_one_row_each():
    batch = [make_record() for _ in range(50)]
    first = usage_records_ingest(records=batch)
    second = usage_records_ingest(records=batch)
    assert UsageRecord.objects.count() == 50
    assert first.inserted == 50
    assert first.received == second.received == 50


def test_duplicates_inside_one_batch_are_one_row():
    record = make_record()
    usage_records_ingest(records=[record, record, make_record()])
    assert UsageRecord.objects.count() == 2


def test_columns_round_trip():
    moment = datetime(2026, 11, 15, 12, 30, 45, 123456, tzinfo=UTC)
    now = datetime(2026, 11, 20, tzinfo=UTC)
    record = make_record(at=moment, status=403, deny_reason="acl_denied", upstream_latency_us=None)
    usage_records_ingest(records=[record], now=now)
    row = UsageRecord.objects.get()
    assert row.timestamp == moment
    assert row.record_id == record[0]
    assert str(row.tenant_id) == record[3]
    assert (row.status, row.deny_reason, row.upstream_latency_us) == (403, "acl_denied", None)
    assert row.client_ip == "203.0.113.9"
    assert row.key_prefix == "apim_abc123def456"


def test_hostile_values_are_made_safe_not_fatal():
    record = make_record(
        tenant_id="not-a-uuid",
        path="/" + "a" * 5000,
        user_agent="x\x00y",
        client_ip="999.1.1.1",
        status="oops",
        latency_us=-5,
        bytes_out=2**70,
    )
    no_id = make_record(record_id="")
    before = counter("apim_usage_records_dropped_total", reason="invalid")
    result = usage_records_ingest(records=[record, no_id, ("short",)])
    assert result.invalid == 2
    assert counter("apim_usage_records_dropped_total", reason="invalid") - before == 2
    row = UsageRecord.objects.get()
    assert row.tenant_id is None
    assert len(row.path) == 2048
    assert row.user_agent == "xy"
    assert row.client_ip is None
    assert (row.status, row.latency_us, row.bytes_out) == (0, 0, 2**63 - 1)


def test_records_outside_the_kept_window_are_counted_not_written(settings):
    settings.APIM_USAGE_RETENTION_MONTHS = 3
    now = datetime(2026, 11, 20, tzinfo=UTC)
    too_old = make_record(at=datetime(2026, 7, 31, 23, 59, tzinfo=UTC))
    oldest_kept = make_record(at=datetime(2026, 8, 1, tzinfo=UTC))
    far_future = make_record(at=now + timedelta(days=400))
    before = counter("apim_usage_records_dropped_total", reason="out_of_range")
    result = usage_records_ingest(records=[too_old, oldest_kept, far_future], now=now)
    assert result.out_of_range == 2
    assert counter("apim_usage_records_dropped_total", reason="out_of_range") - before == 2
    assert list(UsageRecord.objects.values_list("record_id", flat=True)) == [oldest_kept[0]]
