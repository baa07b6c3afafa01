"""Target selection for one upstream: round-robin, smooth weighted round-robin,
least-connections and consistent hashing on the client IP.

Per request the proxy calls ``balancer.pick(client_ip=..., avoid=tried_urls)``
and gets a ``Lease`` (or ``None``: no target available, answer 503). The lease
holds one in-flight slot on its target until ``release()``, which runs exactly
once (use it as a context manager so cancellation releases too); the proxy
reports the upstream outcome on it with ``success()`` / ``failure()`` /
``report_status()``.

Cost: a balancer only looks at the *admitted* targets (closed circuit, actively
healthy, enabled, weight > 0). It caches its pick structure per
``UpstreamHealth.epoch`` and rebuilds it when health changes that set, so a
pick is O(1) (round-robin, weighted), O(log n) amortized (least-connections,
lazy heap) or O(log v) (consistent hash, bisect over v ring points), and asks
the clock only while some target is ejected (to hand out half-open probes).
"""

from __future__ import annotations

import heapq
import math
from bisect import bisect_left
from collections.abc import Collection, Iterable, Sequence
from hashlib import blake2b
from types import TracebackType
from typing import Any, ClassVar, Final

from gateway.health import HealthRegistry, TargetHealth, UpstreamHealth, is_failure_status
from gateway.upstream_spec import (
    CONSISTENT_HASH,
    LEAST_CONNECTIONS,
    ROUND_ROBIN,
    WEIGHTED_ROUND_ROBIN,
    UpstreamSpec,
)

# Smooth WRR precomputes one cycle when it costs at most this many steps (cycle length × targets);
# beyond that it runs nginx's O(n) step per pick instead (only for large, co-prime weight sets).
SCHEDULE_BUDGET: Final = 1 << 18
# Consistent hash: ring points per unit of weight (the default weight 100 gives 160, like ketama).
POINTS_PER_WEIGHT: Final = 1.6


class Lease:
    """One request's hold on a target. ``release()`` is idempotent. One outcome
    counts per lease (later ones are ignored); it may be reported before or
    after release, but report first when the lease is a half-open probe: a
    probe released without an outcome is abandoned (the next request probes)
    and a late outcome then counts like any other request's."""

    __slots__ = ("_released", "_reported", "probe", "spec", "target", "url")

    def __init__(self, target: TargetHealth, *, probe: bool = False) -> None:
        self.target = target
        self.spec = target.spec
        self.url = target.url
        self.probe = probe
        self._reported = False
        self._released = False
        target.acquire()

    def success(self) -> None:
        if not self._reported:
            self._reported = True
            self.target.record_success(probe=self.probe)

    def failure(self) -> None:
        """Connect error, timeout, or a reset by the upstream. Never for gateway-generated rejections."""
        if not self._reported:
            self._reported = True
            self.target.record_failure(probe=self.probe)

    def report_status(self, status: int) -> None:
        """Report the upstream's response status: 502/503/504 count as failures."""
        if is_failure_status(status):
            self.failure()
        else:
            self.success()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self.target.release()
        if self.probe and not self._reported:
            self.probe = False
            self.target.probe_abandoned()

    @property
    def released(self) -> bool:
        return self._released

    def __enter__(self) -> Lease:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()

    def __repr__(self) -> str:
        return f"<Lease {self.url}{' probe' if self.probe else ''}{' released' if self._released else ''}>"


class Balancer:
    """Base: admitted-set caching, half-open probes, avoidance of tried targets."""

    strategy: ClassVar[str] = ""

    def __init__(self, spec: UpstreamSpec, health: UpstreamHealth) -> None:
        self.spec = spec
        self.health = health
        self._targets: tuple[TargetHealth, ...] = tuple(health.targets[t.url] for t in spec.targets if t.pickable)
        self._admitted: tuple[TargetHealth, ...] = ()
        self._epoch = -1
        health.load_listener = None

    def pick(self, client_ip: str | None = None, avoid: Collection[str] = ()) -> Lease | None:
        """Choose a target and take a lease on it, or ``None`` when none is available.

        ``avoid`` holds URLs this request already tried; they are chosen again
        only when no other target is available.
        """
        health = self.health
        if health.ejected:
            probe = health.claim_probe(health.clock(), avoid)
            if probe is not None:
                return Lease(probe, probe=True)
        if self._epoch != health.epoch:
            self._epoch = health.epoch
            self._rebuild()
        target = self._choose(client_ip)
        if target is None:
            return None
        if avoid and target.url in avoid:
            target = self._alternative(target, avoid, client_ip)
        health.pick_seq += 1
        target.last_pick = health.pick_seq
        return Lease(target)

    def describe(self) -> dict[str, Any]:
        return {"upstream": self.spec.id, "strategy": self.strategy, "targets": self.health.describe()}

    def _rebuild(self) -> None:
        self._admitted = tuple(t for t in self._targets if t.admitted)

    def _choose(self, client_ip: str | None) -> TargetHealth | None:
        raise NotImplementedError

    def _alternative(self, chosen: TargetHealth, avoid: Collection[str], client_ip: str | None) -> TargetHealth:
        admitted = self._admitted
        n = len(admitted)
        start = self.health.pick_seq % n if n else 0
        for k in range(n):
            candidate = admitted[(start + k) % n]
            if candidate.url not in avoid:
                return candidate
        return chosen


