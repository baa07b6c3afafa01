"""Micro-benchmark of the gateway's routing hot path (not a test; no assertions).

Builds route tables of 100 and 10,000 routes (the larger one across 100
tenants, each with its own host) and times ``RouteTable.lookup`` on pre-built
random requests that hit routes, plus ``canonicalize`` on a canonical and a
non-canonical target. Timing is per batch with ``time.perf_counter_ns`` and the
median per-call time over all batches is printed, so a GC pause or a
scheduler hiccup cannot move it. The issue's target: median lookup under 5 us at
10,000 routes, and no growth with the number of routes.

    .venv/bin/python bench/router_bench.py [--lookups 200000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import gc
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gateway.canonical import canonicalize
from gateway.router import Match, RouteTable
from gateway.snapshot import ApiSpec, RouteSpec, TenantSpec

WORDS = ["orders", "users", "items", "billing", "catalog", "search", "v1", "v2", "admin", "reports", "carts", "events"]
Request = tuple[bytes, str, str]


def build(
    tenants: int, apis_per_tenant: int, routes_per_api: int, rng: random.Random
) -> tuple[RouteTable, list[Request]]:
    """A table plus the (host, method, path) of every route, for requests that hit."""
    tenant_specs = [TenantSpec(f"t{t}", (f"tenant{t}.example.com",), is_default=t == 0) for t in range(tenants)]
    apis: list[ApiSpec] = []
    targets: list[tuple[str, str, str]] = []
    for t in range(tenants):
        host = f"tenant{t}.example.com"
        for a in range(apis_per_tenant):
            base = f"/{WORDS[a % len(WORDS)]}{a}/v{rng.randint(1, 3)}"
            routes = []
            for r in range(routes_per_api):
                path = f"/{rng.choice(WORDS)}{r}/{rng.choice(WORDS)}"
                methods = frozenset({"GET", "POST"}) if r % 2 else frozenset()
                routes.append(RouteSpec(f"r{t}-{a}-{r}", path, methods))
                targets.append((host, "GET", f"{base}{path}/{rng.randint(1, 99999)}"))
            apis.append(ApiSpec(f"a{t}-{a}", f"t{t}", base, routes=tuple(routes), upstream_id=f"u{t}"))
    table = RouteTable(tenant_specs, apis)
    suffixes = ["", ":443", ":8081", "."]
    requests = [(f"{h}{rng.choice(suffixes)}".encode(), m, p) for h, m, p in targets]
    return table, requests


def median_ns(call: Callable[[], None], batches: int) -> float:
    """Median per-call time: ``call`` runs one batch; returns ns per item."""
    samples = []
    for _ in range(batches):
        start = time.perf_counter_ns()
        call()
        samples.append(time.perf_counter_ns() - start)
    return statistics.median(samples)


def bench_lookup(table: RouteTable, requests: list[Request], lookups: int, batch: int, rng: random.Random) -> float:
    stream = [rng.choice(requests) for _ in range(batch)]
    for host, method, path in stream:  # warm up and verify every request routes
        assert isinstance(table.lookup(host, method, path), Match), (host, path)
    lookup = table.lookup

    def run() -> None:
        for host, method, path in stream:
            lookup(host, method, path)

    return median_ns(run, lookups // batch) / batch


def bench_loop_overhead(requests: list[Request], lookups: int, batch: int) -> float:
    stream = requests[:batch]

    def noop(host: bytes, method: str, path: str) -> None:
        return None

    def run() -> None:
        for host, method, path in stream:
            noop(host, method, path)

    return median_ns(run, lookups // batch) / batch


def bench_canonicalize(raw: bytes, lookups: int, batch: int) -> float:
    stream = [raw] * batch

    def run() -> None:
        for item in stream:
            canonicalize(item, b"a=1")

    return median_ns(run, lookups // batch) / batch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--lookups", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--huge", action="store_true", help="also time a 100,000-route table (slow to build)")
    args = parser.parse_args()
    rng = random.Random(args.seed)  # noqa: S311 - reproducible workload, not security

    shapes = [(10, 1, 10), (100, 1, 10), (100, 10, 10)] + ([(100, 100, 10)] if args.huge else [])
    tables = [build(tenants=t, apis_per_tenant=a, routes_per_api=r, rng=rng) for t, a, r in shapes]
    print(f"python {sys.version.split()[0]}; {args.lookups:,} lookups per table in batches of {args.batch:,}")

    gc.collect()
    gc.disable()
    try:
        overhead = bench_loop_overhead(tables[-1][1], args.lookups, args.batch)
        timings = [bench_lookup(table, requests, args.lookups, args.batch, rng) for table, requests in tables]
        c_fast = bench_canonicalize(b"/orders3/v2/items1/search/12345", args.lookups, args.batch)
        c_slow = bench_canonicalize(b"/orders3//v2/./items1/%73earch/12345", args.lookups, args.batch)
    finally:
        gc.enable()

    print(f"loop + call overhead (no-op function)        : {overhead / 1000:6.3f} us")
    by_count: dict[int, float] = {}
    for (table, _), (tenants, _, _), elapsed in zip(tables, shapes, timings, strict=True):
        by_count[table.route_count] = elapsed
        print(f"lookup median, {table.route_count:>7,} routes / {tenants:>3} tenants : {elapsed / 1000:6.3f} us")
    print(f"ratio 10,000 / 100 routes                    : {by_count[10_000] / by_count[100]:6.2f}")
    print(f"canonicalize median, canonical target        : {c_fast / 1000:6.3f} us")
    print(f"canonicalize median, target needing rewrites : {c_slow / 1000:6.3f} us")
    verdict = "met" if by_count[10_000] < 5_000 else "NOT met"
    print(f"target (median lookup < 5 us at 10,000 routes): {verdict}")


if __name__ == "__main__":
    main()
