"""Consumers by name for token authentication, cached per worker (service ``"consumers"``).

A JWT names its consumer in a claim; the gateway must turn that name into the
consumer's id, status and groups without the ORM on the request path. The
directory keeps a bounded in-process cache of hits *and* misses (a flood of
tokens for an unknown name must not become a flood of queries). Each entry is
tagged with the tenant's ``config_version`` read in the same SQL statement as
the consumer, and is used only while that version is at least the version of
the snapshot the handler was compiled from: any committed change to the
tenant (a consumer suspended, renamed, regrouped, deleted) bumps the version,
the gateway reloads, and the next request re-reads. A version the gateway
has not loaded yet is newer, never older, so the cache is never staler than
the snapshot serving the request.

A miss runs ``gateway.loader.consumer_lookup`` through
``PolicyServices.run_in_thread`` (the loader's thread and connection);
concurrent misses for one name share one lookup. A failed lookup is not
cached and raises :class:`DirectoryUnavailable`: authentication fails closed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

MAX_ENTRIES = 50_000


class DirectoryUnavailable(Exception):
    """The consumer could not be looked up (database unreachable); the caller refuses the request."""


@dataclass(frozen=True, slots=True)
class ConsumerRecord:
    consumer_id: str
    name: str
    active: bool
    groups: frozenset[str]


@dataclass(frozen=True, slots=True)
class _Entry:
    version: int
    record: ConsumerRecord | None  # None: no such consumer (a cached miss)


Lookup = Callable[[str, str], Any]


def _default_lookup(tenant_id: str, name: str) -> Any:
    from gateway import loader  # the only gateway module that uses the ORM

    return loader.consumer_lookup(tenant_id, name)


class ConsumerDirectory:
    """Consumers of every tenant by name, for one gateway worker; safe for concurrent requests."""

    def __init__(
        self,
        services: Any = None,
        *,
        lookup: Lookup = _default_lookup,
        run_in_thread: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._run = run_in_thread or getattr(services, "run_in_thread", None) or _to_thread
        self._lookup = lookup
        self._max = max_entries
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._pending: dict[tuple[str, str], asyncio.Future[_Entry]] = {}
        self.lookups = 0  # database round trips, for tests and metrics

    async def get(self, tenant_id: str, name: str, min_version: int) -> ConsumerRecord | None:
        """The consumer ``name`` of ``tenant_id``, or None if there is none (as of ``min_version`` or later)."""
        key = (tenant_id, name)
        entry = self._entries.get(key)
        if entry is not None and entry.version >= min_version:
            return entry.record
        pending = self._pending.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._pending[key] = pending
            try:
                entry = await self._fetch(tenant_id, name)
            except BaseException as exc:
                pending.set_exception(DirectoryUnavailable(str(exc)))
                pending.exception()  # retrieved: no "never retrieved" warning when nobody else waits
                raise DirectoryUnavailable(str(exc)) from exc
            finally:
                self._pending.pop(key, None)
            pending.set_result(entry)
        else:
            entry = await asyncio.shield(pending)
        return entry.record

    async def _fetch(self, tenant_id: str, name: str) -> _Entry:
        self.lookups += 1
        row = await self._run(lambda: self._lookup(tenant_id, name))
        if row is None:
            # No such tenant (deleted under a stale snapshot): nothing to authenticate against.
            entry = _Entry(version=0, record=None)
            return entry
        version, found = row
        record = None
        if found is not None:
            consumer_id, consumer_name, status, groups = found
            record = ConsumerRecord(consumer_id, consumer_name, status == "active", frozenset(groups))
        entry = _Entry(version=version, record=record)
        if len(self._entries) >= self._max:
            # Drop the oldest tenth: insertion order approximates age, and a bounded
            # cache that sheds in bulk costs nothing per request.
            for stale in list(self._entries)[: max(1, self._max // 10)]:
                del self._entries[stale]
        self._entries[(tenant_id, name)] = entry
        return entry

    def clear(self) -> None:
        self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


async def _to_thread(fn: Callable[[], Any]) -> Any:
    return await asyncio.to_thread(fn)


def versions_of(env_services: Mapping[str, Any]) -> Mapping[str, int]:
    """The snapshot's tenant config versions (``{}`` when the builder passed none)."""
    return env_services.get("tenant_versions") or {}
