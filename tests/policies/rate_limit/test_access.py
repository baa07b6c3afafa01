"""rate-limit and plan limits through a real gateway, a real upstream and real Redis (db 15,
a unique key prefix per test); store failures on a private redis-server that the test kills."""

from __future__ import annotations

import signal
import time
import uuid

import httpx
import pytest
from prometheus_client import REGISTRY

from policies.engine import AttachmentSpec, PlanSpec
from tests.gateway.harness import Api, GatewayHarness
from tests.policies.rate_limit.support import FakeClock, private_redis, redis_limiter

T0 = 1_800_000_000 // 60 * 60.0  # a minute boundary


def _limited(echo_server, limiter, **config):
    config.setdefault("limit_by", "ip")
    return Api(base_path="/svc", targets=[echo_server.origin], policies=[("rate-limit", config)])


@pytest.fixture
def limiter(prefix):
    return redis_limiter(prefix=prefix)


def _failures(mode: str) -> float:
    return REGISTRY.get_sample_value("apim_gateway_ratelimit_store_failures_total", {"fail_mode": mode}) or 0.0


def test_headers_on_the_proxied_response(gateway, echo_server, http, limiter):
    gateway.configure(_limited(echo_server, limiter, limits={"minute": 5}), services={"limiter": limiter})
    response = http.get(f"{gateway.url}/svc/x")
    assert response.status_code == 200
    assert response.json()["target"] == "/x"
    assert response.headers["ratelimit-limit"] == "5"
    assert response.headers["ratelimit-remaining"] == "4"
    assert 1 <= int(response.headers["ratelimit-reset"]) <= 60
    for name in ("limit", "remaining", "reset"):
        assert response.headers[f"x-ratelimit-{name}"] == response.headers[f"ratelimit-{name}"]


def test_over_the_limit_429_with_retry_after_and_the_upstream_is_spared(gateway, echo_server, http, limiter):
    gateway.configure(_limited(echo_server, limiter, limits={"minute": 3}), services={"limiter": limiter})
    tag = uuid.uuid4().hex
    statuses = [http.get(f"{gateway.url}/svc/{tag}/{i}").status_code for i in range(5)]
    assert statuses == [200, 200, 200, 429, 429]
    response = http.get(f"{gateway.url}/svc/again")
    assert response.status_code == 429
    body = response.json()
    assert body["error"]["code"] == "rate_limited"
    assert body["error"]["details"]["window"] == "minute"
    assert 1 <= int(response.headers["retry-after"]) <= 120
    assert response.headers["ratelimit-remaining"] == "0"
    assert response.headers["x-ratelimit-limit"] == "3"
    assert sorted(r.target for r in echo_server.requests if tag.encode() in r.target) == [
        f"/{tag}/{i}".encode() for i in range(3)
    ]


def test_the_most_restrictive_limit_is_the_one_reported(gateway, echo_server, http, limiter):
    gateway.configure(
        _limited(echo_server, limiter, limits={"second": 1000, "minute": 3, "day": 50}), services={"limiter": limiter}
    )
    response = http.get(f"{gateway.url}/svc/x")
    assert (response.headers["ratelimit-limit"], response.headers["ratelimit-remaining"]) == ("3", "2")


def test_headers_can_be_switched_off(gateway, echo_server, http, limiter):
    gateway.configure(
        _limited(echo_server, limiter, limits={"minute": 1}, headers=False), services={"limiter": limiter}
    )
    assert "ratelimit-limit" not in http.get(f"{gateway.url}/svc/x").headers
    refused = http.get(f"{gateway.url}/svc/x")
    assert refused.status_code == 429
    assert "ratelimit-limit" not in refused.headers
    assert int(refused.headers["retry-after"]) >= 1


def test_forged_forwarding_headers_do_not_give_a_new_counter(gateway, echo_server, http, limiter):
    gateway.configure(_limited(echo_server, limiter, limits={"minute": 2}), services={"limiter": limiter})
    statuses = [
        http.get(f"{gateway.url}/svc/x", headers={"X-Forwarded-For": f"203.0.113.{i}"}).status_code for i in range(4)
    ]
    assert statuses == [200, 200, 429, 429]


