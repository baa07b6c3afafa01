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


def test_a_full_stream_refuses_batches_and_nothing_is_trimmed(redis_client, usage_stream, settings, tmp_path):
    """At its bound the stream keeps every entry it has; the gateway spills the rest and replays it later."""
    from analytics.spill import SpillStore

    maxlen = 3
    for i in range(maxlen):  # a drain that is behind: the stream is at its bound
        add_batch(redis_client, usage_stream, [make_record(request_id=f"old{i}")])
    oldest = redis_client.xrange(usage_stream, count=1)[0][0]
    spill = SpillStore(directory=tmp_path, token="gw1", max_bytes=10**8)

    async def gateway_while_full():
        sink = RedisStreamSink(url=settings.APIM_USAGE_REDIS_URL, stream=usage_stream, maxlen=maxlen)
        recorder = UsageRecorder(sink=sink, spill=spill, batch_size=10)
        await recorder.start()
        for i in range(25):
            recorder.record(**record_kwargs(request_id=f"new{i}"))
        await recorder.stop()  # SIGTERM: what the stream refuses goes to the spill file

    asyncio.run(gateway_while_full())
    assert redis_client.xlen(usage_stream) == maxlen
    assert redis_client.xrange(usage_stream, count=1)[0][0] == oldest  # nothing trimmed
    assert UsageRecord.objects.count() == 0

    usage_drain(consumer="w1")  # the drain catches up: room again

    async def next_start():
        sink = RedisStreamSink(url=settings.APIM_USAGE_REDIS_URL, stream=usage_stream, maxlen=maxlen)
        recorder = UsageRecorder(sink=sink, spill=spill, batch_size=10)
        replayed = await recorder.replay()
        await recorder.stop()
        return replayed

    assert asyncio.run(next_start()) == 25
    usage_drain(consumer="w1")
    ids = set(UsageRecord.objects.values_list("request_id", flat=True))
    assert ids == {f"old{i}" for i in range(maxlen)} | {f"new{i}" for i in range(25)}


def test_dead_letters_are_listed_and_requeued_once_the_cause_is_fixed(redis_client, usage_stream):
    dead = dead_letter_stream(usage_stream)
    good = [make_record(request_id=f"dl{i}") for i in range(3)]
    # A batch the database refused at the time (say, before a migration), and one that is garbage.
    redis_client.xadd(dead, {"id": "1-0", "b": pack_batch(good), "reason": "refused: value too long"})
    redis_client.xadd(dead, {"id": "2-0", "b": b"\xc1 garbage", "reason": "not msgpack"})

    out = StringIO()
    call_command("usage_dead_letters", stdout=out)
    listing = out.getvalue()
    assert "2 dead-lettered batches" in listing and "refused: value too long" in listing and "was 1-0" in listing

    first_id = redis_client.xrange(dead, count=1)[0][0].decode()
    out = StringIO()
    call_command("usage_dead_letters", "--requeue", first_id, stdout=out)
    assert "Requeued 1 " in out.getvalue()
    assert redis_client.xlen(dead) == 1 and redis_client.xlen(usage_stream) == 1
    usage_drain(consumer="w1")
    assert set(UsageRecord.objects.values_list("request_id", flat=True)) == {"dl0", "dl1", "dl2"}

    call_command("usage_dead_letters", "--requeue", stdout=StringIO())  # all: the garbage goes round again
    assert redis_client.xlen(dead) == 0
    assert usage_drain(consumer="w1").dead_letters == 1
    assert redis_client.xlen(dead) == 1 and UsageRecord.objects.count() == 3

    with pytest.raises(CommandError, match="only meaningful with --requeue"):
        call_command("usage_dead_letters", first_id)
