"""The SSRF check repeated when the gateway connects (DNS rebinding), for both upstream clients.

A target registered under a name that resolved to a public address may later
resolve to 127.0.0.1 (or the metadata address). ``tests.fake_dns`` plays that
DNS server: ``rebind.apim.test`` answers 127.0.0.1 at connect time, where a
real echo server listens, so a missing check would visibly reach it.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from apim.target_addresses import AddressGuard
from gateway.upstream import Timeouts, UpstreamForbidden, create_upstream_client
from tests.fake_dns import install as fake_dns_install
from tests.gateway.harness import Api, GatewayHarness

CLIENTS = ["aiohttp", "httpx"]
TIMEOUTS = Timeouts(connect=2, read=5, write=5)


class CountingGuard:
    """Delegates to the real rules for everything but 127.0.0.1 (where the test servers live), and counts."""

    def __init__(self, allow_loopback: bool) -> None:
        self.allow_loopback = allow_loopback
        self.calls = 0
        self._real = AddressGuard(own_ports=frozenset())

    def refusal(self, ip: str, port: int) -> str | None:
        self.calls += 1
        if self.allow_loopback and ip == "127.0.0.1":
            return None
        return self._real.refusal(ip, port)


@pytest.fixture
def fake_dns(monkeypatch):
    return fake_dns_install(monkeypatch)


def _gateway(kind: str, guard) -> GatewayHarness:
    harness = GatewayHarness(client_kind=kind)
    harness._client = create_upstream_client(kind, guard=guard)
    return harness.start()


@pytest.mark.parametrize("kind", CLIENTS)
def test_a_name_that_rebinds_to_loopback_is_refused_at_connect(kind, fake_dns, echo_server, http):
    fake_dns["rebind.apim.test"] = ["127.0.0.1"]
    before = echo_server.connections
    gateway = _gateway(kind, AddressGuard(own_ports=frozenset()))
    try:
        target = f"http://rebind.apim.test:{echo_server.port}"
        gateway.configure(Api("/r", [target], retries=2, passive_failure_threshold=1))
        for _ in range(3):
            response = http.get(f"{gateway.url}/r/x")
            assert response.status_code == 502
            error = response.json()["error"]
            assert error["code"] == "upstream_forbidden"
            assert "127.0.0.1" not in response.text  # the envelope says why in general terms only
        assert echo_server.connections == before  # nothing reached the loopback server
        health = gateway.registry.get("u0", target).describe(time.monotonic(), time.time())
        assert health["consecutive_failures"] == 0  # the gateway's rule, not the target's health
        assert health["circuit"] == "closed"
    finally:
        gateway.stop()


@pytest.mark.parametrize("kind", CLIENTS)
def test_metadata_ip_literal_is_refused_without_dns(kind, http):
    gateway = _gateway(kind, AddressGuard(own_ports=frozenset()))
    try:
        gateway.configure(Api("/m", ["http://169.254.169.254:80"], retries=0))
        response = http.get(f"{gateway.url}/m/latest/meta-data")
        assert response.status_code == 502
        assert response.json()["error"]["code"] == "upstream_forbidden"
    finally:
        gateway.stop()


@pytest.mark.parametrize("kind", CLIENTS)
def test_the_check_costs_once_per_connection_not_per_request(kind, fake_dns, echo_server, http):
    fake_dns["ok.apim.test"] = ["127.0.0.1"]
    guard = CountingGuard(allow_loopback=True)
    gateway = _gateway(kind, guard)
    try:
        gateway.configure(Api("/ok", [f"http://ok.apim.test:{echo_server.port}"]))
        for _ in range(5):
            response = http.get(f"{gateway.url}/ok/x")
            assert response.status_code == 200, response.text
            assert response.json()["target"] == "/x"
        assert guard.calls == 1  # one new connection, reused by the next four requests
    finally:
        gateway.stop()


@pytest.mark.parametrize("kind", CLIENTS)
def test_client_raises_upstream_forbidden_before_sending(kind, fake_dns, echo_server):
    fake_dns["rebind.apim.test"] = ["127.0.0.1"]
    before = echo_server.connections

    async def scenario() -> None:
        client = create_upstream_client(kind, guard=AddressGuard(own_ports=frozenset()))
        try:
            for origin in (f"http://rebind.apim.test:{echo_server.port}", f"http://[::1]:{echo_server.port}"):
                with pytest.raises(UpstreamForbidden) as caught:
                    await client.request(
                        method="POST", origin=origin, target=b"/x", headers=[], body=b"data", timeouts=TIMEOUTS
                    )
                assert caught.value.request_sent is False
        finally:
            await client.aclose()

    asyncio.run(asyncio.wait_for(scenario(), 20))
    assert echo_server.connections == before


@pytest.mark.parametrize("kind", CLIENTS)
def test_without_a_guard_nothing_is_checked(kind, fake_dns, echo_server, http):
    """What the test settings (APIM_ALLOW_PRIVATE_TARGETS) give the runtime: no guard at all."""
    fake_dns["rebind.apim.test"] = ["127.0.0.1"]
    gateway = _gateway(kind, None)
    try:
        gateway.configure(Api("/r", [f"http://rebind.apim.test:{echo_server.port}"]))
        assert http.get(f"{gateway.url}/r/x").status_code == 200
    finally:
        gateway.stop()


def test_runtime_guard_follows_the_setting(settings):
    settings.APIM_ALLOW_PRIVATE_TARGETS = True
    assert AddressGuard.from_settings() is None
    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    settings.APIM_GATEWAY_PORT = 18081
    settings.APIM_WEB_PORT = 18080
    guard = AddressGuard.from_settings()
    assert guard is not None and guard.own_ports == frozenset({18080, 18081})


def test_the_port_the_gateway_was_started_on_counts_as_its_own(settings, monkeypatch):
    from apim.target_addresses import SERVING_PORT_ENV

    settings.APIM_ALLOW_PRIVATE_TARGETS = False
    settings.APIM_GATEWAY_PORT = 18081
    settings.APIM_WEB_PORT = 18080
    monkeypatch.setenv(SERVING_PORT_ENV, "19999")  # manage.py gateway --port 19999
    guard = AddressGuard.from_settings()
    assert guard is not None and guard.own_ports == frozenset({18080, 18081, 19999})
