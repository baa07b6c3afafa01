"""Limit stores: Redis (shared by every gateway process) or in-process (embedded mode).

Both answer one question per request, for all of its limits at once:
``check(checks)`` returns ``[allowed, current₁, previous₁, current₂, ...]``
(counts after the increment when allowed) or ``None`` when the store cannot be
reached — the caller then applies the limit's fail mode. Check-then-increment
is one atomic step, and nothing is counted unless every limit admits the
request, so rejected requests never eat into a limit (Tyk's sliding log does).

**Redis.** One Lua script (``EVALSHA``, loaded on ``NOSCRIPT``) per request
evaluates exactly :func:`policies.limits.rules.admits` and increments every
counter; being a single script it is atomic, so N gateway processes share one
exact limit (Kong's Redis limiter reads and increments separately and is not).
Concurrent requests of a worker are *coalesced*: they queue, and one flusher
sends everything queued in one non-transactional pipeline; while a pipeline is
in flight new requests queue for the next. Each script stays atomic, so
exactness is kept while the client CPU per check drops several-fold
(``bench/limiter.py``).

**Store down.** A failed round trip opens a circuit for ``retry_after_failure``
seconds: checks answer ``None`` at once (no connect attempt, no latency per
request), then the next batch probes Redis again. Sockets have short timeouts
and the whole round trip a hard bound, so a hung Redis never hangs a request.
Every request decided by a fail mode is counted in
``apim_gateway_ratelimit_store_failures_total{fail_mode}``.

**Clock.** Windows are computed from the gateway's clock (``clock``, injectable
in tests), not Redis's ``TIME``, so both stores share the window code and an
edge can be tested deterministically. Gateways on one host share a clock;
across hosts NTP skew only shifts the sliding weight by milliseconds.

**Embedded** (no ``REDIS_URL``): :class:`MemoryLimiter` applies the same
arithmetic per worker process, so with ``--workers N`` each worker counts on
its own (N × the limit at most) — Redis is what makes limits exact.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from urllib.parse import urlsplit

from prometheus_client import Counter

from policies.limits.rules import Check, admits

logger = logging.getLogger(__name__)

STORE_FAILURES = Counter(
    "apim_gateway_ratelimit_store_failures_total",
    "Requests whose limits could not be checked (limit store unreachable), by the fail mode applied.",
    ["fail_mode"],
)
STORE_ERRORS = Counter(
    "apim_gateway_ratelimit_store_errors_total",
    "Failed round trips to the limit store (each opens the circuit for about a second).",
)

DEFAULT_PREFIX = "apim:rl:"

# KEYS: current, previous per check. ARGV: limit, weight, ttl_ms per check.
# Mirrors rules.admits exactly (rules.previous_share is ceil(prev * weight - 1e-9));
# counts are returned after the increment when admitted.
SCRIPT = """
local n = #KEYS / 2
local out = {1}
for i = 1, n do
  local limit = tonumber(ARGV[3 * i - 2])
  local weight = tonumber(ARGV[3 * i - 1])
  local curr = tonumber(redis.call('GET', KEYS[2 * i - 1]) or '0')
  local prev = 0
  local share = 0
  if weight > 0 then
    prev = tonumber(redis.call('GET', KEYS[2 * i]) or '0')
    share = math.ceil(prev * weight - 1e-9)
  end
  out[2 * i] = curr
  out[2 * i + 1] = prev
  if share + curr >= limit then out[1] = 0 end
end
if out[1] == 1 then
  for i = 1, n do
    local v = redis.call('INCR', KEYS[2 * i - 1])
    if v == 1 then redis.call('PEXPIRE', KEYS[2 * i - 1], ARGV[3 * i]) end
    out[2 * i] = v
  end
end
return out
"""
SCRIPT_SHA = hashlib.sha1(SCRIPT.encode(), usedforsecurity=False).hexdigest()


class Limiter(Protocol):
    clock: Callable[[], float]

    async def check(self, checks: Sequence[Check]) -> list[int] | None: ...


def _encode(checks: Sequence[Check], prefix: str) -> tuple[list[str], list[str | int]]:
    keys: list[str] = []
    args: list[str | int] = []
    for check in checks:
        keys.append(prefix + check.key)
        keys.append(prefix + check.prev_key)
        args.append(check.limit)
        args.append(repr(check.weight))
        args.append(check.ttl_ms)
    return keys, args


class MemoryLimiter:
    """In-process counters with the Redis script's semantics (one worker's view only).

    Single-threaded by construction (one event loop), so check-and-increment is
    atomic without a lock. Expired counters are swept at most once a minute.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._counts: dict[str, list[int]] = {}  # key -> [count, expires_at_ms]
        self._next_sweep = 0

    def _get(self, key: str, now_ms: int) -> int:
        entry = self._counts.get(key)
        if entry is None or entry[1] <= now_ms:
            return 0
        return entry[0]

    async def check(self, checks: Sequence[Check]) -> list[int] | None:
        return self.check_now(checks)

    def check_now(self, checks: Sequence[Check]) -> list[int]:
        now_ms = int(self.clock() * 1000)
        if now_ms >= self._next_sweep:
            self._sweep(now_ms)
        counts: list[int] = []
        for check in checks:
            counts.append(self._get(check.key, now_ms))
            counts.append(self._get(check.prev_key, now_ms) if check.weight > 0 else 0)
        if not admits(checks, counts):
            return [0, *counts]
        for index, check in enumerate(checks):
            entry = self._counts.get(check.key)
            if entry is None or entry[1] <= now_ms:
                entry = [0, now_ms + check.ttl_ms]
                self._counts[check.key] = entry
            entry[0] += 1
            counts[2 * index] = entry[0]
        return [1, *counts]

    def _sweep(self, now_ms: int) -> None:
        self._next_sweep = now_ms + 60_000
        for key in [k for k, (_, expires) in self._counts.items() if expires <= now_ms]:
            del self._counts[key]

    def __len__(self) -> int:
        return len(self._counts)


