"""Target health: passive outlier detection with a per-target circuit breaker,
active HTTP health checks, and the registry that keeps both across reloads.

Invariants:

* State lives in a ``HealthRegistry`` keyed by (upstream id, target URL), not in
  the immutable snapshot. Rebuilding balancers for a new snapshot reuses the
  ``TargetHealth`` objects of targets that still exist and forgets removed ones.
* A target is *admitted* (gets ordinary traffic) when its circuit is closed,
  it is not actively unhealthy and its config makes it pickable. Every change of
  that set bumps ``UpstreamHealth.epoch``; balancers rebuild their pick
  structures lazily when they see a new epoch, so the pick path never asks the
  clock about healthy targets.
* Passive rule (Envoy-style outlier detection, not Kong's "never comes back"):
  ``passive_failure_threshold`` consecutive failures open the circuit for
  ``ejection_base * 2**(n-1)`` seconds (n = ejections in a row, capped by
  ``ejection_cap``). After that the circuit is half-open: exactly one request,
  the probe, is let through. Its success closes the circuit; its failure
  re-ejects for longer. A success resets the consecutive-failure counter; the
  ejection count resets once a target has stayed closed for ``ejection_cap``.
* Only the caller knows outcomes; it reports connect errors, timeouts and
  502/503/504 from the upstream as failures and never reports rejections the
  gateway generated itself.
* Single-threaded: everything here runs on one event loop and the pick/acquire
  step has no ``await`` in it, so "exactly one probe" needs no lock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable, Collection, Iterable
from typing import Any, Final
from urllib.parse import urlsplit

from gateway.upstream_spec import TargetSpec, UpstreamSpec

logger = logging.getLogger(__name__)

Clock = Callable[[], float]
Probe = Callable[[str, float], Awaitable[int | None]]
LoadListener = Callable[["TargetHealth"], None]

CLOSED: Final = 0
OPEN: Final = 1
HALF_OPEN: Final = 2
_CIRCUIT_NAMES: Final = ("closed", "open", "half_open")

# Upstream statuses that count as target failures (like Envoy's consecutive_gateway_failure).
FAILURE_STATUSES: Final = frozenset({502, 503, 504})
MAX_EJECTION_S: Final = 300.0
MAX_EJECTION_FACTOR: Final = 10


def is_failure_status(status: int) -> bool:
    return status in FAILURE_STATUSES


def ejection_cap(base: float) -> float:
    """Longest ejection: 10 × base, at most 300 s, but never shorter than base."""
    return max(base, min(base * MAX_EJECTION_FACTOR, MAX_EJECTION_S))


def ejection_duration(base: float, n: int) -> float:
    """Length of the n-th ejection in a row (n >= 1)."""
    cap = ejection_cap(base)
    if n > 32:
        return cap
    return min(math.ldexp(base, n - 1), cap)


def probe_url(target_url: str, path: str) -> str:
    """The active-check URL: the healthcheck path on the target's origin (a path
    in the target URL is a forwarding prefix, not part of the probe)."""
    parts = urlsplit(target_url)
    return f"{parts.scheme}://{parts.netloc}{path if path.startswith('/') else '/' + path}"


class TargetHealth:
    """Mutable health of one target. Owned by its ``UpstreamHealth``."""

    __slots__ = (
        "active_failures",
        "active_healthy",
        "active_successes",
        "circuit",
        "closed_at",
        "consecutive_failures",
        "ejected_until",
        "ejections",
        "in_flight",
        "last_pick",
        "load_version",
        "pickable",
        "probe_in_flight",
        "ring_points",
        "spec",
        "total_ejections",
        "total_failures",
        "upstream",
        "url",
        "weight",
    )

    def __init__(self, spec: TargetSpec, upstream: UpstreamHealth) -> None:
        self.spec = spec
        self.url = spec.url
        self.upstream = upstream
        self.weight = spec.weight
        self.pickable = spec.pickable
        self.circuit: int = CLOSED
        self.consecutive_failures = 0
        self.ejections = 0
        self.ejected_until = 0.0
        self.closed_at = -math.inf
        self.probe_in_flight = False
        self.active_healthy = True
        self.active_successes = 0
        self.active_failures = 0
        self.in_flight = 0
        self.load_version = 0
        self.last_pick = 0
        self.total_failures = 0
        self.total_ejections = 0
        # Cached consistent-hash points: (count, sorted hashes); survives reloads with the target.
        self.ring_points: tuple[int, tuple[int, ...]] | None = None

    @property
    def admitted(self) -> bool:
        return self.circuit == CLOSED and self.active_healthy and self.pickable

    # In-flight accounting (used by leases only).
    def acquire(self) -> None:
        self.in_flight += 1
        self.load_version += 1
        listener = self.upstream.load_listener
        if listener is not None:
            listener(self)

    def release(self) -> None:
        self.in_flight -= 1
        self.load_version += 1
        listener = self.upstream.load_listener
        if listener is not None:
            listener(self)

    # Passive outcomes.
    def record_success(self, *, probe: bool) -> None:
        self.consecutive_failures = 0
        if probe and self.circuit != CLOSED:
            self.circuit = CLOSED
            self.probe_in_flight = False
            self.closed_at = self.upstream.clock()
            self.upstream._circuit_changed(self)

    def record_failure(self, *, probe: bool) -> None:
        self.consecutive_failures += 1
        self.total_failures += 1
        up = self.upstream
        if probe and self.circuit != CLOSED:
            self.probe_in_flight = False
            self._eject(up.clock())
        elif self.circuit == CLOSED and self.consecutive_failures >= up.failure_threshold:
            self._eject(up.clock())
        # Failures of requests that started before an ejection change nothing more.

    def probe_abandoned(self) -> None:
        """The probe ended without an outcome (e.g. the client went away): let another request probe."""
        if self.probe_in_flight:
            self.probe_in_flight = False
            self.upstream._update_probe_deadline()

    def _eject(self, now: float) -> None:
        up = self.upstream
        if self.circuit == CLOSED and now - self.closed_at >= ejection_cap(up.ejection_base):
            self.ejections = 0
        self.ejections += 1
        self.total_ejections += 1
        self.ejected_until = now + ejection_duration(up.ejection_base, self.ejections)
        was_closed = self.circuit == CLOSED
        self.circuit = OPEN
        if was_closed:
            up._circuit_changed(self)
        else:
            up._update_probe_deadline()

    def probe_due(self, now: float) -> bool:
        return (
            self.circuit != CLOSED
            and self.pickable
            and self.active_healthy
            and not self.probe_in_flight
            and now >= self.ejected_until
        )

    # Active checks.
    def record_active(self, ok: bool) -> None:
        up = self.upstream
        if ok:
            self.active_failures = 0
            self.active_successes += 1
            if not self.active_healthy and self.active_successes >= up.healthy_threshold:
                self.active_healthy = True
                up._admission_changed()
        else:
            self.active_successes = 0
            self.active_failures += 1
            if self.active_healthy and self.active_failures >= up.unhealthy_threshold:
                self.active_healthy = False
                up._admission_changed()

    def describe(self, now: float, wall_now: float) -> dict[str, Any]:
        circuit = self.circuit
        if circuit == OPEN and now >= self.ejected_until:
            circuit = HALF_OPEN
        if not self.pickable:
            state = "disabled"
        elif not self.active_healthy:
            state = "unhealthy"
        elif circuit == OPEN:
            state = "ejected"
        elif circuit == HALF_OPEN:
            state = "half_open"
        else:
            state = "healthy"
        ejections = self.ejections
        if self.circuit == CLOSED and now - self.closed_at >= ejection_cap(self.upstream.ejection_base):
            ejections = 0
        remaining = max(0.0, self.ejected_until - now) if self.circuit != CLOSED else 0.0
        return {
            "url": self.url,
            "state": state,
            "circuit": _CIRCUIT_NAMES[circuit],
            "active_healthy": self.active_healthy,
            "consecutive_failures": self.consecutive_failures,
            "ejections": ejections,
            "ejected_until": wall_now + remaining if remaining else None,
            "ejected_for_s": round(remaining, 3),
            "probe_in_flight": self.probe_in_flight,
            "in_flight": self.in_flight,
            "total_failures": self.total_failures,
            "total_ejections": self.total_ejections,
        }


class UpstreamHealth:
    """Health of one upstream's targets plus the settings that drive it."""

    __slots__ = (
        "active_enabled",
        "clock",
        "ejected",
        "ejection_base",
        "epoch",
        "failure_threshold",
        "healthy_threshold",
        "load_listener",
        "next_probe_at",
        "pick_seq",
        "targets",
        "unhealthy_threshold",
        "upstream_id",
        "wall_clock",
    )

    def __init__(self, upstream_id: str, *, clock: Clock = time.monotonic, wall_clock: Clock = time.time) -> None:
        self.upstream_id = upstream_id
        self.clock = clock
        self.wall_clock = wall_clock
        self.targets: dict[str, TargetHealth] = {}
        self.epoch = 0
        self.ejected: list[TargetHealth] = []
        self.next_probe_at = math.inf
        self.pick_seq = 0
        self.load_listener: LoadListener | None = None
        self.failure_threshold = 5
        self.ejection_base = 30.0
        self.healthy_threshold = 2
        self.unhealthy_threshold = 3
        self.active_enabled = False

    def configure(self, spec: UpstreamSpec) -> None:
        """Apply a (new) snapshot's settings; keep state of surviving targets."""
        self.failure_threshold = spec.passive_failure_threshold
        self.ejection_base = spec.ejection_base
        self.healthy_threshold = spec.healthy_threshold
        self.unhealthy_threshold = spec.unhealthy_threshold
        self.active_enabled = spec.healthcheck_enabled
        old = self.targets
        fresh: dict[str, TargetHealth] = {}
        for ts in spec.targets:
            th = old.get(ts.url)
            if th is None:
                th = TargetHealth(ts, self)
            th.spec = ts
            th.weight = ts.weight
            th.pickable = ts.pickable
            if not spec.healthcheck_enabled:
                # Nothing would ever mark it healthy again.
                th.active_healthy = True
                th.active_successes = th.active_failures = 0
            fresh[ts.url] = th
        self.targets = fresh
        self.ejected = [t for t in fresh.values() if t.circuit != CLOSED]
        self._admission_changed()

    def claim_probe(self, now: float, avoid: Collection[str] = ()) -> TargetHealth | None:
        """Hand the half-open probe of a target whose ejection has run out to this request."""
        if now < self.next_probe_at:
            return None
        for t in self.ejected:
            if t.probe_due(now) and t.url not in avoid:
                if t.circuit == OPEN:
                    t.circuit = HALF_OPEN
                t.probe_in_flight = True
                self._update_probe_deadline()
                return t
        return None

    def _circuit_changed(self, target: TargetHealth) -> None:
        if target.circuit == CLOSED:
            with contextlib.suppress(ValueError):
                self.ejected.remove(target)
        elif target not in self.ejected:
            self.ejected.append(target)
        self._admission_changed()

    def _admission_changed(self) -> None:
        self.epoch += 1
        self._update_probe_deadline()

    def _update_probe_deadline(self) -> None:
        self.next_probe_at = min(
            (t.ejected_until for t in self.ejected if t.active_healthy and t.pickable and not t.probe_in_flight),
            default=math.inf,
        )

    def describe(self) -> list[dict[str, Any]]:
        now, wall = self.clock(), self.wall_clock()
        return [t.describe(now, wall) for t in self.targets.values()]