def test_window_edge_has_no_double_burst_through_the_gateway(gateway, echo_server, http, prefix):
    clock = FakeClock(T0 + 59.999)
    limiter = redis_limiter(prefix=prefix, clock=clock)
    gateway.configure(_limited(echo_server, limiter, limits={"minute": 4}), services={"limiter": limiter})
    assert [http.get(f"{gateway.url}/svc/x").status_code for _ in range(4)] == [200] * 4
    clock.now = T0 + 60.001  # the next window has begun
    refused = http.get(f"{gateway.url}/svc/x")
    assert refused.status_code == 429
    # 4 * weight must drop to 3: a quarter of the window, 15 s, minus the 1 ms already gone.
    assert int(refused.headers["retry-after"]) == 15


def test_consumer_counters_are_apart_and_anonymous_callers_fall_back_to_ip(
    gateway, echo_server, http, limiter, stub_auth
):
    api = Api(
        base_path="/svc",
        targets=[echo_server.origin],
        policies=[("test-auth", {}), ("rate-limit", {"limits": {"minute": 2}})],
    )
    gateway.configure(api, services={"limiter": limiter})

    def status(consumer: str | None) -> int:
        headers = {"x-consumer": consumer} if consumer else {}
        return http.get(f"{gateway.url}/svc/x", headers=headers).status_code

    assert [status("alice") for _ in range(3)] == [200, 200, 429]
    assert [status("bob") for _ in range(3)] == [200, 200, 429]
    # No identity: limited by the client address, never unlimited.
    assert [status(None) for _ in range(3)] == [200, 200, 429]


def test_tenant_wide_limit_by_consumer_is_shared_across_apis_and_by_api_is_not(
    gateway, echo_server, http, limiter, stub_auth
):
    apis = [
        Api(base_path="/one", targets=[echo_server.origin], policies=[("test-auth", {})]),
        Api(base_path="/two", targets=[echo_server.origin], policies=[("test-auth", {})]),
    ]
    shared = AttachmentSpec(id="tw", policy="rate-limit", tenant_id="t1", config={"limits": {"minute": 3}})
    gateway.configure(*apis, attachments=[shared], services={"limiter": limiter})
    who = {"x-consumer": "carol"}
    statuses = [http.get(f"{gateway.url}/{p}/x", headers=who).status_code for p in ("one", "two", "one", "two")]
    assert statuses == [200, 200, 200, 429]

    per_api = AttachmentSpec(
        id="tw2", policy="rate-limit", tenant_id="t1", config={"limits": {"minute": 1}, "limit_by": "api"}
    )
    gateway.configure(*apis, attachments=[per_api], services={"limiter": limiter})
    assert http.get(f"{gateway.url}/one/x", headers={"x-consumer": "d"}).status_code == 200
    assert http.get(f"{gateway.url}/two/x", headers={"x-consumer": "e"}).status_code == 200
    assert http.get(f"{gateway.url}/one/x", headers={"x-consumer": "f"}).status_code == 429


def test_plan_limits_apply_per_subscription_without_any_rate_limit_attachment(
    gateway, echo_server, http, limiter, stub_auth
):
    plan = PlanSpec(id="gold", tenant_id="t1", rate_limit_per_minute=2, quota_per_day=100)
    api = Api(base_path="/svc", targets=[echo_server.origin], policies=[("test-auth", {})])
    gateway.configure(api, services={"limiter": limiter}, plans={"gold": plan})

    def get(sub: str) -> httpx.Response:
        return http.get(f"{gateway.url}/svc/x", headers={"x-consumer": "c1", "x-sub": sub, "x-plan": "gold"})

    first = get("s1")
    assert first.status_code == 200
    assert (first.headers["ratelimit-limit"], first.headers["ratelimit-remaining"]) == ("2", "1")
    assert get("s1").status_code == 200
    refused = get("s1")
    assert refused.status_code == 429
    assert refused.json()["error"]["code"] == "rate_limited"
    assert get("s2").status_code == 200  # another subscription, another counter
    # Without a subscription the plan does not apply (and nothing else limits here).
    assert http.get(f"{gateway.url}/svc/x", headers={"x-consumer": "c1"}).status_code == 200


def test_a_plan_of_another_tenant_is_ignored(gateway, echo_server, http, limiter, stub_auth):
    plan = PlanSpec(id="p", tenant_id="other", rate_limit_per_minute=1)
    api = Api(base_path="/svc", targets=[echo_server.origin], policies=[("test-auth", {})])
    gateway.configure(api, services={"limiter": limiter}, plans={"p": plan})
    headers = {"x-consumer": "c1", "x-sub": "s", "x-plan": "p"}
    assert [http.get(f"{gateway.url}/svc/x", headers=headers).status_code for _ in range(3)] == [200] * 3


