"""API keys by public id, cached per gateway worker (service ``"keys"``), and the bad-key throttle.

key-auth must answer from memory on the hot path: the database is asked only
on a cache miss. The cache keeps hits *and* misses (a flood of made-up key
ids must not become a flood of queries), bounded in size.

Freshness without TTL guessing: each hit is tagged with its tenant's
``config_version``, read in the same SQL statement as the key row. Every
service that changes a key, its consumer or a subscription bumps that
version, the gateway reloads its snapshot (well under a second), and a
handler compiled from the new snapshot asks for ``min_version`` = the new
version, so the entry no longer qualifies and is re-read. A revoked or
rotated-out key is therefore refused by every worker as soon as that worker
serves the new snapshot. A version the worker has not loaded yet is newer,
never older, so an entry is never staler than the snapshot serving the
request. Misses carry no tenant (there is no row), so they live for a short
TTL instead; key ids are random, so a cached miss for an id that is issued
later is a guess that happened to be right, not a normal case.

A miss runs the blocking ORM lookup (``gateway.loader.api_key_lookup``)
through ``PolicyServices.run_in_thread``; concurrent misses for one key id
share one query. A failed lookup is never cached and raises
:class:`KeyStoreUnavailable`: authentication fails closed, while keys
already cached keep working.

The store never sees a plaintext key: only the public id and the stored
digest.

``last_used_at`` is written in batches, never per request: accepted key ids
collect in a bounded set that is flushed every ``USAGE_FLUSH_SECONDS`` (and on
stop) with one UPDATE per batch. The column is informational (what lists
show), so it is precise to the flush interval, a full set drops new ids until
the next flush, and a failed flush is logged and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 100_000
MISS_TTL_SECONDS = 5.0
MAX_THROTTLED_CLIENTS = 100_000
USAGE_FLUSH_SECONDS = 60.0
MAX_PENDING_USAGE = 100_000

logger = logging.getLogger(__name__)


class KeyStoreUnavailable(Exception):
    """The key could not be looked up (database unreachable); the caller refuses the request."""


@dataclass(frozen=True, slots=True)
class KeyRecord:
    """What the gateway needs to decide on a key, as of tenant config ``version``.

    ``subscriptions`` maps an API id to ``(subscription_id, plan_id)`` for the
    application's *active* subscriptions only. ``allowed_api_ids`` empty means
    every API the application is subscribed to.
    """

    key_id: str
    digest: str
    pepper_id: str
    tenant_id: str
    consumer_id: str
    consumer_name: str
    consumer_active: bool
    application_id: str
    scopes: frozenset[str]
    allowed_api_ids: frozenset[str]
    expires_at: float | None
    active: bool
    subscriptions: Mapping[str, tuple[str, str]]
    groups: frozenset[str]
    version: int

    def __repr__(self) -> str:  # the digest is not a secret, but it has no business in logs
        return f"KeyRecord(key_id={self.key_id!r}, tenant_id={self.tenant_id!r}, version={self.version})"


@dataclass(frozen=True, slots=True)
class _Entry:
    record: KeyRecord | None  # None: no such key (a cached miss)
    fetched_at: float  # time.monotonic()


Lookup = Callable[[str], "KeyRecord | None"]


Touch = Callable[[list[str], float], Any]


def _default_lookup(key_id: str) -> KeyRecord | None:
    from gateway import loader  # the only gateway module that uses the ORM

    return loader.api_key_lookup(key_id)


def _default_touch(key_ids: list[str], when: float) -> Any:
    from gateway import loader

    return loader.api_keys_touch(key_ids, when)


async def _to_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


class KeyStore:
    """API keys of every tenant by key id, for one gateway worker; safe for concurrent requests.

    ``lookups`` counts database round trips (tests and metrics read it).
    """

    def __init__(
        self,
        services: Any = None,
        *,
        lookup: Lookup = _default_lookup,
        run_in_thread: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
        max_entries: int = MAX_ENTRIES,
        miss_ttl: float = MISS_TTL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
        touch: Touch = _default_touch,
        flush_interval: float = USAGE_FLUSH_SECONDS,
    ) -> None:
        self._run = run_in_thread or getattr(services, "run_in_thread", None) or _to_thread
        self._lookup = lookup
        self._max = max_entries
        self._miss_ttl = miss_ttl
        self._clock = clock
        self._entries: dict[str, _Entry] = {}
        self._pending: dict[str, asyncio.Task[_Entry]] = {}
        self.lookups = 0
        self.throttle = FailureThrottle()
        self._touch = touch
        self._flush_interval = flush_interval
        self._used: set[str] = set()
        self._flusher: asyncio.Task[None] | None = None

    def mark_used(self, key_id: str) -> None:
        """Remember that ``key_id`` authenticated a request (for ``last_used_at``); O(1), no I/O."""
        if len(self._used) < MAX_PENDING_USAGE:
            self._used.add(key_id)

    async def flush_usage(self) -> int:
        """Write ``last_used_at`` for the keys used since the last flush; returns how many."""
        if not self._used:
            return 0
        used, self._used = sorted(self._used), set()
        when = time.time()
        try:
            await self._run(lambda: self._touch(used, when))
        except Exception:
            logger.warning("could not record last use of %d API keys", len(used), exc_info=True)
            return 0
        return len(used)

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self._flush_interval)
            await self.flush_usage()

    async def start(self) -> None:
        self._flusher = asyncio.get_running_loop().create_task(self._flush_loop(), name="apim-key-usage")

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._flusher
            self._flusher = None
        await self.flush_usage()

    async def lookup(self, key_id: str, min_version: int) -> KeyRecord | None:
        """The key ``key_id`` as of ``min_version`` of its tenant or later, or None if there is no such key.

        ``min_version`` is the config version of the API's tenant in the
        snapshot serving the request. A record of another tenant is returned
        whatever its version: the caller refuses it anyway, and a key never
        changes tenant.
        """
        entry = self._entries.get(key_id)
        if entry is not None and self._fresh(entry, min_version):
            return entry.record
        # A lookup already in flight may have read the row before the change this
        # snapshot reflects; if what it brings back is too old, ask once more.
        for _ in range(2):
            entry = await self._shared_fetch(key_id)
            if self._fresh(entry, min_version):
                break
        return entry.record

    def _fresh(self, entry: _Entry, min_version: int) -> bool:
        record = entry.record
        if record is None:
            return self._clock() - entry.fetched_at < self._miss_ttl
        return record.version >= min_version

    async def _shared_fetch(self, key_id: str) -> _Entry:
        # The query runs as its own task: a client that disconnects (its request
        # task cancelled) must not fail the other requests waiting on the same key.
        task = self._pending.get(key_id)
        if task is None:
            task = asyncio.get_running_loop().create_task(self._fetch(key_id))
            self._pending[key_id] = task
            task.add_done_callback(lambda done: self._settled(key_id, done))
        try:
            return await asyncio.shield(task)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            raise KeyStoreUnavailable("the API key store is unreachable") from exc

    def _settled(self, key_id: str, task: asyncio.Task[_Entry]) -> None:
        if self._pending.get(key_id) is task:
            del self._pending[key_id]
        if not task.cancelled():
            task.exception()  # retrieved: no "never retrieved" warning when every waiter left

    async def _fetch(self, key_id: str) -> _Entry:
        self.lookups += 1
        record = await self._run(lambda: self._lookup(key_id))
        entry = _Entry(record=record, fetched_at=self._clock())
        if key_id not in self._entries and len(self._entries) >= self._max:
            # Drop the oldest tenth: insertion order approximates age, and shedding
            # in bulk costs nothing per request.
            for stale in list(self._entries)[: max(1, self._max // 10)]:
                del self._entries[stale]
        self._entries.pop(key_id, None)  # re-insert: the refreshed entry is the youngest
        self._entries[key_id] = entry
        return entry

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


class FailureThrottle:
    """Slows down a client that keeps presenting bad keys: in-process, bounded memory.

    Counted per (tenant, client address) in a fixed window that starts at the
    first failure: after ``limit`` failures within ``window`` seconds the
    client is refused without any lookup until the window ends. Kept on the
    key store so it outlives snapshot reloads. Each worker counts on its own,
    so with N workers a client gets up to N × ``limit`` attempts per window —
    a brake on guessing, not an exact limit (exact would need Redis on every
    failure).
    """

    def __init__(self, max_clients: int = MAX_THROTTLED_CLIENTS, clock: Callable[[], float] = time.monotonic) -> None:
        self._max = max_clients
        self._clock = clock
        self._failures: dict[tuple[str, str], list[float]] = {}  # [window start, count]

    def retry_after(self, tenant_id: str, client: str, limit: int, window: float) -> int:
        """Seconds the client must wait (0: it may try)."""
        state = self._failures.get((tenant_id, client))
        if state is None or state[1] < limit:
            return 0
        remaining = state[0] + window - self._clock()
        if remaining <= 0:
            del self._failures[(tenant_id, client)]
            return 0
        return max(1, math.ceil(remaining))

    def failed(self, tenant_id: str, client: str, window: float) -> None:
        key = (tenant_id, client)
        now = self._clock()
        state = self._failures.get(key)
        if state is None or now - state[0] >= window:
            if state is None and len(self._failures) >= self._max:
                for stale in list(self._failures)[: max(1, self._max // 10)]:
                    del self._failures[stale]
            self._failures.pop(key, None)
            self._failures[key] = [now, 1.0]
        else:
            state[1] += 1

    def reset(self) -> None:
        self._failures.clear()

    def __len__(self) -> int:
        return len(self._failures)


def create_key_store(services: Any) -> KeyStore:
    """The ``"keys"`` service factory (``policies.runtime.SERVICE_FACTORIES``)."""
    return KeyStore(services)
