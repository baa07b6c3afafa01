"""Shared builders for the balancing tests: a hand-driven clock and spec shortcuts."""

from __future__ import annotations

from gateway.balancer import Balancer, build_balancer
from gateway.health import HealthRegistry
from gateway.upstream_spec import TargetSpec, UpstreamSpec


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def url(name: str) -> str:
    return f"http://{name}.test:80"


def spec(
    strategy: str = "round_robin",
    targets: dict[str, int] | list[str] = ("a", "b", "c"),
    *,
    uid: str = "u1",
    disabled: tuple[str, ...] = (),
    **kwargs: object,
) -> UpstreamSpec:
    weights = targets if isinstance(targets, dict) else dict.fromkeys(targets, 100)
    return UpstreamSpec(
        id=uid,
        load_balancing=strategy,
        targets=tuple(TargetSpec(url(n), weight=w, enabled=n not in disabled) for n, w in weights.items()),
        **kwargs,  # type: ignore[arg-type]
    )


def make(strategy: str = "round_robin", targets: dict[str, int] | list[str] = ("a", "b", "c"), **kwargs: object):
    """(balancer, registry, clock) for a fresh registry."""
    clock = FakeClock()
    registry = HealthRegistry(clock=clock, wall_clock=lambda: 1_700_000_000.0)
    balancer: Balancer = build_balancer(spec(strategy, targets, **kwargs), registry)
    return balancer, registry, clock


def name_of(lease_url: str) -> str:
    return lease_url.removeprefix("http://").removesuffix(".test:80")


def picks(balancer: Balancer, n: int, client_ip: str | None = None) -> list[str]:
    """n sequential requests, each released before the next."""
    out = []
    for _ in range(n):
        lease = balancer.pick(client_ip)
        assert lease is not None
        out.append(name_of(lease.url))
        lease.success()
        lease.release()
    return out


def target(registry: HealthRegistry, name: str, uid: str = "u1"):
    health = registry.get(uid, url(name))
    assert health is not None
    return health


def fail_target(registry: HealthRegistry, name: str, times: int = 1, uid: str = "u1") -> None:
    """Report `times` failures of ordinary (non-probe) requests to one target."""
    health = target(registry, name, uid)
    for _ in range(times):
        health.record_failure(probe=False)
