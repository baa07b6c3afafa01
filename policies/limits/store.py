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

**Client.** Those round trips go through :mod:`policies.limits.resp` — one
connection per worker, ``EVALSHA`` commands encoded here straight to RESP bytes,
replies parsed by hiredis — because redis-py's per-command machinery was most
of the limiter's cost per request. redis-py (``driver="redis-py"``) remains for
what the lean client does not speak (``rediss://``, URL options beyond ``db``):
such a URL falls back to it, with a log line saying so.

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

from policies.limits.resp import Address, ReplyError, RespClient, UnsupportedURL, pack, parse_url
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
SCRIPT_LOAD = pack(b"SCRIPT", b"LOAD", SCRIPT)
DRIVERS = ("lean", "redis-py")


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


def _evalsha_head(n_checks: int) -> bytes:
    """``EVALSHA sha numkeys`` as the start of a RESP array of 3 + 5 per check elements."""
    numkeys = str(2 * n_checks).encode()
    return b"*%d\r\n$7\r\nEVALSHA\r\n$40\r\n%b\r\n$%d\r\n%b\r\n" % (
        3 + 5 * n_checks,
        SCRIPT_SHA.encode(),
        len(numkeys),
        numkeys,
    )


_HEADS = tuple(_evalsha_head(n) for n in range(16))


def _evalsha(checks: Sequence[Check], prefix: str) -> bytes:
    """One check's ``EVALSHA`` as RESP bytes — the hot path's encoder, built for speed.

    The body is formatted as one ``str`` with character counts as lengths and encoded once;
    that is only right for ASCII, so a non-ASCII key (an IDN host, a UTF-8 consumer id)
    takes hiredis' general encoder instead, which counts bytes.
    """
    n = len(checks)
    p = len(prefix)
    keys: list[str] = []
    args: list[str] = []
    for check in checks:
        key, prev = check.key, check.prev_key
        limit, weight, ttl = str(check.limit), repr(check.weight), str(check.ttl_ms)
        keys.append(f"${p + len(key)}\r\n{prefix}{key}\r\n${p + len(prev)}\r\n{prefix}{prev}\r\n")
        args.append(f"${len(limit)}\r\n{limit}\r\n${len(weight)}\r\n{weight}\r\n${len(ttl)}\r\n{ttl}\r\n")
    body = "".join(keys) + "".join(args)
    if body.isascii() and n < len(_HEADS):
        return _HEADS[n] + body.encode()
    flat_keys, flat_args = _encode(checks, prefix)
    return pack(b"EVALSHA", SCRIPT_SHA, len(flat_keys), *flat_keys, *flat_args)


# (what to send, the caller's future): RESP bytes for the lean client, (keys, args) for redis-py.
_Pending = tuple[Any, "asyncio.Future[list[int] | None]"]


class RedisLimiter:
    """Redis-backed limiter shared by every gateway process; coalesces a worker's checks into pipelines.

    ``driver``: ``"lean"`` (default; :mod:`policies.limits.resp`) or ``"redis-py"`` (kept for URLs
    the lean client does not support, and as the benchmark's baseline). ``self.driver`` says
    which one is in use after a fallback.
    """

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
        driver: str = "lean",
    ) -> None:
        if driver not in DRIVERS:
            raise ValueError(f"driver must be one of {DRIVERS}")
        self.url = url
        self.prefix = prefix
        self.clock = clock
        self.socket_timeout = socket_timeout
        self.round_trip_timeout = round_trip_timeout
        self.retry_after_failure = retry_after_failure
        self.max_batch = max_batch
        self.coalesce = coalesce
        self._client: Any = None
        self._address: Address | None = None
        if driver == "lean":
            try:
                self._address = parse_url(url)
            except (UnsupportedURL, ValueError) as exc:  # the message names no credentials
                logger.info(
                    "rate-limit store: %s; using redis-py", exc if isinstance(exc, UnsupportedURL) else "bad URL"
                )
                driver = "redis-py"
        self.driver = driver
        self._lean: RespClient | None = None
        self._queue: list[_Pending] = []
        self._flusher: asyncio.Task[None] | None = None
        # The loop on which a lean round trip (direct or flusher) is in flight: new checks queue.
        # A loop, not a flag: a trip left pending on a loop that was stopped must not make the
        # limiter look busy forever on the next one (nothing would ever flush).
        self._busy: asyncio.AbstractEventLoop | None = None
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

    def _resp(self) -> RespClient:
        if self._lean is None:
            assert self._address is not None
            self._lean = RespClient(
                self._address, connect_timeout=self.socket_timeout, on_connect=((b"SCRIPT", b"LOAD", SCRIPT),)
            )
        return self._lean

    @property
    def available(self) -> bool:
        return time.monotonic() >= self._down_until

    async def check(self, checks: Sequence[Check]) -> list[int] | None:
        if time.monotonic() < self._down_until:
            return None
        if self._address is None:
            payload: Any = _encode(checks, self.prefix)
        else:
            payload = _evalsha(checks, self.prefix)
            if self.coalesce and self._busy is not (loop := asyncio.get_running_loop()):
                if self._busy is not None:  # abandoned on another loop: its callers are gone
                    self._busy, self._queue = None, []
                return await self._direct(payload, loop)
        if not self.coalesce:
            return await self._single(payload)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[list[int] | None] = loop.create_future()
        self._queue.append((payload, future))
        if self._address is None and (self._flusher is None or self._flusher.done()):
            self._flusher = loop.create_task(self._flush(), name="apim-limiter-flush")
        return await future

    async def _direct(self, payload: bytes, loop: asyncio.AbstractEventLoop) -> list[int] | None:
        """An idle limiter sends a lone check at once, from the caller's own task.

        At low concurrency (one connection: every check finds the limiter idle) this saves
        creating and waking a flusher task per request. Checks arriving while this round trip
        is in flight queue as before, and the flusher takes them when it ends — coalescing
        is unchanged. A caller cancelled mid-trip leaves the connection in step: its batch's
        replies are still consumed in order.
        """
        self._busy = loop
        self.round_trips += 1
        try:
            # Bounded per send (round_trip_timeout) and per connect (socket_timeout) inside.
            return (await self._run_lean([(payload, None)]))[0]  # type: ignore[list-item]
        except Exception as exc:  # noqa: BLE001 - any store failure means: apply the fail mode
            self._failed(exc)
            self._answer_queue_none()
            return None
        finally:
            if self._queue:
                self._flusher = loop.create_task(self._flush(), name="apim-limiter-flush")
            else:
                self._busy = None

    def _answer_queue_none(self) -> None:
        """The circuit is open: everything queued meanwhile gets the fail mode's answer now."""
        batch, self._queue = self._queue, []
        for _, future in batch:
            if not future.done():
                future.set_result(None)

    async def _single(self, payload: Any) -> list[int] | None:
        """One EVALSHA per check (no coalescing): kept for the benchmark's comparison."""
        self.round_trips += 1
        try:
            async with asyncio.timeout(self.round_trip_timeout):
                if self._address is not None:
                    return (await self._run_lean([(payload, None)]))[0]  # type: ignore[list-item]
                keys, args = payload
                client = self._redis()
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
        self._busy = asyncio.get_running_loop()
        try:
            while self._queue:
                batch, self._queue = self._queue[: self.max_batch], self._queue[self.max_batch :]
                try:
                    async with asyncio.timeout(self.round_trip_timeout):
                        results = await self._run(batch)
                except Exception as exc:  # noqa: BLE001 - any store failure means: apply the fail mode
                    self._failed(exc)
                    self._queue = batch + self._queue
                    self._answer_queue_none()
                    return
                for (_, future), result in zip(batch, results, strict=True):
                    if not future.done():
                        future.set_result(result)
                if self._address is not None:
                    # Stay busy for one more loop turn: the callers just answered run first, and
                    # their next checks join the next batch instead of each finding the limiter
                    # idle and going direct (which would halve the batches under load).
                    await asyncio.sleep(0)
        finally:
            self._busy = None

    async def _run(self, batch: list[_Pending]) -> list[list[int] | None]:
        self.round_trips += 1
        if self._address is not None:
            return await self._run_lean(batch)
        return await self._run_redis_py(batch)

    async def _run_lean(self, batch: list[_Pending]) -> list[list[int] | None]:
        """The batch's EVALSHAs in one write; NOSCRIPT ones again after a SCRIPT LOAD (same write)."""
        client = self._resp()
        try:
            timeout = self.round_trip_timeout
            replies = await client.send(b"".join([payload for payload, _ in batch]), len(batch), timeout)
            missing = [i for i, r in enumerate(replies) if isinstance(r, ReplyError) and str(r).startswith("NOSCRIPT")]
            if missing:
                again = await client.send(
                    SCRIPT_LOAD + b"".join([batch[i][0] for i in missing]), len(missing) + 1, timeout
                )
                for i, result in zip(missing, again[1:], strict=True):
                    replies[i] = result
        except Exception:
            # Lost or broken: never reuse it. (A cancelled waiter needs no reset: its batch stays
            # queued on the connection and still takes its replies, so the stream stays in step;
            # a timed-out trip is reset by _failed.)
            client.reset()
            raise
        out: list[list[int] | None] = []
        for result in replies:
            if type(result) is list:
                out.append(result)
            else:
                logger.warning("rate-limit script failed: %s", result)
                out.append(None)
        return out

    async def _run_redis_py(self, batch: list[_Pending]) -> list[list[int] | None]:
        from redis.exceptions import NoScriptError

        client = self._redis()
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
        for (keys, args), _ in batch:
            pipe.evalsha(SCRIPT_SHA, len(keys), *keys, *args)
        return list(await pipe.execute(raise_on_error=False))

    def _failed(self, exc: BaseException) -> None:
        STORE_ERRORS.inc()
        if self._lean is not None:
            self._lean.reset()  # a timed-out connection may be to a hung or vanished host: start afresh
        if self.available:
            where = urlsplit(self.url).hostname or "redis"  # never the URL: it may hold a password
            logger.warning("rate-limit store %s unreachable (%s); retry in %.1fs", where, exc, self.retry_after_failure)
        self._down_until = time.monotonic() + self.retry_after_failure

    async def start(self) -> None:
        """Connect and load the script before the first request (a Redis that is down is not fatal:
        requests then get the fail mode until it answers)."""
        try:
            async with asyncio.timeout(self.round_trip_timeout):
                if self._address is not None:
                    await self._resp().connect()  # the handshake loads the script
                else:
                    await self._redis().script_load(SCRIPT)
        except Exception as exc:  # noqa: BLE001 - start-up must not depend on the limit store
            self._failed(exc)

    async def stop(self) -> None:
        if self._flusher is not None and not self._flusher.done():
            self._flusher.cancel()
            with contextlib.suppress(BaseException):
                await self._flusher
        self._answer_queue_none()  # nobody will send them now: their callers get the fail mode
        if self._lean is not None:
            with contextlib.suppress(Exception):
                await self._lean.aclose()
            self._lean = None
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


def client_driver() -> str:
    """``settings.APIM_RATELIMIT_CLIENT``: ``lean`` (default) or ``redis-py``.

    A switch back to redis-py by configuration, should the lean client misbehave somewhere,
    and how the two are compared through the whole gateway (``bench/run.py``).
    """
    from django.conf import settings

    value = getattr(settings, "APIM_RATELIMIT_CLIENT", None) or "lean"
    if value not in DRIVERS:
        raise ValueError(f"APIM_RATELIMIT_CLIENT must be one of {DRIVERS}, not {value!r}")
    return value


def create_limiter(services: Any = None) -> MemoryLimiter | RedisLimiter:
    """The worker's limiter: Redis when a URL is configured (``APIM_RATELIMIT_REDIS_URL``, else
    ``REDIS_URL``), the in-process store otherwise (embedded mode)."""
    url = redis_url()
    if url:
        return RedisLimiter(url, prefix=key_prefix(), driver=client_driver())
    return MemoryLimiter()
