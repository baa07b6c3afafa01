"""Micro-benchmark of the gateway's per-request metrics cost (not a test; no assertions).

Times, per request, with realistic label variety (20 APIs, a few statuses,
latencies spread over the buckets):

* ``observe``: what ``gateway.metrics.GatewayMetrics`` does on the request path;
* ``counting``: the wrapper around the usage recorder's ``record`` (observe plus
  the keyword hand-off), against the bare ``record`` it wraps;
* ``prometheus_client``: the same counter and three histograms updated per
  request with ``labels().inc()`` / ``observe()`` — what the accumulator avoids
  (in-memory values here; the multi-process mmap values cost more);
* ``flush``: folding one second's worth of requests into prometheus_client,
  amortised per request.

Median per-call time over batches (``time.perf_counter_ns``), so a GC pause
cannot move it.

    .venv/bin/python bench/metrics_bench.py [--requests 200000] [--batch 1000]
    PROMETHEUS_MULTIPROC_DIR=$(mktemp -d) .venv/bin/python bench/metrics_bench.py   # mmap values, as with --workers N
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
from prometheus_client import CollectorRegistry, Counter, Histogram

from gateway.metrics import LATENCY_BUCKETS, GatewayMetrics

Fields = dict[str, object]


def requests(count: int, rng: random.Random) -> list[Fields]:
    out = []
    for _ in range(count):
        api = rng.randrange(20)
        upstream = int(rng.lognormvariate(8, 1.5))  # ~3 ms median, long tail
        out.append(
            {
                "request_id": "r",
                "tenant_id": f"t{api % 4}",
                "method": rng.choice(("GET", "GET", "GET", "POST", "PUT")),
                "path": "/x",
                "status": rng.choice((200, 200, 200, 200, 201, 404, 429, 502)),
                "latency_us": upstream + 150,
                "api_id": f"a{api}",
                "deny_reason": "",
                "upstream_latency_us": upstream,
                "gateway_latency_us": 120,
            }
        )
    return out


def median_ns(run_batch: Callable[[list[Fields]], None], batches: list[list[Fields]]) -> float:
    samples = []
    for batch in batches:
        started = time.perf_counter_ns()
        run_batch(batch)
        samples.append((time.perf_counter_ns() - started) / len(batch))
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=200_000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    rng = random.Random(5)  # noqa: S311 - reproducible test data, not secrets
    data = requests(args.requests, rng)
    batches = [data[i : i + args.batch] for i in range(0, len(data), args.batch)]
    gc.freeze()

    metrics = GatewayMetrics()

    def observe(batch: list[Fields]) -> None:
        observe = metrics.observe
        for f in batch:
            observe(
                f["tenant_id"],
                f["api_id"],
                f["method"],
                f["status"],
                f["deny_reason"],
                f["latency_us"],
                f["upstream_latency_us"],
                f["gateway_latency_us"],
            )

    def record(**fields: object) -> None:
        pass

    wrapped = metrics.counting(record)

    def counting(batch: list[Fields]) -> None:
        for f in batch:
            wrapped(**f)

    def bare(batch: list[Fields]) -> None:
        for f in batch:
            record(**f)

    registry = CollectorRegistry()
    counter = Counter("b_requests", "", ["tenant", "api", "method", "status_class"], registry=registry)
    hists = [
        Histogram(f"b_{n}", "", ["tenant", "api"], buckets=LATENCY_BUCKETS, registry=registry)
        for n in ("total", "up", "added")
    ]

    def prometheus(batch: list[Fields]) -> None:
        for f in batch:
            t, a = f["tenant_id"], f["api_id"]
            counter.labels(t, a, f["method"], f"{f['status'] // 100}xx").inc()  # type: ignore[operator]
            hists[0].labels(t, a).observe(f["latency_us"] / 1e6)  # type: ignore[operator]
            hists[1].labels(t, a).observe(f["upstream_latency_us"] / 1e6)  # type: ignore[operator]
            hists[2].labels(t, a).observe(f["gateway_latency_us"] / 1e6)  # type: ignore[operator]

    results = {
        "observe (per request)": median_ns(observe, batches),
        "counting wrapper (observe + keyword hand-off)": median_ns(counting, batches),
        "bare record(**fields) call, for reference": median_ns(bare, batches),
        "prometheus_client labels().inc/observe per request": median_ns(prometheus, batches),
    }
    metrics.flush()
    # Flush cost: one second of traffic at 10,000 requests/s, amortised per request.
    second = data[:10_000]
    flush_samples = []
    for _ in range(20):
        observe(second)
        started = time.perf_counter_ns()
        metrics.flush()
        flush_samples.append((time.perf_counter_ns() - started) / len(second))
    results["flush, amortised per request (10k requests/s)"] = statistics.median(flush_samples)
    for name, ns in results.items():
        print(f"{name:55s} {ns / 1000:7.3f} us")


if __name__ == "__main__":
    main()