_Pending = tuple[list[str], list[str | int], "asyncio.Future[list[int] | None]"]


class RedisLimiter:
    """Redis-backed limiter shared by every gateway process; coalesces a worker's checks into pipelines."""

    def __init__(
        self,
        url: str,
        *,
        prefix: str = DEFAULT_PREFIX,
        clock: Callable[[], float] = time.time,
        socket_timeout: float = 0.5,
        round_trip_timeout: float = 1.0,
        retry_after_failure: float = 1.0,
        max_batch: int = 512,
        coalesce: bool = True,
    ) -> None:
        self.url = url
        self.prefix = prefix
        self.clock = clock
        self.socket_timeout = socket_timeout
        self.round_trip_timeout = round_trip_timeout
        self.retry_after_failure = retry_after_failure
        self.max_batch = max_batch
        self.coalesce = coalesce
        self._client: Any = None
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        self._down_until = 0.0
        self.round_trips = 0  # pipelines sent (observability, and how tests see coalescing happen)

    def _redis(self) -> Any:
        # Created lazily on the loop that uses it (a test harness serves on its own thread's loop).
        if self._client is None:
            from redis.asyncio import Redis
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._client = Redis.from_url(
                self.url,
                socket_timeout=self.socket_timeout,
                socket_connect_timeout=self.socket_timeout,
                retry=Retry(NoBackoff(), 0),
                health_check_interval=0,
            )
        return self._client

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def check(self, checks: Sequence[Check]) -> list[int] | None:
        if time.monotonic() < self._down_until:
            return None
        keys, args = _encode(checks, self.prefix)
        if not self.coalesce:
            return await self._single(keys, args)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int] | None] = loop.create_future()
        self._queue.append((keys, args, future))
        if self._flusher is None or self._flusher.done():
            self._flusher = loop.create_task(self._flush(), name="apim-limiter-flush")
        return await future

    async def _single(self, keys: list[str], args: list[str | int]) -> list[int] | None:
        """One EVALSHA per check (no coalescing): kept for the benchmark's comparison."""
        client = self._redis()
        self.round_trips += 1
        try:
            async with asyncio.timeout(self.round_trip_timeout):
                try:
                    return list(await client.evalsha(SCRIPT_SHA, len(keys), *keys, *args))
                except Exception as exc:
                    if "NOSCRIPT" not in str(exc):
                        raise
                    await client.script_load(SCRIPT)
                    return list(await client.evalsha(SCRIPT_SHA, len(keys), *keys, *args))
        except Exception as exc:  # noqa: BLE001 - any store failure means: apply the fail mode
            self._failed(exc)
            return None

    async def _flush(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
            try:
                async with asyncio.timeout(self.round_trip_timeout):
                    results = await self._run(batch)
            except Exception as exc:  # noqa: BLE001 - any store failure means: apply the fail mode
                self._failed(exc)
                # The circuit is open: everything queued meanwhile gets the same answer now.
                batch, self._queue = batch + self._queue, []
                for _, _, future in batch:
                    if not future.done():
                        future.set_result(None)
                return
            for (_, _, future), result in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(result)

    async def _run(self, batch: list[_Pending]) -> list[list[int] | None]:
        from redis.exceptions import NoScriptError

        client = self._redis()
        self.round_trips += 1
        results: list[Any] = await self._pipeline(client, batch)
        missing = [i for i, r in enumerate(results) if isinstance(r, NoScriptError)]
        if missing:
            await client.script_load(SCRIPT)
            again = await self._pipeline(client, [batch[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        out: list[list[int] | None] = []
        for result in results:
            if isinstance(result, Exception):
                logger.warning("rate-limit script failed: %s", result)
                out.append(None)
            else:
                out.append(list(result))
        return out

    @staticmethod
    async def _pipeline(client: Any, batch: list[_Pending]) -> list[Any]:
        pipe = client.pipeline(transaction=False)
        for keys, args, _ in batch:
            pipe.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    def _failed(self, exc: BaseException) -> None:
        STORE_ERRORS.inc()
        if self.available:
            where = urlsplit(self.url).hostname or "redis"  # never the URL: it may hold a password
            logger.warning("rate-limit store %s unreachable (%s); retry in %.1fs", where, exc, self.retry_after_failure)
        self._down_until = time.monotonic() + self.retry_after_failure

    async def start(self) -> None:
        """Connect and load the script before the first request (a Redis that is down is not fatal:
        requests then get the fail mode until it answers)."""
        try:
            async with asyncio.timeout(self.round_trip_timeout):
                await self._redis().script_load(SCRIPT)
        except Exception as exc:  # noqa: BLE001 - start-up must not depend on the limit store
            self._failed(exc)

    async def stop(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.aclose()
            self._client = None


def redis_url() -> str:
    from django.conf import settings

    return getattr(settings, "APIM_RATELIMIT_REDIS_URL", "") or getattr(settings, "REDIS_URL", "") or ""


def key_prefix() -> str:
    from django.conf import settings

    return getattr(settings, "APIM_RATELIMIT_KEY_PREFIX", DEFAULT_PREFIX) or DEFAULT_PREFIX


def create_limiter(services: Any = None) -> MemoryLimiter | RedisLimiter:
    """The worker's limiter: Redis when a URL is configured (``APIM_RATELIMIT_REDIS_URL``, else
    ``REDIS_URL``), the in-process store otherwise (embedded mode)."""
    url = redis_url()
    if url:
        return RedisLimiter(url, prefix=key_prefix())
    return MemoryLimiter()
