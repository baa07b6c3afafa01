"""Plans, subscriptions and key-auth together, from database rows to a running gateway.

A plan's limits become rate limits and quotas for its subscribers with no
rate-limit attachment at all; the subscription the key resolves to carries the
plan. Runs on whatever store the settings select (in-process embedded, Redis
when ``REDIS_URL`` is set, as in CI's second pass).
"""

from __future__ import annotations

import httpx
import pytest

from apim.services.catalog import api_create, api_publish, upstream_create
from apim.services.tenants import tenant_create
from consumers.services import api_key_issue, application_create, consumer_create, plan_create, subscription_create
from gateway.headers import TrustedProxies
from gateway.runtime import GatewayRuntime
from policies.models import PolicyAttachment
from policies.services import policy_attachment_save
from tests.gateway.proxy.test_config_reload import RuntimeServer, wait_for

pytestmark = pytest.mark.django_db(transaction=True)


def test_plan_rate_limit_and_quota_apply_per_subscription(echo_server):
    tenant = tenant_create(slug="plans", name="Plans", is_default=True, actor=None)
    upstream = upstream_create(tenant=tenant, name="echo", targets=[echo_server.origin], actor=None)
    api = api_create(tenant=tenant, name="orders", title="Orders", base_path="/orders", upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    policy_attachment_save(attachment=PolicyAttachment(tenant=tenant, api=api, policy="key-auth"), actor=None)
    consumer = consumer_create(tenant=tenant, name="acme", actor=None)
    per_minute = plan_create(tenant=tenant, name="three-a-minute", rate_limit_per_minute=3, actor=None)
    per_day = plan_create(tenant=tenant, name="two-a-day", quota_per_day=2, quota_timezone="Europe/Paris", actor=None)
    fast_app = application_create(consumer=consumer, name="fast", actor=None)
    daily_app = application_create(consumer=consumer, name="daily", actor=None)
    subscription_create(application=fast_app, api=api, plan=per_minute, actor=None)
    subscription_create(application=daily_app, api=api, plan=per_day, actor=None)
    fast_key = api_key_issue(application=fast_app, actor=None).plaintext
    daily_key = api_key_issue(application=daily_app, actor=None).plaintext

    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.5)
    with RuntimeServer(runtime) as base, httpx.Client(timeout=5, trust_env=False) as client:
        url = f"{base}/orders/1"
        assert wait_for(lambda: client.get(url).status_code == 401, timeout=5)

        fast = [client.get(url, headers={"X-API-Key": fast_key}) for _ in range(5)]
        assert [r.status_code for r in fast] == [200, 200, 200, 429, 429]
        assert fast[0].headers["ratelimit-limit"] == "3"
        assert fast[2].headers["ratelimit-remaining"] == "0"
        assert fast[3].json()["error"]["code"] == "rate_limited"
        assert int(fast[3].headers["retry-after"]) >= 1

        daily = [client.get(url, headers={"X-API-Key": daily_key}) for _ in range(3)]
        assert [r.status_code for r in daily] == [200, 200, 429]
        assert daily[2].json()["error"]["code"] == "quota_exceeded"

        # One subscriber's exhaustion is not another's: the daily key was untouched by the fast one.
        assert client.get(url).status_code == 401
