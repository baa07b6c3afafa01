"""gateway.balancer.Lease: in-flight accounting, exactly-once release, cancellation."""

import asyncio

import pytest

from tests.gateway.balancing.helpers import make, target


def test_release_is_idempotent():
    balancer, registry, _ = make("least_connections", ["a"])
    lease = balancer.pick()
    assert target(registry, "a").in_flight == 1
    lease.release()
    lease.release()
    with lease:
        pass
    assert target(registry, "a").in_flight == 0 and lease.released


def test_context_manager_releases_on_error():
    balancer, registry, _ = make("least_connections", ["a"])
    with pytest.raises(RuntimeError), balancer.pick():
        raise RuntimeError("boom")
    assert target(registry, "a").in_flight == 0


def test_only_the_first_outcome_counts():
    balancer, registry, _ = make("round_robin", ["a"], passive_failure_threshold=5)
    lease = balancer.pick()
    lease.failure()
    lease.failure()
    lease.success()
    lease.release()
    assert target(registry, "a").consecutive_failures == 1


def test_outcome_after_release_still_counts_once():
    balancer, registry, _ = make("round_robin", ["a"], passive_failure_threshold=5)
    lease = balancer.pick()
    lease.release()
    lease.failure()
    lease.failure()
    assert target(registry, "a").consecutive_failures == 1


def test_cancelled_requests_release_their_slot():
    balancer, registry, _ = make("least_connections", ["a", "b"])

    async def request(ready):
        with balancer.pick():
            ready.set()
            await asyncio.sleep(3600)

    async def main():
        events = [asyncio.Event() for _ in range(10)]
        tasks = [asyncio.create_task(request(e)) for e in events]
        await asyncio.gather(*(e.wait() for e in events))
        assert target(registry, "a").in_flight + target(registry, "b").in_flight == 10
        for task in tasks:
            task.cancel()
        results = await asyncio.gather(*tasks, return_exceptions=True)
        assert all(isinstance(r, asyncio.CancelledError) for r in results)

    asyncio.run(main())
    assert target(registry, "a").in_flight == 0 and target(registry, "b").in_flight == 0
    lease = balancer.pick()
    assert lease.url == "http://a.test:80"  # heap reflects the releases


def test_in_flight_balanced_after_many_mixed_requests():
    balancer, registry, _ = make("least_connections", ["a", "b", "c"])

    async def request(i):
        with balancer.pick() as lease:
            await asyncio.sleep(0.001 * (i % 5))
            if i % 7 == 0:
                raise ValueError(i)
            lease.success()

    async def main():
        await asyncio.gather(*(request(i) for i in range(300)), return_exceptions=True)

    asyncio.run(main())
    assert [target(registry, n).in_flight for n in "abc"] == [0, 0, 0]
