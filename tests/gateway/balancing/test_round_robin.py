"""gateway.balancer.RoundRobinBalancer: rotation, skipping, all-down."""

from tests.gateway.balancing.helpers import fail_target, make, picks


def test_rotates_in_target_order():
    balancer, _, _ = make("round_robin", ["a", "b", "c"])
    assert picks(balancer, 7) == ["a", "b", "c", "a", "b", "c", "a"]


def test_weights_other_than_zero_do_not_matter():
    balancer, _, _ = make("round_robin", {"a": 5, "b": 1, "c": 1000})
    assert picks(balancer, 6) == ["a", "b", "c", "a", "b", "c"]


def test_weight_zero_and_disabled_targets_are_never_picked():
    balancer, _, _ = make("round_robin", {"a": 100, "b": 0, "c": 100, "d": 100}, disabled=("d",))
    assert set(picks(balancer, 50)) == {"a", "c"}


def test_ejected_target_is_skipped():
    balancer, registry, _ = make("round_robin", ["a", "b", "c"], passive_failure_threshold=2)
    fail_target(registry, "b", 2)
    assert picks(balancer, 6) == ["a", "c", "a", "c", "a", "c"]


def test_actively_unhealthy_target_is_skipped():
    balancer, registry, _ = make("round_robin", ["a", "b", "c"], healthcheck_enabled=True, unhealthy_threshold=1)
    registry.get("u1", "http://a.test:80").record_active(False)
    assert set(picks(balancer, 10)) == {"b", "c"}


def test_all_targets_down_gives_none():
    balancer, registry, _ = make("round_robin", ["a", "b"], passive_failure_threshold=1)
    fail_target(registry, "a")
    fail_target(registry, "b")
    assert balancer.pick() is None


def test_no_pickable_targets_gives_none():
    balancer, _, _ = make("round_robin", {"a": 0}, disabled=())
    assert balancer.pick() is None
    empty, _, _ = make("round_robin", [])
    assert empty.pick() is None


def test_avoid_picks_another_target_while_one_is_available():
    balancer, registry, _ = make("round_robin", ["a", "b", "c"], passive_failure_threshold=1)
    for _ in range(10):
        lease = balancer.pick(avoid={"http://a.test:80"})
        assert lease is not None and lease.url != "http://a.test:80"
        lease.release()
    fail_target(registry, "b")
    fail_target(registry, "c")
    # Only the avoided target is left: reusing it beats a 503.
    lease = balancer.pick(avoid={"http://a.test:80"})
    assert lease is not None and lease.url == "http://a.test:80"
