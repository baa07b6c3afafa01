"""The Redis stream → consumer group → COPY → ack pipeline (real Redis, real database)."""

from __future__ import annotations

import asyncio
from io import StringIO

import msgpack
import pytest
from django.core.management import CommandError, call_command

from analytics.models import UsageRecord
from analytics.pipeline import dead_letter_stream, usage_stream_drain
from analytics.recorder import RedisStreamSink, UsageRecorder
from analytics.records import pack_batch
from analytics.services import usage_drain
from tests.analytics.support import is_postgresql, make_record, record_kwargs

pytestmark = pytest.mark.django_db


def add_batch(client, stream, records):
    return client.xadd(stream, {"b": pack_batch(records)})


def test_gateway_recorder_to_stream_to_rows(redis_client, usage_stream, settings):
    async def gateway():
        recorder = UsageRecorder(
            sink=RedisStreamSink(url=settings.APIM_USAGE_REDIS_URL, stream=usage_stream, maxlen=10_000),
            batch_size=100,
        )
        await recorder.start()
        for i in range(750):
            recorder.record(**record_kwargs(request_id=f"g{i}"))
        await recorder.stop()

    asyncio.run(gateway())
    assert redis_client.xlen(usage_stream) == 8  # one entry per batch
    result = usage_drain(consumer="w1")
    assert (result.entries, result.records, result.inserted) == (8, 750, 750)
    assert UsageRecord.objects.count() == 750
    assert redis_client.xlen(usage_stream) == 0  # acknowledged and deleted
    assert redis_client.xpending(usage_stream, "ingest")["pending"] == 0


def test_the_same_batch_delivered_twice_is_written_once(redis_client, usage_stream):
    batch = [make_record() for _ in range(40)]
    add_batch(redis_client, usage_stream, batch)
    add_batch(redis_client, usage_stream, batch)  # a flush retried after Redis had stored it
    result = usage_drain(consumer="w1")
    assert (result.entries, result.records, result.dead_letters) == (2, 80, 0)
    if is_postgresql():
        assert result.inserted == 40  # new rows only (SQLite reports rows offered)
    assert UsageRecord.objects.count() == 40
    add_batch(redis_client, usage_stream, batch)  # and once more, in a later drain
    usage_drain(consumer="w1")
    assert UsageRecord.objects.count() == 40


def test_entries_of_a_consumer_that_died_are_claimed(redis_client, usage_stream):
    batch = [make_record() for _ in range(10)]
    add_batch(redis_client, usage_stream, batch)
    redis_client.xgroup_create(usage_stream, "ingest", id="0")
    delivered = redis_client.xreadgroup("ingest", "dead-worker", {usage_stream: ">"}, count=10)
    assert len(delivered[0][1]) == 1  # read, never acknowledged: the worker died
    assert usage_drain(consumer="w2", claim_idle_ms=60_000).entries == 0  # not idle long enough yet
    result = usage_drain(consumer="w2", claim_idle_ms=0)
    assert (result.claimed, result.inserted) == (1, 10)
    assert UsageRecord.objects.count() == 10
    assert redis_client.xpending(usage_stream, "ingest")["pending"] == 0


def test_a_consumer_rereads_its_own_unacknowledged_entries(redis_client, usage_stream):
    add_batch(redis_client, usage_stream, [make_record() for _ in range(5)])
    redis_client.xgroup_create(usage_stream, "ingest", id="0")
    redis_client.xreadgroup("ingest", "w1", {usage_stream: ">"}, count=10)
    result = usage_drain(consumer="w1", claim_idle_ms=60_000)
    assert result.inserted == 5


def test_a_poison_entry_goes_to_the_dead_letter_stream_and_the_rest_lands(redis_client, usage_stream):
    add_batch(redis_client, usage_stream, [make_record() for _ in range(3)])
    redis_client.xadd(usage_stream, {"b": b"\xc1 not msgpack"})
    redis_client.xadd(usage_stream, {"b": msgpack.packb({"not": "a batch"})})
    add_batch(redis_client, usage_stream, [make_record() for _ in range(2)])
    result = usage_drain(consumer="w1")
    assert result.dead_letters == 2
    assert UsageRecord.objects.count() == 5
    dead = redis_client.xrange(dead_letter_stream(usage_stream))
    assert dead and dead[0][1][b"b"] == b"\xc1 not msgpack"
    assert redis_client.xlen(usage_stream) == 0


def test_max_entries_bounds_one_drain(redis_client, usage_stream):
    for _ in range(5):
        add_batch(redis_client, usage_stream, [make_record()])
    result = usage_stream_drain(
        client=redis_client, stream=usage_stream, group="ingest", consumer="w1", count=2, max_entries=2
    )
    assert result.entries == 2
    assert usage_drain(consumer="w1").entries == 3
    assert UsageRecord.objects.count() == 5


def test_usage_drain_command_reports_what_it_did(redis_client, usage_stream):
    add_batch(redis_client, usage_stream, [make_record() for _ in range(4)])
    out = StringIO()
    call_command("usage_drain", "--consumer", "ops", stdout=out)
    assert "Drained 1 stream entries: 4 records, 4 new rows" in out.getvalue()
    with pytest.raises(CommandError, match="--max-entries must not be negative"):
        call_command("usage_drain", "--max-entries", "-1")


def test_usage_drain_command_without_redis_says_so(settings):
    settings.APIM_USAGE_REDIS_URL = None
    out = StringIO()
    call_command("usage_drain", stdout=out)
    assert "No usage Redis configured" in out.getvalue()


def test_usage_drain_command_with_redis_down_is_one_line_error(settings):
    settings.APIM_USAGE_REDIS_URL = "redis://127.0.0.1:1/0"
    with pytest.raises(CommandError, match="Redis unavailable"):
        call_command("usage_drain")


def test_beat_tasks_run_the_same_services(redis_client, usage_stream, settings):
    from analytics.tasks import usage_drain_task, usage_partitions_task

    assert settings.CELERY_BEAT_SCHEDULE["usage-drain"]["task"] == usage_drain_task.name
    assert settings.CELERY_BEAT_SCHEDULE["usage-partitions"]["task"] == usage_partitions_task.name
    add_batch(redis_client, usage_stream, [make_record() for _ in range(3)])
    assert usage_drain_task.delay().get()["records"] == 3
    assert UsageRecord.objects.count() == 3
    assert usage_partitions_task.delay().get()["dropped"] == []
