"""UsageRecorder: bounded buffer, batching off the request path, flush on stop, spill on failure."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from analytics.recorder import DatabaseSink, UsageRecorder
from analytics.records import FIELDS
from analytics.spill import SpillStore
from tests.analytics.support import counter, record_kwargs


class ListSink:
    """Collects batches; can be switched to fail like an unreachable Redis."""

    def __init__(self) -> None:
        self.batches: list[list[tuple]] = []
        self.failing = False
        self.closed = False

    async def write(self, records):
        await asyncio.sleep(0)
        if self.failing:
            raise ConnectionError("sink down")
        self.batches.append(list(records))

    async def close(self):
        self.closed = True

    @property
    def records(self) -> list[tuple]:
        return [r for batch in self.batches for r in batch]


async def wait_for(predicate, timeout: float = 20.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.01)


def test_record_builds_one_tuple_in_wire_order():
    sink = ListSink()
    recorder = UsageRecorder(sink=sink, buffer_max=10)
    recorder.record(**record_kwargs(status=429, deny_reason="rate_limited", timestamp=1_700_000_000.25))
    (record,) = recorder._buffer
    assert len(record) == len(FIELDS)
    as_dict = dict(zip(FIELDS, record, strict=True))
    assert as_dict["status"] == 429
    assert as_dict["deny_reason"] == "rate_limited"
    assert as_dict["timestamp_us"] == 1_700_000_000_250_000
    assert as_dict["record_id"]


def test_buffer_is_bounded_and_drops_are_counted():
    recorder = UsageRecorder(sink=ListSink(), buffer_max=100)
    before = counter("apim_usage_records_dropped_total", reason="buffer_full")
    for _ in range(130):
        recorder.record(**record_kwargs())
    assert recorder.depth == 100
    assert recorder.dropped == 30
    assert counter("apim_usage_records_dropped_total", reason="buffer_full") - before == 30


def test_stop_flushes_everything_in_batches():
    sink = ListSink()

    async def scenario():
        recorder = UsageRecorder(sink=sink, batch_size=100, flush_interval=60)
        await recorder.start()
        for i in range(1050):
            recorder.record(**record_kwargs(request_id=f"r{i}"))
        await recorder.stop()
        return recorder

    recorder = asyncio.run(scenario())
    assert recorder.depth == 0
    assert sink.closed
    assert [r[2] for r in sink.records] == [f"r{i}" for i in range(1050)]
    assert all(len(batch) <= 100 for batch in sink.batches)
    assert len({r[0] for r in sink.records}) == 1050  # unique record ids


def test_burst_is_flushed_while_running_without_loss():
    sink = ListSink()

    async def scenario():
        recorder = UsageRecorder(sink=sink, batch_size=200, flush_interval=0.05, buffer_max=50_000)
        await recorder.start()
        for burst in range(20):
            for i in range(1000):
                recorder.record(**record_kwargs(request_id=f"{burst}-{i}"))
            await asyncio.sleep(0)  # requests yield to the loop between bursts
        await wait_for(lambda: len(sink.records) == 20_000)
        flushed_while_running = len(sink.records)
        await recorder.stop()
        return flushed_while_running

    assert asyncio.run(scenario()) == 20_000
    assert len({r[0] for r in sink.records}) == 20_000


def test_failing_sink_keeps_records_spills_the_excess_and_replays_after_recovery(tmp_path: Path):
    sink = ListSink()
    spill = SpillStore(directory=tmp_path, token="gw1", max_bytes=10**8)
    spilled_before = counter("apim_usage_records_spilled_total")

    async def scenario():
        recorder = UsageRecorder(sink=sink, spill=spill, batch_size=50, flush_interval=0.02, spill_after=100)
        await recorder.start()
        sink.failing = True
        for i in range(1000):
            recorder.record(**record_kwargs(request_id=f"a{i}"))
        await wait_for(lambda: recorder.depth <= 150 and list(tmp_path.glob("*.spill")))
        assert sink.records == []
        sink.failing = False
        for i in range(10):
            recorder.record(**record_kwargs(request_id=f"b{i}"))
        await wait_for(lambda: len(sink.records) == 1010 and not list(tmp_path.iterdir()))
        await recorder.stop()

    asyncio.run(scenario())
    assert counter("apim_usage_records_spilled_total") - spilled_before >= 850
    assert sorted(r[2] for r in sink.records) == sorted([f"a{i}" for i in range(1000)] + [f"b{i}" for i in range(10)])


def test_stop_with_the_sink_down_spills_everything_and_the_next_start_replays_it(tmp_path: Path):
    down = ListSink()
    down.failing = True

    async def shutdown_during_outage():
        recorder = UsageRecorder(sink=down, spill=SpillStore(directory=tmp_path, token="w1", max_bytes=10**8))
        await recorder.start()
        for i in range(777):
            recorder.record(**record_kwargs(request_id=f"x{i}"))
        await recorder.stop()
        assert recorder.depth == 0

    asyncio.run(shutdown_during_outage())
    assert list(tmp_path.glob("w1.spill"))
    up = ListSink()

    async def next_start():
        recorder = UsageRecorder(sink=up, spill=SpillStore(directory=tmp_path, token="w2", max_bytes=10**8))
        await recorder.start()
        await wait_for(lambda: len(up.records) == 777)
        await recorder.stop()

    asyncio.run(next_start())
    assert sorted(r[2] for r in up.records) == sorted(f"x{i}" for i in range(777))
    assert list(tmp_path.iterdir()) == []


def test_what_neither_sink_nor_spill_takes_is_counted_as_dropped(tmp_path: Path):
    down = ListSink()
    down.failing = True
    before = counter("apim_usage_records_dropped_total", reason="spill_failed")

    async def scenario():
        recorder = UsageRecorder(sink=down, spill=SpillStore(directory=tmp_path, token="w", max_bytes=0))
        await recorder.start()
        for _ in range(40):
            recorder.record(**record_kwargs())
        await recorder.stop()
        return recorder

    recorder = asyncio.run(scenario())
    assert recorder.dropped == 40
    assert counter("apim_usage_records_dropped_total", reason="spill_failed") - before == 40


def test_a_damaged_spill_tail_loses_only_the_damaged_frame(tmp_path: Path):
    store = SpillStore(directory=tmp_path, token="w", max_bytes=10**8)
    recorder = UsageRecorder(sink=ListSink(), buffer_max=10)
    for _ in range(3):
        recorder.record(**record_kwargs())
    store.append(list(recorder._buffer))
    with open(store.path, "ab") as handle:
        handle.write(b"\x92\x01\xdc\x00")  # a frame cut short by a crash
    before = counter("apim_usage_records_dropped_total", reason="spill_corrupt")
    (claim,) = store.claim()
    batches = list(claim.batches())
    claim.done()
    assert [len(b) for b in batches] == [3]
    assert counter("apim_usage_records_dropped_total", reason="spill_corrupt") - before == 1


@pytest.mark.django_db(transaction=True)
def test_embedded_mode_writes_batches_straight_to_the_database():
    from analytics.models import UsageRecord

    async def scenario():
        recorder = UsageRecorder(sink=DatabaseSink(), batch_size=250, flush_interval=0.05)
        await recorder.start()
        for i in range(1200):
            recorder.record(**record_kwargs(request_id=f"e{i}", status=200 + i % 3))
        await recorder.stop()

    asyncio.run(scenario())
    assert UsageRecord.objects.count() == 1200
    assert set(UsageRecord.objects.values_list("status", flat=True).distinct()) == {200, 201, 202}
    row = UsageRecord.objects.get(request_id="e7")
    assert (row.method, row.path, row.latency_us, row.upstream_latency_us) == ("GET", "/orders/7", 1000, 800)
