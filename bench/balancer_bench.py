"""Micro-benchmark of gateway.balancer: picks per second per strategy (pick + release,
which is what the proxy does per request), for 2 and 50 targets, healthy and with
one target ejected, plus the time to build each balancer. Not a test.

    .venv/bin/python bench/balancer_bench.py [--picks 200000]
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.balancer import build_balancer
from gateway.health import HealthRegistry
from gateway.upstream_spec import STRATEGIES, TargetSpec, UpstreamSpec

ORDER = ("round_robin", "weighted_round_robin", "least_connections", "consistent_hash")


def run(strategy: str, n_targets: int, picks: int, *, degraded: bool, equal: bool) -> tuple[float, float]:
    rng = random.Random(n_targets)  # noqa: S311 - reproducible weights, not security
    weights = [100 if equal else rng.randint(1, 1000) for _ in range(n_targets)]
    spec = UpstreamSpec(
        id=f"{strategy}-{n_targets}",
        load_balancing=strategy,
        targets=tuple(TargetSpec(f"http://10.0.{i // 250}.{i % 250}:8080", weight=w) for i, w in enumerate(weights)),
        passive_failure_threshold=1,
        ejection_base=3600,
    )
    registry = HealthRegistry()
    started = time.perf_counter()
    balancer = build_balancer(spec, registry)
    first = balancer.pick()  # the first pick builds the per-epoch structures
    assert first is not None
    first.release()
    build_s = time.perf_counter() - started
    if degraded:
        ejected = registry.get(spec.id, spec.targets[0].url)
        assert ejected is not None
        ejected.record_failure(probe=False)
    ips = [f"198.51.{i // 256}.{i % 256}" for i in range(4096)]
    pick = balancer.pick
    started = time.perf_counter()
    for i in range(picks):
        lease = pick(ips[i & 4095])
        lease.release()  # type: ignore[union-attr]  # never None here; an assert would skew the timing
    elapsed = time.perf_counter() - started
    return picks / elapsed, build_s


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--picks", type=int, default=200_000)
    args = parser.parse_args()
    assert set(ORDER) == STRATEGIES
    print(f"python {sys.version.split()[0]}, {args.picks} picks each (pick + release)")
    print("weights: 'equal' = all 100; 'random' = 1..1000 (co-prime: the worst case for smooth WRR and the ring)")
    print(f"{'strategy':<22}{'targets':>8}{'weights':>8}{'picks/s':>12}{'µs/pick':>9}{'1 ejected':>12}{'build ms':>10}")
    for strategy in ORDER:
        for n in (2, 50):
            for equal in (True, False):
                rate, build_s = run(strategy, n, args.picks, degraded=False, equal=equal)
                degraded_rate, _ = run(strategy, n, args.picks, degraded=True, equal=equal)
                print(
                    f"{strategy:<22}{n:>8}{'equal' if equal else 'random':>8}{rate:>12,.0f}{1e6 / rate:>9.2f}"
                    f"{degraded_rate:>12,.0f}{build_s * 1000:>10.1f}"
                )


if __name__ == "__main__":
    main()