def test_without_a_limiter_service_the_chain_is_refused_not_unlimited(gateway, echo_server, http):
    gateway.configure(_limited(echo_server, None, limits={"minute": 1}), services={})
    response = http.get(f"{gateway.url}/svc/x")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "policy_unavailable"


def _poll(fn, *, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


@pytest.mark.parametrize("fail_mode", ["open", "closed"])
def test_redis_stopped_during_traffic_applies_the_fail_mode_and_recovers(echo_server, fail_mode):
    with private_redis() as server:
        limiter = redis_limiter(url=server.url)
        gateway = GatewayHarness().start()
        try:
            gateway.configure(
                _limited(echo_server, limiter, limits={"minute": 1000}, fail_mode=fail_mode),
                services={"limiter": limiter},
            )
            with httpx.Client(timeout=10, trust_env=False) as http:
                before = http.get(f"{gateway.url}/svc/x")
                assert before.status_code == 200
                assert before.headers["ratelimit-remaining"] == "999"
                failures = _failures(fail_mode)
                server.stop()
                statuses = [http.get(f"{gateway.url}/svc/x").status_code for _ in range(20)]
                if fail_mode == "open":
                    assert statuses == [200] * 20
                    assert "ratelimit-limit" not in http.get(f"{gateway.url}/svc/x").headers
                else:
                    assert statuses == [503] * 20
                    refused = http.get(f"{gateway.url}/svc/x")
                    assert refused.json()["error"]["code"] == "rate_limit_unavailable"
                    assert refused.headers["retry-after"] == "1"
                assert _failures(fail_mode) - failures >= 20

                # The same Redis comes back (empty: no persistence): after the circuit's pause, limits apply again.
                server.start()
                assert _poll(lambda: "ratelimit-limit" in http.get(f"{gateway.url}/svc/x").headers)
        finally:
            gateway.stop()


def test_a_hung_redis_does_not_hang_requests(echo_server):
    """Redis accepts connections but never answers (SIGSTOP): the round trip's bound applies, the
    request gets the fail mode (open) instead of waiting; the client's 10 s timeout is the test's bound."""
    with private_redis() as server:
        limiter = redis_limiter(url=server.url)
        gateway = GatewayHarness().start()
        assert server.process is not None
        try:
            gateway.configure(_limited(echo_server, limiter, limits={"minute": 1000}), services={"limiter": limiter})
            with httpx.Client(timeout=10, trust_env=False) as http:
                assert "ratelimit-limit" in http.get(f"{gateway.url}/svc/x").headers
                server.process.send_signal(signal.SIGSTOP)
                try:
                    responses = [http.get(f"{gateway.url}/svc/x") for _ in range(5)]
                finally:
                    server.process.send_signal(signal.SIGCONT)
                assert [r.status_code for r in responses] == [200] * 5
                assert all("ratelimit-limit" not in r.headers for r in responses)
        finally:
            gateway.stop()


def test_plan_limits_follow_the_fail_mode_setting(echo_server, settings, stub_auth):
    settings.APIM_RATE_LIMIT_FAIL_MODE = "closed"
    plans = {"p": PlanSpec(id="p", tenant_id="t1", rate_limit_per_minute=100)}
    who = {"x-consumer": "c", "x-sub": "s", "x-plan": "p"}
    with private_redis() as server:
        limiter = redis_limiter(url=server.url)
        gateway = GatewayHarness().start()
        try:
            api = Api(base_path="/svc", targets=[echo_server.origin], policies=[("test-auth", {})])
            gateway.configure(api, services={"limiter": limiter}, plans=plans)
            with httpx.Client(timeout=10, trust_env=False) as http:
                assert http.get(f"{gateway.url}/svc/x", headers=who).status_code == 200
                server.stop()
                refused = http.get(f"{gateway.url}/svc/x", headers=who)
                assert refused.status_code == 503
                assert refused.json()["error"]["code"] == "rate_limit_unavailable"
                # A request the plan does not cover has no limit to fail on.
                assert http.get(f"{gateway.url}/svc/x", headers={"x-consumer": "c"}).status_code == 200
        finally:
            gateway.stop()