class HealthRegistry:
    """All upstreams' health, for the life of the gateway process."""

    def __init__(self, *, clock: Clock = time.monotonic, wall_clock: Clock = time.time) -> None:
        self.clock = clock
        self.wall_clock = wall_clock
        self._upstreams: dict[str, UpstreamHealth] = {}

    def upstream(self, spec: UpstreamSpec) -> UpstreamHealth:
        """Get or create the upstream's health and reconcile it with ``spec``."""
        health = self._upstreams.get(spec.id)
        if health is None:
            health = self._upstreams[spec.id] = UpstreamHealth(spec.id, clock=self.clock, wall_clock=self.wall_clock)
        health.configure(spec)
        return health

    def retain(self, upstream_ids: Iterable[str]) -> None:
        """Forget upstreams that are no longer in the snapshot."""
        keep = set(upstream_ids)
        for uid in [uid for uid in self._upstreams if uid not in keep]:
            del self._upstreams[uid]

    def sync(self, specs: Iterable[UpstreamSpec]) -> None:
        specs = list(specs)
        for spec in specs:
            self.upstream(spec)
        self.retain(spec.id for spec in specs)

    def find(self, upstream_id: str) -> UpstreamHealth | None:
        return self._upstreams.get(upstream_id)

    def get(self, upstream_id: str, url: str) -> TargetHealth | None:
        health = self._upstreams.get(upstream_id)
        return health.targets.get(url) if health is not None else None

    def describe(self) -> dict[str, list[dict[str, Any]]]:
        return {uid: health.describe() for uid, health in self._upstreams.items()}


