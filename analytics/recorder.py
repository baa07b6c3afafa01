"""The gateway's side of the usage pipeline: record cheaply, flush off the request path.

One ``UsageRecorder`` per gateway worker, owned by the runtime:

* ``record(...)`` runs once per request, on the event loop, at the end of the
  request. It builds one tuple and appends it to a deque: no I/O, no
  serialisation, no lock. When the buffer is at its bound the record is
  dropped and counted (``apim_usage_records_dropped_total{reason="buffer_full"}``).
* A background task flushes batches (every ``flush_interval`` or as soon as a
  batch is full) to the sink: a Redis stream in production, the database
  directly when there is no Redis. A batch leaves the buffer only after the
  sink took it, so a failed flush loses nothing.
* While the sink fails the recorder backs off, keeps up to ``spill_after``
  records in memory and appends the excess, batch by batch, to a local spill
  file (``analytics.spill``). When the sink answers again, and at every start,
  spill files are replayed into it.
* ``stop()`` (lifespan shutdown, i.e. SIGTERM) flushes everything; what the
  sink will not take goes to the spill file; only what neither takes is
  dropped, and counted.

Record ids are made here, once, so a retried batch never duplicates rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections import deque
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from analytics import metrics
from analytics.records import Record, RecordIds, pack_batch
from analytics.spill import SpillFull, SpillStore

logger = logging.getLogger(__name__)

MAX_BACKOFF = 5.0


class UsageSink(Protocol):
    async def write(self, records: Sequence[Record]) -> None: ...

    async def close(self) -> None: ...


class StreamFull(Exception):
    """The usage stream holds ``maxlen`` entries already (the drain is behind, e.g. PostgreSQL is down)."""


# Bounded append: refuse rather than trim. ``XADD ... MAXLEN`` would make room by
# deleting the oldest entries — batches nobody has written to PostgreSQL yet, lost
# without a trace. Refusing sends the batch down the recorder's failure path
# instead: kept in memory, then spilled to the local file and replayed later.
_BOUNDED_XADD = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return 0 end
redis.call('XADD', KEYS[1], '*', 'b', ARGV[2])
return 1
"""


class RedisStreamSink:
    """One ``XADD`` per batch (a msgpack document of its records); refused once the stream holds ``maxlen``."""

    def __init__(self, *, url: str, stream: str, maxlen: int, timeout: float = 2.0) -> None:
        import redis.asyncio as aioredis

        self.stream = stream
        self.maxlen = maxlen
        self._client = aioredis.Redis.from_url(
            url, socket_connect_timeout=timeout, socket_timeout=timeout, retry_on_timeout=False
        )
        self._append = self._client.register_script(_BOUNDED_XADD)

    async def write(self, records: Sequence[Record]) -> None:
        if not await self._append(keys=[self.stream], args=[self.maxlen, pack_batch(records)]):
            metrics.STREAM_FULL.inc()
            raise StreamFull(f"usage stream {self.stream!r} holds {self.maxlen} entries; the drain is behind")

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self._client.aclose()


class DatabaseSink:
    """Embedded mode: each batch is written by ``usage_records_ingest`` in a thread of its own."""

    def __init__(self, *, using: str = "default") -> None:
        self.using = using
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apim-usage-db")

    async def write(self, records: Sequence[Record]) -> None:
        from analytics.ingest import usage_records_ingest

        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, lambda: usage_records_ingest(records=records, using=self.using))

    async def close(self) -> None:
        def release() -> None:
            from django.db import connections

            connections[self.using].close()

        with contextlib.suppress(Exception):
            await asyncio.get_running_loop().run_in_executor(self._executor, release)
        self._executor.shutdown(wait=False)


