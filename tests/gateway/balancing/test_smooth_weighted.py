"""gateway.balancer.SmoothWeightedBalancer: nginx's smooth weighted round-robin."""

import math
import random
from collections import Counter

import pytest

from gateway.balancer import SmoothWeightedBalancer, smooth_weighted_order, smooth_weighted_step
from gateway.health import HealthRegistry
from tests.gateway.balancing.helpers import FakeClock, fail_target, make, name_of, picks, spec


def test_weights_5_1_1_interleave_like_nginx():
    balancer, _, _ = make("weighted_round_robin", {"a": 5, "b": 1, "c": 1})
    assert picks(balancer, 14) == list("aabacaa") * 2


def test_weights_are_reduced_by_their_gcd():
    assert smooth_weighted_order([500, 100, 100]) == smooth_weighted_order([5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0]


@pytest.mark.parametrize(
    "weights", [{"a": 3, "b": 2}, {"a": 100, "b": 100, "c": 50}, {"a": 7, "b": 1, "c": 1, "d": 11}]
)
def test_each_cycle_is_exactly_proportional(weights):
    balancer, _, _ = make("weighted_round_robin", weights)
    total = sum(weights.values()) // math.gcd(*weights.values())
    got = Counter(picks(balancer, total * 3))
    scale = 3 * total / sum(weights.values())
    assert got == {name: round(w * scale) for name, w in weights.items()}


def test_no_burst_longer_than_needed():
    balancer, _, _ = make("weighted_round_robin", {"a": 2, "b": 1})
    assert picks(balancer, 6) == ["a", "b", "a", "a", "b", "a"]


def test_online_fallback_matches_the_schedule():
    weights = [random.Random(7).randint(1, 1000) for _ in range(12)]
    current = [0] * len(weights)
    expected = [smooth_weighted_step(current, weights, sum(weights)) for _ in range(500)]
    targets = {f"t{i}": w for i, w in enumerate(weights)}
    upstream = spec("weighted_round_robin", targets)
    tiny_budget = SmoothWeightedBalancer(upstream, HealthRegistry(clock=FakeClock()).upstream(upstream), budget=10)
    got = [name_of(tiny_budget.pick().url) for _ in range(500)]
    assert got == [f"t{i}" for i in expected]


def test_unavailable_target_is_skipped_and_proportions_hold_for_the_rest():
    balancer, registry, _ = make("weighted_round_robin", {"a": 5, "b": 3, "c": 2}, passive_failure_threshold=1)
    fail_target(registry, "a")
    assert Counter(picks(balancer, 50)) == {"b": 30, "c": 20}


def test_weight_zero_and_disabled_never_picked():
    balancer, _, _ = make("weighted_round_robin", {"a": 5, "b": 0, "c": 2}, disabled=("c",))
    assert set(picks(balancer, 20)) == {"a"}


def test_all_down_gives_none():
    balancer, registry, _ = make("weighted_round_robin", {"a": 5, "b": 1}, passive_failure_threshold=1)
    fail_target(registry, "a")
    fail_target(registry, "b")
    assert balancer.pick() is None
