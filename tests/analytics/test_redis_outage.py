"""Redis down: the gateway keeps recording, spills to a local file, and replays it when Redis is back.

Uses a redis-server of the test's own (killed and restarted on the same port);
a restarted Redis is empty, so what the test counts is what was recorded
during the outage, all of which must reach the stream and then the table.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
import redis

from analytics.models import UsageRecord
from analytics.pipeline import usage_stream_drain
from analytics.recorder import RedisStreamSink, UsageRecorder
from analytics.spill import SpillStore
from tests.analytics.support import counter, private_redis, record_kwargs, stream_records

STREAM = "apim:usage"


def make_recorder(server, spill_dir: Path, token: str) -> UsageRecorder:
    return UsageRecorder(
        sink=RedisStreamSink(url=server.url, stream=STREAM, maxlen=100_000, timeout=0.5),
        spill=SpillStore(directory=spill_dir, token=token, max_bytes=10**8),
        batch_size=100,
        flush_interval=0.02,
        spill_after=200,
        buffer_max=5_000,
    )


async def wait_for(predicate, timeout: float = 30.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() > deadline:
            raise AssertionError("timed out")
        await asyncio.sleep(0.02)


@pytest.mark.django_db(transaction=True)
def test_outage_spills_then_replays_into_the_stream_and_the_table(tmp_path: Path):
    spill_dir = tmp_path / "usage-spill"
    spilled_before = counter("apim_usage_records_spilled_total")
    dropped_before = counter("apim_usage_records_dropped_total", reason="buffer_full")
    with private_redis() as server:
        client = redis.Redis(port=server.port)

        async def while_running():
            recorder = make_recorder(server, spill_dir, "gw-a")
            await recorder.start()
            server.kill()
            for i in range(1500):
                recorder.record(**record_kwargs(request_id=f"during-{i}"))
                if i % 100 == 0:
                    await asyncio.sleep(0)  # the gateway keeps serving: the loop keeps turning
            await wait_for(lambda: recorder.depth <= 300 and any(spill_dir.glob("*.spill")))
            server.start()  # Redis is back (empty)
            recorder.record(**record_kwargs(request_id="after"))
            await wait_for(lambda: len(stream_records(client, STREAM)) == 1501 and not any(spill_dir.iterdir()))
            await recorder.stop()

        asyncio.run(while_running())
        ids = [r[2] for r in stream_records(client, STREAM)]
        assert sorted(ids) == sorted([f"during-{i}" for i in range(1500)] + ["after"])
        assert counter("apim_usage_records_spilled_total") - spilled_before >= 1000
        assert counter("apim_usage_records_dropped_total", reason="buffer_full") == dropped_before

        async def shutdown_during_outage():
            recorder = make_recorder(server, spill_dir, "gw-b")
            await recorder.start()
            server.kill()
            for i in range(333):
                recorder.record(**record_kwargs(request_id=f"sigterm-{i}"))
            await recorder.stop()  # SIGTERM while Redis is down: everything goes to the spill file

        asyncio.run(shutdown_during_outage())
        assert any(spill_dir.glob("gw-b.spill"))
        server.start()

        async def next_start():
            recorder = make_recorder(server, spill_dir, "gw-c")
            await recorder.start()  # replays what the previous process spilled
            await wait_for(lambda: len(stream_records(client, STREAM)) == 333)
            await recorder.stop()

        asyncio.run(next_start())
        result = usage_stream_drain(client=client, stream=STREAM, group="ingest", consumer="w")
        assert result.records == 333
        assert sorted(UsageRecord.objects.values_list("request_id", flat=True)) == sorted(
            f"sigterm-{i}" for i in range(333)
        )
        client.close()
