"""Keeps the gateway's configuration snapshot current, off the request path.

Two triggers, either enough on its own:

* the "config changed" event on the Channels layer (Redis pub/sub in
  production), published by every service after commit — reaches every worker
  of every replica within milliseconds;
* a poll of a cheap fingerprint of all tenants' config versions every
  ``poll_interval`` seconds — catches a lost event, and is the only cross-process
  signal on the embedded in-memory layer.

A rebuild runs the (synchronous, ORM-using) loader in a worker thread and swaps
the result in with one assignment, so in-flight requests finish on the snapshot
they started with. A failed load (database down, bad row) keeps the last good
snapshot serving and is reported through ``status()`` for the readiness probe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Hashable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

logger = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Loaded(Generic[T]):
    snapshot: T
    fingerprint: Hashable


class ConfigWatcher(Generic[T]):
    """Owns ``current``: the snapshot every request reads (one attribute read, no lock)."""

    def __init__(
        self,
        *,
        load: Callable[[], Loaded[T]],
        fingerprint: Callable[[], Hashable],
        poll_interval: float = 0.5,
        debounce: float = 0.02,
        channel_layer: Any = None,
        group: str = "apim.config",
        on_swap: Callable[[T], None] | None = None,
        release: Callable[[], None] | None = None,
    ) -> None:
        self.current: T | None = None
        # One dedicated thread runs every load and poll, so the loader keeps one
        # database connection, and ``release`` can close it in that thread on stop.
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="apim-config")
        self._load = self._in_thread(load)
        self._fingerprint = self._in_thread(fingerprint)
        self._release = release
        self._poll_interval = poll_interval
        self._debounce = debounce
        self._layer = channel_layer
        self._group = group
        self._on_swap = on_swap
        self._loaded_fingerprint: Hashable = None
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.loaded_at: float | None = None  # wall clock of the last successful swap
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.reloads = 0

    async def run_in_thread(self, fn: Callable[[], Any]) -> Any:
        """Run other database work (health reports) on the loader's thread and connection."""
        return await self._in_thread(fn)()

    def _in_thread(self, fn: Callable[[], Any]) -> Callable[[], Awaitable[Any]]:
        async def call() -> Any:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn)

        return call

    async def start(self) -> None:
        """Load once (errors are recorded, not raised: readiness says "not ready"), then watch."""
        await self.reload()
        self._tasks.append(asyncio.create_task(self._rebuild_loop(), name="apim-config-rebuild"))
        self._tasks.append(asyncio.create_task(self._poll_loop(), name="apim-config-poll"))
        if self._layer is not None:
            self._tasks.append(asyncio.create_task(self._listen_loop(), name="apim-config-listen"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks.clear()
        if self._release is not None:
            with contextlib.suppress(Exception):
                await self._in_thread(self._release)()
        self._executor.shutdown(wait=False)

    def request_reload(self) -> None:
        self._wake.set()

    async def reload(self) -> bool:
        """Build and swap in a new snapshot now; False (old one kept) on failure."""
        try:
            loaded = await self._load()
        except Exception as exc:  # noqa: BLE001 - any failure keeps the last good snapshot
            self.last_error = f"{type(exc).__name__}: {exc}"[:500]
            self.last_error_at = time.time()
            logger.warning("config reload failed, keeping the last good snapshot: %s", self.last_error)
            return False
        self.current = loaded.snapshot
        self._loaded_fingerprint = loaded.fingerprint
        self.loaded_at = time.time()
        self.last_error = None
        self.last_error_at = None
        self.reloads += 1
        if self._on_swap is not None:
            self._on_swap(loaded.snapshot)
        return True

    def status(self) -> dict[str, Any]:
        now = time.time()
        return {
            "loaded": self.current is not None,
            "fingerprint": repr(self._loaded_fingerprint) if self._loaded_fingerprint is not None else None,
            "age_seconds": round(now - self.loaded_at, 3) if self.loaded_at else None,
            "reloads": self.reloads,
            "last_error": self.last_error,
            "stale": self.last_error is not None,
        }

    async def _rebuild_loop(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(self._debounce)  # coalesce a burst of events into one rebuild
            self._wake.clear()
            await self.reload()

    async def _poll_loop(self) -> None:
        while True:
            await asyncio.sleep(self._poll_interval)
            try:
                fingerprint = await self._fingerprint()
            except Exception as exc:  # noqa: BLE001 - database down: keep serving, say so
                self.last_error = f"{type(exc).__name__}: {exc}"[:500]
                self.last_error_at = time.time()
                continue
            if fingerprint != self._loaded_fingerprint or self.current is None or self.last_error is not None:
                self._wake.set()

    async def _listen_loop(self) -> None:
        """Subscribe to the config group; resubscribe after a layer error (Redis restarts)."""
        while True:
            channel = None
            try:
                channel = await self._layer.new_channel()
                await self._layer.group_add(self._group, channel)
                while True:
                    message = await self._layer.receive(channel)
                    if message.get("type") == "config.changed":
                        self._wake.set()
            except asyncio.CancelledError:
                if channel is not None:
                    with contextlib.suppress(Exception):
                        await self._layer.group_discard(self._group, channel)
                raise
            except Exception:
                logger.warning("config event listener lost its channel layer; retrying", exc_info=True)
                await asyncio.sleep(1.0)
