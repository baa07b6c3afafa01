"""gateway.balancer.ConsistentHashBalancer: sticky clients, ~1/N remapping."""

import ipaddress
from collections import Counter

from gateway.balancer import build_balancer
from gateway.health import HealthRegistry
from tests.gateway.balancing.helpers import FakeClock, fail_target, make, spec

IPS = [str(ipaddress.IPv4Address(0x0A000000 + i * 7919)) for i in range(10_000)]


def mapping(balancer) -> dict[str, str]:
    out = {}
    for ip in IPS:
        lease = balancer.pick(ip)
        out[ip] = lease.url
        lease.release()
    return out


def names(n: int, start: int = 0) -> list[str]:
    return [f"t{i}" for i in range(start, start + n)]


def test_same_client_same_target():
    balancer, _, _ = make("consistent_hash", names(5))
    first = mapping(balancer)
    assert mapping(balancer) == first


def test_spread_is_roughly_even():
    n = 10
    balancer, _, _ = make("consistent_hash", names(n))
    shares = Counter(mapping(balancer).values())
    assert len(shares) == n
    assert all(0.5 / n < count / len(IPS) < 1.6 / n for count in shares.values()), shares


def test_weight_gives_proportional_share():
    balancer, _, _ = make("consistent_hash", {"heavy": 300, "l1": 100, "l2": 100})
    shares = Counter(mapping(balancer).values())
    assert 0.45 < shares["http://heavy.test:80"] / len(IPS) < 0.75


def test_removing_one_of_n_remaps_only_its_clients():
    n = 10
    registry = HealthRegistry(clock=FakeClock())
    before = mapping(build_balancer(spec("consistent_hash", names(n)), registry))
    after = mapping(build_balancer(spec("consistent_hash", names(n - 1)), registry))
    moved = [ip for ip in IPS if before[ip] != after[ip]]
    assert len(moved) / len(IPS) < 1.6 / n
    assert all(before[ip] == "http://t9.test:80" for ip in moved)


def test_adding_one_remaps_about_one_in_n_plus_one():
    n = 10
    registry = HealthRegistry(clock=FakeClock())
    before = mapping(build_balancer(spec("consistent_hash", names(n)), registry))
    after = mapping(build_balancer(spec("consistent_hash", names(n + 1)), registry))
    moved = [ip for ip in IPS if before[ip] != after[ip]]
    assert 0.3 / (n + 1) < len(moved) / len(IPS) < 1.6 / (n + 1)
    assert all(after[ip] == "http://t10.test:80" for ip in moved)


def test_ejected_target_moves_only_its_clients_and_they_come_back():
    n = 8
    balancer, registry, clock = make("consistent_hash", names(n), passive_failure_threshold=1, ejection_base=10)
    before = mapping(balancer)
    fail_target(registry, "t3")
    during = mapping(balancer)
    moved = {ip for ip in IPS if before[ip] != during[ip]}
    assert moved == {ip for ip in IPS if before[ip] == "http://t3.test:80"}
    clock.advance(10)
    probe = balancer.pick(IPS[0])
    assert probe.probe and probe.url == "http://t3.test:80"
    probe.success()
    probe.release()
    assert mapping(balancer) == before


def test_without_client_ip_it_round_robins():
    balancer, _, _ = make("consistent_hash", ["a", "b"])
    urls = []
    for _ in range(4):
        lease = balancer.pick(None)
        urls.append(lease.url)
        lease.release()
    assert urls == ["http://a.test:80", "http://b.test:80"] * 2


def test_avoid_walks_to_the_next_target_on_the_ring():
    balancer, _, _ = make("consistent_hash", names(4))
    home = balancer.pick("192.0.2.1")
    other = balancer.pick("192.0.2.1", avoid={home.url})
    again = balancer.pick("192.0.2.1", avoid={home.url})
    assert other.url != home.url and other.url == again.url


def test_all_down_gives_none():
    balancer, registry, _ = make("consistent_hash", ["a"], passive_failure_threshold=1)
    fail_target(registry, "a")
    assert balancer.pick("192.0.2.1") is None
