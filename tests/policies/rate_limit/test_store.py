"""Both limit stores run the same scenarios with an injected clock: the in-process store and
the Redis script must decide identically (exact limit, rejected requests not counted, sliding
estimate, no double burst at a window edge, calendar windows)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from policies.context import RequestContext
from policies.limits.rules import CalendarRule, Check, SlidingRule, subject_of, zone
from policies.limits.store import MemoryLimiter
from tests.policies.rate_limit.support import FakeClock, delete_prefix, redis_limiter

MINUTE = 60.0
T0 = 1_800_000_000 // 60 * 60.0  # a minute boundary (2027-01-15T08:00:00Z)


def _ctx(ip: str = "192.0.2.1") -> RequestContext:
    return RequestContext(
        scope={"headers": []},
        receive=None,  # type: ignore[arg-type]
        method="GET",
        path="/x",
        query=b"",
        headers=[],
        host=b"",
        client_ip=ip,
        request_id=b"r",
        tenant_id="t1",
        api_id="a1",
        route_pattern="/",
        content_length=None,
        has_body=False,
    )


def _rule(limit: int, window: str = "minute") -> SlidingRule:
    return SlidingRule(
        namespace="r:t1:att:",
        subject=subject_of("ip"),
        limit=limit,
        window=window,
        quota=False,
        headers=True,
        fail_closed=False,
    )


@pytest.fixture(params=["memory", "redis", "redis-py"])
def store(request):
    """(limiter, clock, run): ``run(n, rules)`` sends n requests now and returns how many were admitted.

    ``redis`` is the limiter's own lean client; ``redis-py`` the fallback driver (``rediss://``)."""
    clock = FakeClock(T0)
    if request.param == "memory":
        limiter = MemoryLimiter(clock=clock)
    else:
        limiter = redis_limiter(clock=clock, driver="lean" if request.param == "redis" else "redis-py")
    loop = asyncio.new_event_loop()

    def run(n: int, rules: list[SlidingRule | CalendarRule], ctx: RequestContext | None = None) -> int:
        async def go() -> int:
            admitted = 0
            for _ in range(n):
                now_ms = int(clock() * 1000)
                checks: list[Check] = [rule.check(ctx or _ctx(), now_ms) for rule in rules]
                result = await limiter.check(checks)
                assert result is not None
                admitted += result[0]
            return admitted

        return loop.run_until_complete(go())

    yield limiter, clock, run
    if request.param != "memory":
        loop.run_until_complete(limiter.stop())
        delete_prefix(limiter.prefix)
    loop.close()


def test_exact_limit(store):
    _, clock, run = store
    clock.now = T0 + 5
    assert run(12, [_rule(10)]) == 10


def test_rejected_requests_are_not_counted(store):
    _, clock, run = store
    clock.now = T0 + 1
    assert run(5, [_rule(5)]) == 5
    assert run(50, [_rule(5)]) == 0  # 50 rejections...
    # ...do not count: half-way through the next window the previous one weighs 0.5 → 5 * 0.5 = 2.5 → 3,
    # so 2 more fit. Had the rejections counted (55), nothing would.
    clock.now = T0 + MINUTE + 30
    assert run(10, [_rule(5)]) == 2
    # Two windows later the limit is whole again.
    clock.now = T0 + 3 * MINUTE + 0.001
    assert run(10, [_rule(5)]) == 5


def test_no_double_burst_across_a_window_edge(store):
    _, clock, run = store
    clock.now = T0 + MINUTE - 0.001  # the last millisecond of a window
    assert run(10, [_rule(10)]) == 10
    clock.now = T0 + MINUTE + 0.001  # two milliseconds later, in the next window
    assert run(10, [_rule(10)]) == 0  # a fixed window would admit 10 more here
    clock.now = T0 + MINUTE + 6.001  # 10 % of the previous window has slid out: one more fits
    assert run(10, [_rule(10)]) == 1


def test_one_exhausted_limit_blocks_and_counts_nothing_on_the_others(store):
    _, clock, run = store
    clock.now = T0 + 1
    per_second, per_minute = _rule(2, "second"), _rule(100)
    assert run(5, [per_second, per_minute]) == 2
    clock.now = T0 + 3
    # If the 3 refused requests had counted on the minute limit, it would hold 5 and admit 95 more here.
    assert run(200, [_rule(1000, "second"), per_minute]) == 98


def test_subjects_are_counted_apart(store):
    _, clock, run = store
    clock.now = T0 + 1
    assert run(5, [_rule(3)], _ctx("192.0.2.1")) == 3
    assert run(5, [_rule(3)], _ctx("192.0.2.2")) == 3


def test_calendar_day_in_a_time_zone(store):
    _, clock, run = store
    paris = CalendarRule(
        zone=zone("Europe/Paris"),
        namespace="q:t1:att:",
        subject=subject_of("ip"),
        limit=3,
        window="day",
        quota=True,
        headers=True,
        fail_closed=False,
    )
    utc = CalendarRule(
        zone=zone("UTC"),
        namespace="q:t1:att2:",
        subject=subject_of("ip"),
        limit=3,
        window="day",
        quota=True,
        headers=True,
        fail_closed=False,
    )
    clock.now = 1_795_906_800.0 - 60  # 2026-11-29 22:59Z = 23:59 in Paris
    assert run(5, [paris]) == 3
    assert run(5, [utc]) == 3
    clock.now = 1_795_906_800.0 + 60  # 23:01Z = 00:01 in Paris: a new day there, not in UTC
    assert run(5, [paris]) == 3
    assert run(5, [utc]) == 0


def test_memory_store_sweeps_expired_counters():
    clock = FakeClock(T0)
    limiter = MemoryLimiter(clock=clock)
    for n in range(50):
        limiter.check_now([_rule(10).check(_ctx(f"10.0.0.{n}"), int(clock() * 1000))])
    assert len(limiter) == 50
    clock.now = T0 + 10 * MINUTE
    limiter.check_now([_rule(10).check(_ctx(), int(clock() * 1000))])
    assert len(limiter) == 1


def _concurrent(limiter_factory: Callable[[], object], n: int) -> int:
    async def go() -> int:
        limiter = limiter_factory()
        checks = [_rule(100).check(_ctx(), int(T0 * 1000) + 5000)]
        results = await asyncio.gather(*(limiter.check(checks) for _ in range(n)))  # type: ignore[attr-defined]
        await limiter.stop()  # type: ignore[attr-defined]
        assert all(r is not None for r in results)
        assert limiter.round_trips < n / 10  # type: ignore[attr-defined] # coalesced, not one trip each
        return sum(r[0] for r in results)

    return asyncio.run(go())


@pytest.mark.parametrize("driver", ["lean", "redis-py"])
def test_coalesced_pipeline_stays_exact_under_concurrency(prefix, driver):
    assert _concurrent(lambda: redis_limiter(prefix=prefix, clock=FakeClock(T0 + 5), driver=driver), 300) == 100
