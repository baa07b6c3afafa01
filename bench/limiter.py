"""Micro-benchmark of the rate-limit store's client cost (not a test; no assertions).

Concurrent callers each run limit checks (two limits per check, like a plan
with a per-second and a per-minute limit) against Redis, through each client
the limiter can use: redis-py (one ``EVALSHA`` per check, and coalesced into a
pipeline as the gateway did) and the lean client (``policies.limits.resp``,
coalesced: the gateway's path now). At 1 caller (a lone connection: one check
per round trip, the latency case) and at ``--callers`` (coalescing at work).
Prints the client CPU time per check (``time.process_time``: what the gateway
worker pays, whatever Redis's own speed), the wall time, the checks per round
trip, and the redis-py / lean CPU ratios, on uvloop (as the gateway runs) or
asyncio's own loop. Each variant runs ``--repeat`` times, interleaved (the
machine is shared and noisy), and the median is shown. Keys use a unique
prefix in the given database and are deleted afterwards.

    .venv/bin/python bench/limiter.py [--url redis://127.0.0.1:6379/15] [--callers 64]
        [--checks 12800] [--repeat 3] [--loop uvloop|asyncio]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import redis

from policies.limits.rules import Check
from policies.limits.store import RedisLimiter


def _checks(caller: int) -> list[Check]:
    now_ms = int(time.time() * 1000)
    out = []
    for window, period in (("second", 1000), ("minute", 60_000)):
        slot = now_ms // period
        base = f"bench:c{caller}:{window[0]}:"
        out.append(
            Check(
                key=f"{base}{slot}",
                prev_key=f"{base}{slot - 1}",
                limit=1_000_000_000,
                weight=0.5,
                ttl_ms=2 * period + 1000,
                reset_ms=period,
                period_ms=period,
                window=window,
                quota=False,
                headers=True,
                fail_closed=False,
            )
        )
    return out


async def _run(
    url: str, prefix: str, callers: int, rounds: int, *, coalesce: bool, driver: str
) -> tuple[float, float, int]:
    limiter = RedisLimiter(
        url, prefix=prefix, coalesce=coalesce, driver=driver, socket_timeout=5, round_trip_timeout=10
    )
    assert limiter.driver == driver, "this URL is not supported by the lean client"
    await limiter.start()

    async def caller(n: int, rounds: int) -> None:
        checks = _checks(n)
        for _ in range(rounds):
            assert await limiter.check(checks) is not None

    await asyncio.gather(*(caller(n, 50) for n in range(4)))  # warm-up: connection, script
    trips0 = limiter.round_trips
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(n, rounds) for n in range(callers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    trips = limiter.round_trips - trips0
    await limiter.stop()
    return cpu, wall, trips


VARIANTS = (
    ("redis-py, EVALSHA per check", "redis-py", False),
    ("redis-py, coalesced pipeline", "redis-py", True),
    ("lean, coalesced", "lean", True),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--checks", type=int, default=12_800, help="checks per run (split over the callers)")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--loop", choices=("uvloop", "asyncio"), default="uvloop", help="uvloop: as the gateway runs")
    args = parser.parse_args()
    if args.loop == "uvloop":
        import uvloop

        uvloop.install()
    prefix = f"apim-bench:{uuid.uuid4().hex}:"
    samples: dict[tuple[int, str], list[tuple[float, float, int]]] = {}
    try:
        for _ in range(args.repeat):
            for callers in (1, args.callers):
                rounds = max(1, args.checks // callers)
                for label, driver, coalesce in VARIANTS:
                    result = asyncio.run(_run(args.url, prefix, callers, rounds, coalesce=coalesce, driver=driver))
                    samples.setdefault((callers, label), []).append((*result, callers * rounds))  # type: ignore[arg-type]
    finally:
        client = redis.Redis.from_url(args.url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    for callers in (1, args.callers):
        print(f"{callers} concurrent caller(s), {args.loop} loop, median of {args.repeat}:")
        cpu_per: dict[str, float] = {}
        for label, _, _ in VARIANTS:
            runs = samples[(callers, label)]
            cpu = statistics.median(c / n for c, _, _, n in runs) * 1e6  # type: ignore[misc]
            wall = statistics.median(w / n for _, w, _, n in runs) * 1e6  # type: ignore[misc]
            per_trip = statistics.median(n / max(t, 1) for _, _, t, n in runs)  # type: ignore[misc]
            cpu_per[label] = cpu
            print(
                f"  {label:30s} {cpu:7.1f} us CPU/check  {wall:7.1f} us wall/check  {per_trip:6.1f} checks/round trip"
            )
        lean = cpu_per["lean, coalesced"]
        print(
            f"  client CPU ratio redis-py pipeline / lean: {cpu_per['redis-py, coalesced pipeline'] / lean:.2f}x"
            f"  (redis-py per check / lean: {cpu_per['redis-py, EVALSHA per check'] / lean:.2f}x)"
        )


if __name__ == "__main__":
    main()
