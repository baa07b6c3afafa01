"""The fixed-bucket latency histogram stored in every rollup row (``latency_hist``).

Percentiles cannot be summed, but histograms with the same bucket bounds can:
a histogram per minute merges into one per hour, per day or per dashboard range
by element-wise addition, and a percentile read from the merged histogram is
exactly the one read from the histogram of all the samples. The price is
resolution: a percentile is only known to lie inside its bucket, and is
interpolated linearly there. The bounds grow roughly geometrically so the error
stays a similar fraction of the value from 0.5 ms to 60 s.

The bounds are part of the stored data: changing them makes old rows
unreadable, so add a new field rather than edit ``BOUNDS_MS``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Sequence

BOUNDS_MS: tuple[float, ...] = (
    0.5, 1, 2, 3, 5, 7.5, 10, 15, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750,
    1000, 1500, 2000, 3000, 5000, 10000, 30000, 60000, math.inf,
)  # fmt: skip
NUM_BUCKETS: int = len(BOUNDS_MS)
# Inclusive upper bounds in whole microseconds (what records carry); the last one is +inf.
BOUNDS_US: tuple[float, ...] = tuple(b if math.isinf(b) else round(b * 1000) for b in BOUNDS_MS)


def bucket_of(latency_us: int) -> int:
    """Index of the bucket holding ``latency_us``: the first whose upper bound is >= it.

    Negative values (a clock step) count in the first bucket.
    """
    return bisect_left(BOUNDS_US, latency_us)


def empty() -> list[int]:
    return [0] * NUM_BUCKETS


def histogram_of(latencies_us: Iterable[int]) -> list[int]:
    hist = empty()
    for value in latencies_us:
        hist[bucket_of(value)] += 1
    return hist


def merge(hists: Iterable[Sequence[int]]) -> list[int]:
    """Element-wise sum; no histograms give all zeros.

    Raises ``ValueError`` on a histogram of the wrong length (data written with
    other bounds must not be silently mixed in).
    """
    total = empty()
    for hist in hists:
        if len(hist) != NUM_BUCKETS:
            raise ValueError(f"histogram has {len(hist)} buckets, expected {NUM_BUCKETS}")
        for index, count in enumerate(hist):
            total[index] += count
    return total


def percentile(hist: Sequence[int], q: float) -> float | None:
    """The ``q`` quantile (0 <= q <= 1) in milliseconds; None for an empty histogram.

    The bucket is the one holding the nearest-rank sample (rank ``ceil(q * n)``,
    at least 1), so the answer always lies in the same bucket as the exact
    percentile of the samples. Inside the bucket the value is interpolated
    linearly between its lower and upper bounds; the open-ended last bucket
    answers its lower bound (nothing better is known).
    """
    if not 0 <= q <= 1:
        raise ValueError(f"q must be within [0, 1], not {q}")
    if len(hist) != NUM_BUCKETS:
        raise ValueError(f"histogram has {len(hist)} buckets, expected {NUM_BUCKETS}")
    total = sum(hist)
    if total <= 0:
        return None
    rank = max(q * total, 1.0)
    cumulative = 0
    for index, count in enumerate(hist):
        if count <= 0:
            continue
        if cumulative + count >= rank:
            lower = 0.0 if index == 0 else BOUNDS_MS[index - 1]
            upper = BOUNDS_MS[index]
            if math.isinf(upper):
                return float(lower)
            return lower + (upper - lower) * (rank - cumulative) / count
        cumulative += count
    return float(BOUNDS_MS[-2])  # unreachable: cumulative reaches total >= rank
