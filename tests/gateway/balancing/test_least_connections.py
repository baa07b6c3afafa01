"""gateway.balancer.LeastConnectionsBalancer: fewest in-flight per weight."""

from collections import Counter

from tests.gateway.balancing.helpers import fail_target, make, name_of, picks, target


def test_idle_sequential_traffic_rotates():
    balancer, _, _ = make("least_connections", ["a", "b", "c"])
    assert picks(balancer, 6) == ["a", "b", "c", "a", "b", "c"]


def test_picks_the_target_with_fewest_in_flight_ties_to_least_recent():
    balancer, registry, _ = make("least_connections", ["a", "b", "c"])
    leases = [balancer.pick() for _ in range(6)]
    assert [name_of(x.url) for x in leases] == ["a", "b", "c", "a", "b", "c"]
    leases[2].release()
    leases[5].release()
    leases[4].release()  # a=2, b=1, c=0
    assert [target(registry, n).in_flight for n in "abc"] == [2, 1, 0]
    assert name_of(balancer.pick().url) == "c"  # a=2, b=1, c=1
    assert name_of(balancer.pick().url) == "b"  # tie b/c: b was picked longer ago
    assert name_of(balancer.pick().url) == "c"  # a=2, b=2, c=2 now


def test_load_follows_releases_exactly():
    balancer, registry, _ = make("least_connections", ["a", "b", "c"])
    a = target(registry, "a")
    b = target(registry, "b")
    c = target(registry, "c")
    # Hand-place load: a=3, b=1, c=2.
    leases = [balancer.pick() for _ in range(6)]
    assert Counter(name_of(x.url) for x in leases) == {"a": 2, "b": 2, "c": 2}
    a_leases = [x for x in leases if x.url == a.url]
    b_leases = [x for x in leases if x.url == b.url]
    b_leases[0].release()
    assert (a.in_flight, b.in_flight, c.in_flight) == (2, 1, 2)
    assert balancer.pick().url == b.url  # b: 2 now
    a_leases[0].release()
    a_leases[1].release()
    assert balancer.pick().url == a.url


def test_weights_scale_the_load():
    balancer, _, _ = make("least_connections", {"a": 300, "b": 100})
    held = [balancer.pick() for _ in range(400)]
    got = Counter(name_of(x.url) for x in held)
    assert got == {"a": 300, "b": 100}


def test_unavailable_targets_are_skipped_and_all_down_is_none():
    balancer, registry, _ = make("least_connections", ["a", "b"], passive_failure_threshold=1)
    fail_target(registry, "a")
    assert set(picks(balancer, 5)) == {"b"}
    fail_target(registry, "b")
    assert balancer.pick() is None


def test_heap_stays_bounded_under_churn():
    balancer, _, _ = make("least_connections", ["a", "b", "c", "d"])
    held = []
    for i in range(10_000):
        held.append(balancer.pick())
        if i % 3:
            held.pop(0).release()
    assert len(balancer._heap) <= 4 * 4 + 16 + 1
    for lease in held:
        lease.release()


def test_avoid_takes_the_least_loaded_other_target():
    balancer, _, _ = make("least_connections", ["a", "b", "c"])
    b_hold = [balancer.pick() for _ in range(3)]  # one each
    lease = balancer.pick(avoid={"http://a.test:80"})
    assert lease.url != "http://a.test:80"
    for x in [*b_hold, lease]:
        x.release()
