"""Micro-benchmark of the rate-limit store's client cost (not a test; no assertions).

64 concurrent callers each run ``--rounds`` limit checks (two limits per
check, like a plan with a per-second and a per-minute limit) against Redis,
first one ``EVALSHA`` round trip per check, then coalesced into pipelines as
the gateway does. Prints the client CPU time per check (``time.process_time``:
what the gateway worker pays, whatever Redis's own speed) for both, the wall
time, the number of round trips, and the ratio. Keys use a unique prefix in
the given database and are deleted afterwards.

    .venv/bin/python bench/limiter.py [--url redis://127.0.0.1:6379/15] [--callers 64] [--rounds 200]
"""

from __future__ import annotations

import argparse
import asyncio
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


async def _run(url: str, prefix: str, callers: int, rounds: int, coalesce: bool) -> tuple[float, float, int]:
    limiter = RedisLimiter(url, prefix=prefix, coalesce=coalesce, socket_timeout=5, round_trip_timeout=10)
    await limiter.start()

    async def caller(n: int) -> None:
        checks = _checks(n)
        for _ in range(rounds):
            assert await limiter.check(checks) is not None

    await asyncio.gather(*(caller(n) for n in range(4)))  # warm-up: connection, script
    trips0 = limiter.round_trips
    cpu, wall = time.process_time(), time.perf_counter()
    await asyncio.gather(*(caller(n) for n in range(callers)))
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    trips = limiter.round_trips - trips0
    await limiter.stop()
    return cpu, wall, trips


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", default="redis://127.0.0.1:6379/15")
    parser.add_argument("--callers", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    prefix = f"apim-bench:{uuid.uuid4().hex}:"
    n = args.callers * args.rounds
    try:
        single = asyncio.run(_run(args.url, prefix, args.callers, args.rounds, coalesce=False))
        batched = asyncio.run(_run(args.url, prefix, args.callers, args.rounds, coalesce=True))
    finally:
        client = redis.Redis.from_url(args.url)
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
        client.close()
    for label, (cpu, wall, trips) in (("EVALSHA per check", single), ("coalesced pipeline", batched)):
        print(
            f"{label:20s} {cpu / n * 1e6:7.1f} us CPU/check  {wall / n * 1e6:7.1f} us wall/check  "
            f"{n / max(trips, 1):6.1f} checks/round trip"
        )
    print(f"client CPU ratio (per-call / coalesced): {single[0] / batched[0]:.2f}x")


if __name__ == "__main__":
    main()
