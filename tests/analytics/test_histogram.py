"""analytics.histogram: bucket bounds, merging, and percentiles against a direct computation."""

from __future__ import annotations

import math
import random

import pytest

from analytics import histogram
from analytics.histogram import BOUNDS_MS, NUM_BUCKETS, bucket_of, histogram_of, merge, percentile


def exact_percentile_ms(samples_us: list[int], q: float) -> float:
    """Nearest-rank percentile of the raw samples (rank ceil(q * n), at least 1), in ms."""
    ordered = sorted(samples_us)
    rank = max(math.ceil(q * len(ordered)), 1)
    return ordered[rank - 1] / 1000


def bucket_bounds_ms(index: int) -> tuple[float, float]:
    return (0.0 if index == 0 else BOUNDS_MS[index - 1]), BOUNDS_MS[index]


def test_bounds_are_ascending_from_half_a_millisecond_to_infinity():
    assert NUM_BUCKETS == len(BOUNDS_MS) >= 20
    assert BOUNDS_MS[0] == 0.5 and BOUNDS_MS[-2] == 60000 and math.isinf(BOUNDS_MS[-1])
    assert list(BOUNDS_MS) == sorted(set(BOUNDS_MS))


@pytest.mark.parametrize(
    ("latency_us", "index"),
    [(-5, 0), (0, 0), (500, 0), (501, 1), (1000, 1), (1001, 2), (7500, 5), (7501, 6), (60_000_000, NUM_BUCKETS - 2),
     (60_000_001, NUM_BUCKETS - 1), (10**12, NUM_BUCKETS - 1)],
)  # fmt: skip
def test_bucket_upper_bounds_are_inclusive(latency_us, index):
    assert bucket_of(latency_us) == index


def test_merge_sums_element_wise_and_empty_gives_zeros():
    assert merge([]) == [0] * NUM_BUCKETS
    a = histogram_of([100, 900, 2500])
    b = histogram_of([100, 70_000_000])
    merged = merge([a, b])
    assert merged == histogram_of([100, 900, 2500, 100, 70_000_000])
    assert sum(merged) == 5


def test_merge_refuses_a_histogram_of_other_bounds():
    with pytest.raises(ValueError, match="buckets"):
        merge([[1, 2, 3]])


def test_percentile_of_empty_is_none_and_q_is_checked():
    assert percentile(histogram.empty(), 0.5) is None
    with pytest.raises(ValueError, match="within"):
        percentile(histogram.empty(), 1.5)


def test_percentile_interpolates_inside_the_bucket():
    hist = histogram.empty()
    hist[bucket_of(1500)] = 4  # (1 ms, 2 ms]
    assert percentile(hist, 0.5) == pytest.approx(1.5)
    assert percentile(hist, 1.0) == pytest.approx(2.0)
    assert percentile(hist, 0.0) == pytest.approx(1.25)  # rank 1 of 4


def test_the_open_last_bucket_answers_its_lower_bound():
    hist = histogram_of([90_000_000, 120_000_000])
    assert percentile(hist, 0.99) == 60000


@pytest.mark.parametrize("seed", range(5))
def test_merged_percentiles_equal_the_histogram_of_all_samples_and_bracket_the_exact_value(seed):
    rng = random.Random(seed)
    # Several buckets (minutes) with different latency shapes: fast, slow, bimodal, outliers.
    groups = []
    for _ in range(rng.randint(3, 12)):
        mu = rng.choice([0.3, 2.0, 15.0, 200.0, 3000.0])
        groups.append([max(0, int(rng.lognormvariate(math.log(mu * 1000), 0.8))) for _ in range(rng.randint(1, 400))])
    samples = [value for group in groups for value in group]
    merged = merge(histogram_of(group) for group in groups)
    direct = histogram_of(samples)
    assert merged == direct
    for q in (0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 0.999, 1.0):
        estimate = percentile(merged, q)
        assert estimate == percentile(direct, q)
        exact = exact_percentile_ms(samples, q)
        lower, upper = bucket_bounds_ms(bucket_of(round(exact * 1000)))
        if math.isinf(upper):
            assert estimate == lower
        else:
            assert lower <= estimate <= upper, (q, exact, estimate)
