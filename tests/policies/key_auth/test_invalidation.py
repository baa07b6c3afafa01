"""Key changes reach a running DB-backed gateway (``GatewayRuntime``) within a second; hits never ask the DB."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest

from apim.services.catalog import api_create, api_publish, upstream_create
from apim.services.tenants import tenant_create
from consumers.services import api_key_issue, api_key_revoke, api_key_rotate, consumer_suspend, subscription_create
from gateway.headers import TrustedProxies
from gateway.runtime import GatewayRuntime
from policies.models import PolicyAttachment
from policies.services import policy_attachment_save
from tests.factories import ApplicationFactory, ConsumerFactory, PlanFactory
from tests.gateway.proxy.test_config_reload import RuntimeServer

pytestmark = pytest.mark.django_db(transaction=True)


def status_within(client: httpx.Client, url: str, key: str, expected: int, seconds: float = 1.0) -> bool:
    """Whether ``url`` answers ``expected`` to ``key`` within ``seconds`` (polled)."""
    deadline = time.monotonic() + seconds
    while True:
        if client.get(url, headers={"X-API-Key": key}).status_code == expected:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)


@pytest.fixture
def setup(echo_server):
    tenant = tenant_create(slug="keys", name="Keys", is_default=True, actor=None)
    upstream = upstream_create(tenant=tenant, name="echo", targets=[echo_server.origin], actor=None)
    api = api_create(tenant=tenant, name="orders", title="Orders", base_path="/orders", upstream=upstream, actor=None)
    api_publish(api=api, actor=None)
    policy_attachment_save(
        attachment=PolicyAttachment(tenant=tenant, api=api, policy="key-auth", config={}), actor=None
    )
    consumer = ConsumerFactory(tenant=tenant)
    application = ApplicationFactory(consumer=consumer)
    subscription_create(application=application, api=api, plan=PlanFactory(tenant=tenant), actor=None)
    issued = api_key_issue(application=application, actor=None)
    runtime = GatewayRuntime(client_kind="aiohttp", trusted_proxies=TrustedProxies(), poll_interval=0.1)
    with RuntimeServer(runtime) as base, httpx.Client(timeout=5, trust_env=False) as client:
        url = f"{base}/orders/1"
        assert status_within(client, url, issued.plaintext, 200, seconds=10), "the key never worked"
        yield runtime, client, url, issued, consumer


def test_cached_key_costs_no_lookup(setup):
    runtime, client, url, issued, _ = setup
    store = runtime.policy_services.get("keys")
    lookups = store.lookups
    for _ in range(5):
        assert client.get(url, headers={"X-API-Key": issued.plaintext}).status_code == 200
    assert store.lookups == lookups


def test_revoked_key_is_rejected_within_a_second(setup):
    _, client, url, issued, _ = setup
    api_key_revoke(key=issued.key, actor=None)
    assert status_within(client, url, issued.plaintext, 401), "a revoked key still worked 1 s after the revoke"
    assert client.get(url, headers={"X-API-Key": issued.plaintext}).json()["error"]["code"] == "key_invalid"


def test_rotated_out_key_is_rejected_within_a_second_and_its_successor_works(setup):
    _, client, url, issued, _ = setup
    successor = api_key_rotate(key=issued.key, actor=None, grace=timedelta(0))
    assert status_within(client, url, issued.plaintext, 401), "a rotated-out key still worked 1 s after rotation"
    assert client.get(url, headers={"X-API-Key": successor.plaintext}).status_code == 200


def test_suspended_consumer_is_rejected_within_a_second(setup):
    _, client, url, issued, consumer = setup
    consumer_suspend(consumer=consumer, actor=None)
    assert status_within(client, url, issued.plaintext, 401), "a suspended consumer's key still worked after 1 s"


def test_database_failure_on_the_policy_thread_fails_closed(setup):
    runtime, client, url, issued, _ = setup
    store = runtime.policy_services.get("keys")

    def unreachable(key_id: str):
        raise ConnectionError("could not connect to server")

    store._lookup = unreachable
    assert client.get(url, headers={"X-API-Key": issued.plaintext}).status_code == 200  # cached
    other = api_key_issue(application=ApplicationFactory(), actor=None)  # another tenant, never seen
    response = client.get(url, headers={"X-API-Key": other.plaintext})
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "auth_unavailable"
