"""Quotas through a real gateway and real Redis: calendar days and months in the plan's (or the
attachment's) time zone, DST-length days, 429 quota_exceeded with Retry-After until renewal,
and the usage the portal reads back from the same counters."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from policies.engine import PlanSpec
from policies.limits.rules import calendar_window
from policies.limits.usage import quota_usage
from tests.gateway.harness import Api
from tests.policies.rate_limit.support import SHARED_REDIS, FakeClock, redis_limiter

PARIS = ZoneInfo("Europe/Paris")


def _ts(year: int, month: int, day: int, hour: int = 0, minute: int = 0, tz: ZoneInfo | None = None) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=tz or UTC).timestamp()


@pytest.fixture
def clock():
    return FakeClock(_ts(2026, 11, 29, 22, 30))  # 23:30 in Paris


@pytest.fixture
def plan_gateway(gateway, echo_server, prefix, clock, stub_auth):
    """A gateway whose API authenticates (stub) and whose 'basic' plan has a daily quota of 3 in Paris."""
    plans = {"basic": PlanSpec(id="basic", tenant_id="t1", quota_per_day=3, quota_timezone="Europe/Paris")}
    limiter = redis_limiter(prefix=prefix, clock=clock)
    gateway.configure(
        Api(base_path="/svc", targets=[echo_server.origin], policies=[("test-auth", {})]),
        services={"limiter": limiter},
        plans=plans,
    )
    return gateway, plans["basic"]


SUBSCRIBER = {"x-consumer": "c1", "x-sub": "sub-1", "x-plan": "basic"}


def test_plan_quota_renews_at_midnight_in_the_plans_time_zone(plan_gateway, http, clock, prefix):
    gateway, plan = plan_gateway
    ok = [http.get(f"{gateway.url}/svc/x", headers=SUBSCRIBER) for _ in range(3)]
    assert [r.status_code for r in ok] == [200] * 3
    assert [r.headers["ratelimit-remaining"] for r in ok] == ["2", "1", "0"]
    assert ok[0].headers["ratelimit-reset"] == str(30 * 60)  # until midnight in Paris, not in UTC

    refused = http.get(f"{gateway.url}/svc/x", headers=SUBSCRIBER)
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert refused.json()["error"]["details"]["window"] == "day"
    assert refused.headers["retry-after"] == str(30 * 60)

    usage = quota_usage("sub-1", plan, now=clock.now, url=SHARED_REDIS, prefix=prefix)
    assert usage == {
        "day": {"used": 3, "limit": 3, "remaining": 0, "resets_at": datetime(2026, 11, 29, 23, 0, tzinfo=UTC)}
    }

    clock.now = _ts(2026, 11, 29, 23, 1)  # 00:01 in Paris — still the 29th in UTC
    assert http.get(f"{gateway.url}/svc/x", headers=SUBSCRIBER).status_code == 200
    assert quota_usage("sub-1", plan, now=clock.now, url=SHARED_REDIS, prefix=prefix)["day"]["used"] == 1


def test_quota_and_rate_limit_refusals_are_told_apart(gateway, echo_server, http, prefix, clock, stub_auth):
    plans = {"p": PlanSpec(id="p", tenant_id="t1", rate_limit_per_minute=2, quota_per_day=10)}
    gateway.configure(
        Api(base_path="/svc", targets=[echo_server.origin], policies=[("test-auth", {})]),
        services={"limiter": redis_limiter(prefix=prefix, clock=clock)},
        plans=plans,
    )
    who = {"x-consumer": "c", "x-sub": "s", "x-plan": "p"}
    codes = [http.get(f"{gateway.url}/svc/x", headers=who) for _ in range(3)]
    assert [r.status_code for r in codes] == [200, 200, 429]
    assert codes[2].json()["error"]["code"] == "rate_limited"
    assert codes[1].headers["ratelimit-limit"] == "2"  # the per-minute limit is the tighter one


def test_quota_attachment_by_consumer_with_monthly_renewal(gateway, echo_server, http, prefix, stub_auth):
    clock = FakeClock(_ts(2027, 1, 31, 23, 30, PARIS))
    gateway.configure(
        Api(
            base_path="/svc",
            targets=[echo_server.origin],
            policies=[("test-auth", {}), ("quota", {"month": 2, "timezone": "Europe/Paris"})],
        ),
        services={"limiter": redis_limiter(prefix=prefix, clock=clock)},
    )
    alice, bob = {"x-consumer": "alice"}, {"x-consumer": "bob"}
    assert [http.get(f"{gateway.url}/svc/x", headers=alice).status_code for _ in range(3)] == [200, 200, 429]
    assert http.get(f"{gateway.url}/svc/x", headers=bob).status_code == 200
    refused = http.get(f"{gateway.url}/svc/x", headers=alice)
    assert refused.json()["error"]["code"] == "quota_exceeded"
    assert refused.headers["retry-after"] == str(30 * 60)
    clock.now = _ts(2027, 2, 1, 0, 0, PARIS)  # February in Paris
    assert http.get(f"{gateway.url}/svc/x", headers=alice).status_code == 200


@pytest.mark.parametrize(
    ("day", "hours"),
    [((2026, 3, 29), 23), ((2026, 10, 25), 25), ((2026, 11, 29), 24)],
)
def test_dst_days_are_as_long_as_the_local_calendar_says(day, hours):
    start, end, label = calendar_window("day", PARIS, int(_ts(*day, 12, 0, PARIS) * 1000))
    assert label == "{:04d}-{:02d}-{:02d}".format(*day)
    assert start == int(_ts(*day, 0, 0, PARIS) * 1000)
    assert (end - start) == hours * 3_600_000


def test_month_windows_follow_the_local_calendar():
    start, end, label = calendar_window("month", PARIS, int(_ts(2026, 12, 31, 23, 30) * 1000))  # 00:30 Jan 1 in Paris
    assert label == "2027-01"
    assert datetime.fromtimestamp(start / 1000, PARIS) == datetime(2027, 1, 1, tzinfo=PARIS)
    assert datetime.fromtimestamp(end / 1000, PARIS) == datetime(2027, 2, 1, tzinfo=PARIS)


def test_quota_usage_is_none_in_embedded_mode(settings):
    settings.REDIS_URL = ""
    settings.APIM_RATELIMIT_REDIS_URL = ""
    assert quota_usage("s", PlanSpec(id="p", tenant_id="t1", quota_per_day=5)) is None