class ActiveHealthChecker:
    """One asyncio task per upstream with ``healthcheck_enabled``; each probes
    every pickable target's healthcheck path every interval, concurrently.

    ``probe(url, timeout)`` returns the status or ``None`` on any error; this
    module does no HTTP itself. 2xx and 3xx are successes.
    """

    def __init__(self, registry: HealthRegistry, probe: Probe) -> None:
        self._registry = registry
        self._probe = probe
        self._specs: dict[str, UpstreamSpec] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._retiring: set[asyncio.Task[None]] = set()
        self._running = False

    @property
    def checked_upstreams(self) -> frozenset[str]:
        return frozenset(self._tasks)

    def start(self, specs: Iterable[UpstreamSpec] | None = None) -> None:
        """Start checking ``specs`` (default: those given to ``update`` so far); needs a
        running event loop (call it at lifespan startup)."""
        self._running = True
        self.update(list(self._specs.values()) if specs is None else specs)

    def update(self, specs: Iterable[UpstreamSpec]) -> None:
        """Reconcile with a new snapshot: start, keep, restart or stop per-upstream tasks."""
        wanted = {spec.id: spec for spec in specs if spec.healthcheck_enabled}
        for uid in [uid for uid in self._tasks if uid not in wanted]:
            self._retire(uid)
        for uid, spec in wanted.items():
            self._registry.upstream(spec)
            old = self._specs.get(uid)
            self._specs[uid] = spec
            if uid in self._tasks and old is not None and old.healthcheck_interval != spec.healthcheck_interval:
                self._retire(uid)
                self._specs[uid] = spec
            if self._running and uid not in self._tasks:
                self._tasks[uid] = asyncio.get_running_loop().create_task(
                    self._run(uid), name=f"apim-healthcheck-{uid}"
                )
        for uid in [uid for uid in self._specs if uid not in wanted]:
            del self._specs[uid]

    async def stop(self) -> None:
        self._running = False
        for uid in list(self._tasks):
            self._retire(uid)
        pending = list(self._retiring)
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)
        self._retiring.clear()

    def _retire(self, uid: str) -> None:
        task = self._tasks.pop(uid)
        task.cancel()
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def check_once(self, upstream_id: str) -> None:
        """One round of probes for one upstream (the task's body; public for tests and tools)."""
        spec = self._specs[upstream_id]
        targets = [(t.url, probe_url(t.url, spec.healthcheck_path)) for t in spec.targets if t.pickable]
        results = await asyncio.gather(*(self._probe_one(url, spec.healthcheck_timeout) for _, url in targets))
        # Look the state up after the await: a reload may have replaced or removed targets meanwhile.
        health = self._registry.find(upstream_id)
        if health is None:
            return
        for (url, _), ok in zip(targets, results, strict=True):
            target = health.targets.get(url)
            if target is not None and target.pickable:
                target.record_active(ok)

    async def _probe_one(self, url: str, timeout: float) -> bool:
        try:
            # The probe gets the timeout; the guard covers a probe that ignores it.
            async with asyncio.timeout(timeout * 1.1 + 0.05):
                status = await self._probe(url, timeout)
        except TimeoutError:
            return False
        except Exception:  # a broken probe is a failed check, never a dead checker
            logger.debug("health probe %s raised", url, exc_info=True)
            return False
        return status is not None and 200 <= status < 400

    async def _run(self, upstream_id: str) -> None:
        while True:
            spec = self._specs.get(upstream_id)
            if spec is None:
                return
            try:
                await self.check_once(upstream_id)
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("health check round for upstream %s failed", upstream_id)
            await asyncio.sleep(spec.healthcheck_interval)
