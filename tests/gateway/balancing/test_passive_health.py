"""gateway.health passive outlier detection and circuit breaker, driven through leases."""

import asyncio

import pytest

from gateway.health import ejection_cap, ejection_duration
from tests.gateway.balancing.helpers import fail_target, make, name_of, picks, target


def test_threshold_consecutive_failures_eject():
    balancer, registry, _ = make("round_robin", ["a", "b"], passive_failure_threshold=3)
    a = target(registry, "a")
    fail_target(registry, "a", 2)
    assert a.admitted
    fail_target(registry, "a", 1)
    assert not a.admitted
    assert set(picks(balancer, 4)) == {"b"}


def test_a_success_resets_the_consecutive_failure_count():
    _, registry, _ = make("round_robin", ["a"], passive_failure_threshold=3)
    a = target(registry, "a")
    fail_target(registry, "a", 2)
    a.record_success(probe=False)
    fail_target(registry, "a", 2)
    assert a.admitted and a.consecutive_failures == 2


@pytest.mark.parametrize(
    ("status", "fails"), [(502, True), (503, True), (504, True), (500, False), (404, False), (200, False)]
)
def test_report_status_counts_only_gateway_failures(status, fails):
    balancer, registry, _ = make("round_robin", ["a"], passive_failure_threshold=1)
    with balancer.pick() as lease:
        lease.report_status(status)
    assert target(registry, "a").admitted is not fails


def test_ejection_back_off_doubles_and_is_capped():
    assert [ejection_duration(30, n) for n in range(1, 8)] == [30, 60, 120, 240, 300, 300, 300]
    assert [ejection_duration(1, n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]
    assert ejection_cap(3600) == 3600
    assert ejection_duration(2, 10_000) == 20


def probe_once(balancer, ok: bool):
    lease = balancer.pick()
    assert lease is not None and lease.probe
    (lease.success if ok else lease.failure)()
    lease.release()
    return lease


def test_half_open_probe_failure_re_ejects_for_twice_as_long():
    balancer, registry, clock = make("round_robin", ["a", "b"], passive_failure_threshold=2, ejection_base=10)
    a = target(registry, "a")
    fail_target(registry, "a", 2)
    assert a.ejected_until == clock.now + 10
    clock.advance(9.99)
    assert set(picks(balancer, 3)) == {"b"}
    clock.advance(0.01)
    assert probe_once(balancer, ok=False).url == a.url
    assert a.ejections == 2 and a.ejected_until == clock.now + 20
    clock.advance(19.9)
    assert set(picks(balancer, 3)) == {"b"}
    clock.advance(0.1)
    probe_once(balancer, ok=False)
    assert a.ejected_until == clock.now + 40
    for _ in range(5):
        clock.advance(a.ejected_until - clock.now)
        probe_once(balancer, ok=False)
    assert a.ejected_until - clock.now == 100  # capped at 10 x base


def test_probe_success_closes_the_circuit():
    balancer, registry, clock = make("round_robin", ["a", "b"], passive_failure_threshold=1, ejection_base=5)
    fail_target(registry, "a")
    clock.advance(5)
    probe_once(balancer, ok=True)
    a = target(registry, "a")
    assert a.admitted and a.consecutive_failures == 0
    assert sorted(picks(balancer, 4)) == ["a", "a", "b", "b"]


def test_ejection_count_resets_only_after_staying_healthy():
    balancer, registry, clock = make("round_robin", ["a", "b"], passive_failure_threshold=1, ejection_base=5)
    a = target(registry, "a")
    fail_target(registry, "a")
    clock.advance(5)
    probe_once(balancer, ok=False)  # second ejection: 10 s
    clock.advance(10)
    probe_once(balancer, ok=True)
    clock.advance(1)
    fail_target(registry, "a")  # soon after: third ejection in a row
    assert a.ejections == 3 and a.ejected_until == clock.now + 20
    clock.advance(20)
    probe_once(balancer, ok=True)
    clock.advance(ejection_cap(5))  # stayed healthy long enough
    assert registry.describe()["u1"][0]["ejections"] == 0
    fail_target(registry, "a")
    assert a.ejections == 1 and a.ejected_until == clock.now + 5


def test_only_one_probe_while_half_open():
    balancer, registry, clock = make("round_robin", ["a", "b"], passive_failure_threshold=1, ejection_base=5)
    fail_target(registry, "a")
    clock.advance(6)
    held = [balancer.pick() for _ in range(20)]
    probes = [lease for lease in held if lease.probe]
    assert len(probes) == 1 and probes[0].url == target(registry, "a").url
    assert all(name_of(lease.url) == "b" for lease in held if not lease.probe)
    assert registry.describe()["u1"][0]["state"] == "half_open"
    for lease in held:
        lease.release()


def test_only_one_probe_under_concurrent_requests():
    balancer, registry, clock = make("least_connections", ["a", "b", "c"], passive_failure_threshold=1, ejection_base=5)
    fail_target(registry, "a")
    clock.advance(5)
    seen = []

    async def request():
        with balancer.pick() as lease:
            seen.append((lease.url, lease.probe))
            await asyncio.sleep(0.01)
            lease.success()

    async def main():
        await asyncio.gather(*(request() for _ in range(50)))

    asyncio.run(main())
    assert [url for url, probe in seen if probe] == ["http://a.test:80"]
    assert sum(1 for url, _ in seen if url == "http://a.test:80") == 1
    assert target(registry, "a").admitted


def test_abandoned_probe_lets_the_next_request_probe():
    balancer, registry, clock = make("round_robin", ["a", "b"], passive_failure_threshold=1, ejection_base=5)
    fail_target(registry, "a")
    clock.advance(5)
    first = balancer.pick()
    assert first.probe
    first.release()  # e.g. the client went away before the upstream answered
    second = balancer.pick()
    assert second.probe and second.url == first.url
    first.failure()  # a late outcome of the abandoned probe no longer decides the circuit
    second.success()
    second.release()
    assert target(registry, "a").admitted


def test_failures_of_requests_started_before_the_ejection_do_not_extend_it():
    balancer, registry, clock = make("round_robin", ["a"], passive_failure_threshold=2, ejection_base=5)
    slow = [balancer.pick() for _ in range(3)]
    for lease in slow[:2]:
        lease.failure()
    a = target(registry, "a")
    until = a.ejected_until
    clock.advance(1)
    slow[2].failure()
    assert a.ejected_until == until and a.ejections == 1


def test_actively_unhealthy_target_gets_no_probe():
    balancer, registry, clock = make(
        "round_robin",
        ["a", "b"],
        passive_failure_threshold=1,
        ejection_base=5,
        healthcheck_enabled=True,
        unhealthy_threshold=1,
    )
    a = target(registry, "a")
    fail_target(registry, "a")
    a.record_active(False)
    clock.advance(60)
    assert set(picks(balancer, 5)) == {"b"}
    a.record_active(True)
    a.record_active(True)  # healthy_threshold 2
    lease = balancer.pick()
    assert lease.probe and lease.url == a.url
