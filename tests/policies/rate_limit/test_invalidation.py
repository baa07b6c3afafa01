"""Config changes: a new snapshot recompiles the limits but keeps the counters (keyed by the
attachment id), so raising or lowering a limit applies to what was already used; per-consumer
attachments override the general one; embedded mode picks the in-process store."""

from __future__ import annotations

from policies.engine import AttachmentSpec
from policies.limits.store import MemoryLimiter, RedisLimiter, create_limiter
from policies.runtime import SERVICE_FACTORIES
from tests.gateway.harness import Api
from tests.policies.rate_limit.support import redis_limiter


def _api(echo_server, limit: int) -> Api:
    spec = AttachmentSpec(
        id="rl-1",
        policy="rate-limit",
        tenant_id="t1",
        api_id="a0",
        config={"limits": {"minute": limit}, "limit_by": "ip"},
    )
    return Api(base_path="/svc", targets=[echo_server.origin], policies=[spec])


def test_a_new_limit_applies_to_the_count_so_far(gateway, echo_server, http, prefix):
    limiter = redis_limiter(prefix=prefix)
    gateway.configure(_api(echo_server, 2), services={"limiter": limiter})
    assert [http.get(f"{gateway.url}/svc/x").status_code for _ in range(3)] == [200, 200, 429]
    gateway.configure(_api(echo_server, 4), services={"limiter": limiter})
    assert [http.get(f"{gateway.url}/svc/x").status_code for _ in range(3)] == [200, 200, 429]
    gateway.configure(_api(echo_server, 1), services={"limiter": limiter})
    assert http.get(f"{gateway.url}/svc/x").status_code == 429


def test_a_consumer_attachment_overrides_the_api_one(gateway, echo_server, http, prefix, stub_auth):
    general = AttachmentSpec(
        id="g", policy="rate-limit", tenant_id="t1", api_id="a0", config={"limits": {"minute": 100}}
    )
    vip = AttachmentSpec(
        id="v", policy="rate-limit", tenant_id="t1", consumer_id="tight", config={"limits": {"minute": 1}}
    )
    gateway.configure(
        Api(base_path="/svc", targets=[echo_server.origin], policies=[("test-auth", {}), general]),
        attachments=[vip],
        services={"limiter": redis_limiter(prefix=prefix)},
    )
    tight = [http.get(f"{gateway.url}/svc/x", headers={"x-consumer": "tight"}) for _ in range(2)]
    assert [r.status_code for r in tight] == [200, 429]
    assert tight[0].headers["ratelimit-limit"] == "1"
    other = http.get(f"{gateway.url}/svc/x", headers={"x-consumer": "other"})
    assert (other.status_code, other.headers["ratelimit-limit"]) == (200, "100")


def test_embedded_mode_uses_the_in_process_store_with_the_same_answers(gateway, echo_server, http, settings):
    settings.REDIS_URL = ""
    settings.APIM_RATELIMIT_REDIS_URL = ""
    limiter = create_limiter()
    assert isinstance(limiter, MemoryLimiter)
    gateway.configure(_api(echo_server, 2), services={"limiter": limiter})
    responses = [http.get(f"{gateway.url}/svc/x") for _ in range(3)]
    assert [r.status_code for r in responses] == [200, 200, 429]
    assert responses[0].headers["ratelimit-remaining"] == "1"
    assert int(responses[2].headers["retry-after"]) >= 1


def test_redis_mode_and_the_runtime_registration(settings):
    settings.APIM_RATELIMIT_REDIS_URL = "redis://127.0.0.1:6379/15"
    settings.APIM_RATELIMIT_KEY_PREFIX = "apim-test:x:"
    limiter = create_limiter()
    assert isinstance(limiter, RedisLimiter)
    assert limiter.prefix == "apim-test:x:"
    assert SERVICE_FACTORIES["limiter"] == "policies.limits.store.create_limiter"