class RoundRobinBalancer(Balancer):
    strategy = ROUND_ROBIN

    def __init__(self, spec: UpstreamSpec, health: UpstreamHealth) -> None:
        super().__init__(spec, health)
        self._next = 0

    def _choose(self, client_ip: str | None) -> TargetHealth | None:
        admitted = self._admitted
        if not admitted:
            return None
        i = self._next
        if i >= len(admitted):
            i = 0
        self._next = i + 1
        return admitted[i]


def smooth_weighted_step(current: list[int], weights: Sequence[int], total: int) -> int:
    """nginx's smooth weighted round-robin step: every peer gains its weight, the
    largest (first on ties) is chosen and loses the total."""
    best = -1
    best_value = -math.inf
    for i, weight in enumerate(weights):
        value = current[i] + weight
        current[i] = value
        if value > best_value:
            best, best_value = i, value
    current[best] -= total
    return best


def smooth_weighted_order(weights: Sequence[int], budget: int = SCHEDULE_BUDGET) -> list[int] | None:
    """One full cycle of nginx's sequence (weights reduced by their gcd), or
    ``None`` when computing it would exceed ``budget`` steps."""
    if not weights:
        return []
    divisor = math.gcd(*weights)
    reduced = [w // divisor for w in weights]
    total = sum(reduced)
    if total * len(reduced) > budget:
        return None
    current = [0] * len(reduced)
    return [smooth_weighted_step(current, reduced, total) for _ in range(total)]


class SmoothWeightedBalancer(Balancer):
    """nginx's smooth weighted round-robin: weights 5,1,1 give a a b a c a a."""

    strategy = WEIGHTED_ROUND_ROBIN

    def __init__(self, spec: UpstreamSpec, health: UpstreamHealth, *, budget: int = SCHEDULE_BUDGET) -> None:
        super().__init__(spec, health)
        self._budget = budget
        self._schedule: tuple[TargetHealth, ...] = ()
        self._cursor = 0
        self._weights: list[int] = []
        self._current: list[int] = []
        self._total = 0

    def _rebuild(self) -> None:
        super()._rebuild()
        admitted = self._admitted
        order = smooth_weighted_order([t.weight for t in admitted], self._budget)
        if order is None:
            self._schedule = ()
            self._weights = [t.weight for t in admitted]
            self._current = [0] * len(admitted)
            self._total = sum(self._weights)
        else:
            self._schedule = tuple(admitted[i] for i in order)

    def _choose(self, client_ip: str | None) -> TargetHealth | None:
        schedule = self._schedule
        if schedule:
            i = self._cursor
            if i >= len(schedule):
                i = 0
            self._cursor = i + 1
            return schedule[i]
        if not self._admitted:
            return None
        return self._admitted[smooth_weighted_step(self._current, self._weights, self._total)]


class LeastConnectionsBalancer(Balancer):
    """Fewest in-flight requests per unit of weight; ties go to the least
    recently picked target, so idle traffic rotates like round-robin.

    A lazy heap of (load, last pick, load version, position, target): every
    acquire/release pushes a fresh entry, stale ones are dropped when they reach
    the top, and the heap is compacted when it grows past a few entries per target.
    """

    strategy = LEAST_CONNECTIONS

    def __init__(self, spec: UpstreamSpec, health: UpstreamHealth) -> None:
        super().__init__(spec, health)
        self._positions = {id(t): i for i, t in enumerate(self._targets)}
        self._heap: list[tuple[float, int, int, int, TargetHealth]] = []
        health.load_listener = self._on_load

    def _entry(self, target: TargetHealth) -> tuple[float, int, int, int, TargetHealth]:
        return (
            target.in_flight / target.weight,
            target.last_pick,
            target.load_version,
            self._positions[id(target)],
            target,
        )

    def _rebuild(self) -> None:
        super()._rebuild()
        self._compact()

    def _compact(self) -> None:
        self._heap = [self._entry(t) for t in self._admitted]
        heapq.heapify(self._heap)

    def _on_load(self, target: TargetHealth) -> None:
        if id(target) not in self._positions or not target.admitted:
            return
        heap = self._heap
        heapq.heappush(heap, self._entry(target))
        if len(heap) > 4 * len(self._admitted) + 16:
            self._compact()

    def _choose(self, client_ip: str | None) -> TargetHealth | None:
        heap = self._heap
        for _ in range(2):
            while heap:
                _, _, version, _, target = heap[0]
                if version == target.load_version and target.admitted:
                    return target
                heapq.heappop(heap)
            if not self._admitted:
                return None
            # Drained: another balancer took over the load listener (reload) or all entries went stale.
            self._compact()
            heap = self._heap
        return None

    def _alternative(self, chosen: TargetHealth, avoid: Collection[str], client_ip: str | None) -> TargetHealth:
        others = [t for t in self._admitted if t.url not in avoid]
        if not others:
            return chosen
        return min(others, key=lambda t: (t.in_flight / t.weight, t.last_pick))


def hash64(text: str) -> int:
    """Stable across processes and hosts (unlike ``hash``), so every gateway worker maps a client alike."""
    return int.from_bytes(blake2b(text.encode(), digest_size=8).digest(), "big")


def ring_points(target: TargetHealth) -> tuple[int, ...]:
    """The target's virtual nodes: a count proportional to its weight, cached on its health
    (which survives reloads) so a rebuild only hashes new or re-weighted targets."""
    count = max(1, round(target.weight * POINTS_PER_WEIGHT))
    cached = target.ring_points
    if cached is not None and cached[0] == count:
        return cached[1]
    points: list[int] = []
    for block in range((count + 7) // 8):  # one 64-byte digest gives eight points, as ketama takes four from md5
        digest = blake2b(f"{target.url}#{block}".encode(), digest_size=64).digest()
        points.extend(int.from_bytes(digest[i : i + 8], "big") for i in range(0, 64, 8))
    cached_points = tuple(points[:count])
    target.ring_points = (count, cached_points)
    return cached_points


class ConsistentHashBalancer(Balancer):
    """A hash ring over the client IP. Points of unavailable targets are dropped
    from the lookup ring, so their clients fall through to the next point and
    everybody else keeps their target. Without a client IP it round-robins."""

    strategy = CONSISTENT_HASH

    def __init__(self, spec: UpstreamSpec, health: UpstreamHealth) -> None:
        super().__init__(spec, health)
        points: list[int] = []
        owners: list[int] = []
        for i, target in enumerate(self._targets):
            target_points = ring_points(target)
            points.extend(target_points)
            owners.extend([i] * len(target_points))
        order = sorted(range(len(points)), key=points.__getitem__)
        self._full_points = [points[k] for k in order]
        self._full_owners = [owners[k] for k in order]
        self._points: list[int] = []
        self._owners: list[TargetHealth] = []
        self._next = 0

    def _rebuild(self) -> None:
        super()._rebuild()
        targets = self._targets
        ok = [t.admitted for t in targets]
        self._points = [p for p, i in zip(self._full_points, self._full_owners, strict=True) if ok[i]]
        self._owners = [targets[i] for i in self._full_owners if ok[i]]

    def _position(self, client_ip: str) -> int:
        pos = bisect_left(self._points, hash64(client_ip))
        return 0 if pos == len(self._points) else pos

    def _choose(self, client_ip: str | None) -> TargetHealth | None:
        if not self._owners:
            return None
        if client_ip is None:
            admitted = self._admitted
            i = self._next % len(admitted)
            self._next = i + 1
            return admitted[i]
        return self._owners[self._position(client_ip)]

    def _alternative(self, chosen: TargetHealth, avoid: Collection[str], client_ip: str | None) -> TargetHealth:
        if client_ip is None:
            return super()._alternative(chosen, avoid, client_ip)
        owners = self._owners
        n = len(owners)
        start = self._position(client_ip)
        for k in range(1, n):
            candidate = owners[(start + k) % n]
            if candidate.url not in avoid:
                return candidate
        return chosen


STRATEGY_CLASSES: Final[dict[str, type[Balancer]]] = {
    ROUND_ROBIN: RoundRobinBalancer,
    WEIGHTED_ROUND_ROBIN: SmoothWeightedBalancer,
    LEAST_CONNECTIONS: LeastConnectionsBalancer,
    CONSISTENT_HASH: ConsistentHashBalancer,
}


def build_balancer(spec: UpstreamSpec, registry: HealthRegistry) -> Balancer:
    """Build the balancer for one upstream of a new snapshot, bound to the
    registry's (surviving) health state. Call off the request path."""
    return STRATEGY_CLASSES[spec.load_balancing](spec, registry.upstream(spec))


def build_balancers(specs: Iterable[UpstreamSpec], registry: HealthRegistry) -> dict[str, Balancer]:
    """All balancers of a new snapshot, keyed by upstream id; the registry forgets
    upstreams that are gone. Call off the request path, before swapping the snapshot in."""
    balancers = {spec.id: build_balancer(spec, registry) for spec in specs}
    registry.retain(balancers)
    return balancers
