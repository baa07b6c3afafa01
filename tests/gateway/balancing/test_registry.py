"""gateway.health.HealthRegistry: state survives snapshot rebuilds, removed targets are forgotten."""

from gateway.balancer import build_balancer, build_balancers
from gateway.health import HealthRegistry
from tests.gateway.balancing.helpers import FakeClock, fail_target, name_of, picks, spec, target, url


def test_rebuild_keeps_ejections_counters_and_in_flight():
    clock = FakeClock()
    registry = HealthRegistry(clock=clock)
    old = build_balancer(spec("round_robin", ["a", "b", "c"], passive_failure_threshold=2), registry)
    fail_target(registry, "a", 2)
    fail_target(registry, "b", 1)
    held = old.pick()
    a_before = target(registry, "a")
    new = build_balancer(spec("least_connections", ["a", "b", "c", "d"], passive_failure_threshold=2), registry)
    assert target(registry, "a") is a_before
    assert not a_before.admitted and a_before.ejections == 1
    assert target(registry, "b").consecutive_failures == 1
    assert target(registry, name_of(held.url)).in_flight == 1
    assert "a" not in picks(new, 20)
    held.release()  # a request that started on the old snapshot finishes
    assert target(registry, name_of(held.url)).in_flight == 0


def test_removed_targets_are_forgotten_and_come_back_fresh():
    registry = HealthRegistry(clock=FakeClock())
    build_balancer(spec("round_robin", ["a", "b"], passive_failure_threshold=1), registry)
    fail_target(registry, "a")
    build_balancer(spec("round_robin", ["b"]), registry)
    assert registry.get("u1", url("a")) is None
    again = build_balancer(spec("round_robin", ["a", "b"]), registry)
    assert target(registry, "a").admitted
    assert set(picks(again, 4)) == {"a", "b"}


def test_removed_upstreams_are_forgotten():
    registry = HealthRegistry(clock=FakeClock())
    registry.sync([spec(uid="u1"), spec(uid="u2")])
    registry.sync([spec(uid="u2")])
    assert set(registry.describe()) == {"u2"}


def test_disabling_active_checks_readmits_actively_unhealthy_targets():
    registry = HealthRegistry(clock=FakeClock())
    build_balancer(spec("round_robin", ["a"], healthcheck_enabled=True, unhealthy_threshold=1), registry)
    target(registry, "a").record_active(False)
    assert build_balancer(spec("round_robin", ["a"], healthcheck_enabled=True), registry).pick() is None
    balancer = build_balancer(spec("round_robin", ["a"], healthcheck_enabled=False), registry)
    assert balancer.pick() is not None


def test_disabled_target_keeps_state_but_gets_no_traffic_or_probe():
    clock = FakeClock()
    registry = HealthRegistry(clock=clock)
    build_balancer(spec("round_robin", ["a", "b"], passive_failure_threshold=1, ejection_base=1), registry)
    fail_target(registry, "a")
    balancer = build_balancer(spec("round_robin", ["a", "b"], disabled=("a",), ejection_base=1), registry)
    clock.advance(100)
    assert set(picks(balancer, 5)) == {"b"}
    assert target(registry, "a").ejections == 1


def test_old_least_connections_balancer_still_works_after_a_rebuild():
    registry = HealthRegistry(clock=FakeClock())
    old = build_balancer(spec("least_connections", ["a", "b"]), registry)
    new = build_balancer(spec("least_connections", ["a", "b"]), registry)
    held = [new.pick() for _ in range(3)]  # a=2, b=1
    lease = old.pick()  # a retry of a request that started on the old snapshot
    assert lease.url == url("b")
    for x in [*held, lease]:
        x.release()


def test_build_balancers_forgets_upstreams_that_are_gone():
    registry = HealthRegistry(clock=FakeClock())
    first = build_balancers([spec(uid="u1"), spec("least_connections", uid="u2")], registry)
    assert set(first) == {"u1", "u2"} and first["u2"].strategy == "least_connections"
    build_balancers([spec(uid="u2")], registry)
    assert set(registry.describe()) == {"u2"}