class UsageRecorder:
    def __init__(
        self,
        *,
        sink: UsageSink,
        spill: SpillStore | None = None,
        buffer_max: int = 100_000,
        batch_size: int = 500,
        flush_interval: float = 0.5,
        spill_after: int = 10_000,
    ) -> None:
        self.sink = sink
        self.spill = spill
        self.buffer_max = buffer_max
        self.batch_size = batch_size
        self.flush_interval = flush_interval
        self.spill_after = min(spill_after, buffer_max)
        self._buffer: deque[Record] = deque()
        self._ids = RecordIds()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._replay_task: asyncio.Task[None] | None = None
        self._io = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apim-usage-spill")
        self._stopping = False
        self._failing = False
        self._failures = 0
        self._wake_at = self.batch_size
        self._retry_at = 0.0
        # Depth that wakes the flusher early: a full batch normally; while the sink
        # fails, the spill threshold (so an outage does not wake it on every request).
        self._wake_at = batch_size
        self.dropped = 0

    @classmethod
    def from_settings(cls) -> UsageRecorder:
        """Redis stream when a usage Redis is configured, else the database directly."""
        from django.conf import settings

        sink: UsageSink
        if settings.APIM_USAGE_REDIS_URL:
            sink = RedisStreamSink(
                url=settings.APIM_USAGE_REDIS_URL,
                stream=settings.APIM_USAGE_STREAM,
                maxlen=settings.APIM_USAGE_STREAM_MAXLEN,
            )
        else:
            sink = DatabaseSink()
        ids = RecordIds()
        spill = SpillStore(
            directory=Path(settings.APIM_USAGE_SPILL_DIR),
            token=ids.next()[:16],
            max_bytes=settings.APIM_USAGE_SPILL_MAX_BYTES,
        )
        return cls(
            sink=sink,
            spill=spill,
            buffer_max=settings.APIM_USAGE_BUFFER_MAX,
            batch_size=settings.APIM_USAGE_BATCH_SIZE,
            flush_interval=settings.APIM_USAGE_FLUSH_INTERVAL,
            spill_after=settings.APIM_USAGE_SPILL_AFTER,
        )

    @property
    def depth(self) -> int:
        return len(self._buffer)

    def status(self) -> dict[str, Any]:
        return {"depth": len(self._buffer), "failing": self._failing, "dropped": self.dropped}

    def record(
        self,
        *,
        request_id: str,
        tenant_id: str | None,
        method: str,
        path: str,
        status: int,
        latency_us: int,
        api_id: str | None = None,
        api_version: str = "",
        route: str = "",
        consumer_id: str | None = None,
        application_id: str | None = None,
        key_prefix: str = "",
        deny_reason: str = "",
        upstream_latency_us: int | None = None,
        gateway_latency_us: int = 0,
        bytes_in: int = 0,
        bytes_out: int = 0,
        client_ip: str | None = None,
        user_agent: str = "",
        upstream_target: str = "",
        timestamp: float | None = None,
    ) -> None:
        """Buffer one request's record. Costs a tuple and an append; never blocks, never raises."""
        buffer = self._buffer
        if len(buffer) >= self.buffer_max:
            self.dropped += 1
            metrics.RECORDS_DROPPED.labels(reason="buffer_full").inc()
            return
        buffer.append(
            (
                self._ids.next(),
                int((timestamp if timestamp is not None else time.time()) * 1_000_000),
                request_id,
                tenant_id,
                api_id,
                api_version,
                route,
                consumer_id,
                application_id,
                key_prefix,
                method,
                path,
                status,
                deny_reason,
                latency_us,
                upstream_latency_us,
                gateway_latency_us,
                bytes_in,
                bytes_out,
                client_ip,
                user_agent,
                upstream_target,
            )
        )
        if len(buffer) >= self._wake_at and self._wake is not None and not self._wake.is_set():
            self._wake.set()

    async def start(self) -> None:
        if self._task is not None:
            return
        self._stopping = False
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run(), name="apim-usage-flush")
        self._schedule_replay()

    async def stop(self) -> None:
        """Flush everything (graceful shutdown); spill what the sink refuses; count what is left."""
        self._stopping = True
        if self._task is not None:
            assert self._wake is not None
            self._wake.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._replay_task is not None:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._replay_task
            self._replay_task = None
        await self._flush(final=True)
        await self.sink.close()
        self._io.shutdown(wait=True)

    async def _run(self) -> None:
        assert self._wake is not None
        while not self._stopping:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self._next_delay())
            self._wake.clear()
            if self._stopping:
                return
            try:
                await self._flush(final=False)
            except Exception:  # a bug here must not end flushing for the worker's lifetime
                logger.exception("usage flush failed unexpectedly")

    def _next_delay(self) -> float:
        if self._failing:
            return max(0.01, min(self._retry_at - time.monotonic(), MAX_BACKOFF))
        return self.flush_interval

    async def _flush(self, *, final: bool) -> None:
        buffer = self._buffer
        while buffer:
            if self._failing and not final and time.monotonic() < self._retry_at:
                await self._spill_excess()
                return
            count = min(self.batch_size, len(buffer))
            batch = list(itertools.islice(buffer, count))
            try:
                await self.sink.write(batch)
            except Exception as exc:  # noqa: BLE001 - any sink failure: keep the records, back off
                self._on_failure(exc)
                if final:
                    await self._spill(len(buffer))
                else:
                    await self._spill_excess()
                return
            for _ in range(count):
                buffer.popleft()  # only the flusher pops; record() only appends on the right
            metrics.RECORDS_FLUSHED.inc(count)
            if self._failing:
                self._on_recovery()

    def _on_failure(self, exc: Exception) -> None:
        self._failures += 1
        backoff = min(self.flush_interval * (2 ** min(self._failures, 10)), MAX_BACKOFF)
        self._retry_at = time.monotonic() + backoff
        if not self._failing:
            logger.warning("usage sink unavailable, buffering (%s: %s)", type(exc).__name__, exc)
        self._failing = True
        self._wake_at = self.spill_after + self.batch_size

    def _on_recovery(self) -> None:
        logger.warning("usage sink available again after %d failed flushes", self._failures)
        self._failing = False
        self._failures = 0
        self._wake_at = self.batch_size
        if not self._stopping:
            self._schedule_replay()

    async def _spill_excess(self) -> None:
        excess = len(self._buffer) - self.spill_after
        if excess > 0:
            await self._spill(excess)

    async def _spill(self, count: int) -> None:
        """Move the ``count`` oldest records to the spill file; on final stop, drop (counted) what it refuses."""
        buffer = self._buffer
        while count > 0 and buffer:
            size = min(self.batch_size, count, len(buffer))
            batch = list(itertools.islice(buffer, size))
            try:
                if self.spill is None:
                    raise SpillFull("no spill directory configured")
                await asyncio.get_running_loop().run_in_executor(self._io, self.spill.append, batch)
            except (SpillFull, OSError) as exc:
                logger.error("usage spill failed (%s); %d records buffered", exc, len(buffer))
                if self._stopping:
                    self.dropped += len(buffer)
                    metrics.RECORDS_DROPPED.labels(reason="spill_failed").inc(len(buffer))
                    buffer.clear()
                return
            for _ in range(size):
                buffer.popleft()
            metrics.RECORDS_SPILLED.inc(size)
            count -= size

    def _schedule_replay(self) -> None:
        if self.spill is None or (self._replay_task is not None and not self._replay_task.done()):
            return
        self._replay_task = asyncio.create_task(self.replay(), name="apim-usage-replay")

    async def replay(self) -> int:
        """Hand every claimable spill file to the sink; stop at the first failure (files stay). Returns records sent."""
        if self.spill is None:
            return 0
        loop = asyncio.get_running_loop()
        claims = await loop.run_in_executor(self._io, self.spill.claim)
        sent = 0
        try:
            while claims:
                claim = claims[0]
                batches = claim.batches()
                while (batch := await loop.run_in_executor(self._io, next, batches, None)) is not None:
                    try:
                        await self.sink.write(batch)
                    except Exception as exc:  # noqa: BLE001 - the sink is down again: keep the file
                        logger.warning("usage spill replay paused (%s)", exc)
                        return sent
                    sent += len(batch)
                    metrics.RECORDS_REPLAYED.inc(len(batch))
                claims.pop(0)
                await loop.run_in_executor(self._io, claim.done)
        finally:
            for claim in claims:
                claim.release()
        return sent
