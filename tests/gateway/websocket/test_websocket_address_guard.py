"""WebSocket upgrades under the SSRF guard: a refused upstream address closes 1014, not a health failure."""

from __future__ import annotations

import pytest
from websockets.exceptions import ConnectionClosed

from apim.target_addresses import AddressGuard
from gateway.headers import TrustedProxies
from gateway.health import HealthRegistry
from gateway.websocket import WebSocketProxy
from tests.gateway.servers import WebSocketEchoServer, ws_echo_server  # noqa: F401
from tests.gateway.websocket.test_websocket_proxy import (
    Gateway,
    run,
    serve_gateway,
    upstream_snapshot,
)


@pytest.mark.parametrize("guarded", [True, False])
def test_a_loopback_upstream_is_refused_when_guarded(ws_echo_server: WebSocketEchoServer, guarded: bool) -> None:  # noqa: F811
    registry = HealthRegistry()
    with upstream_snapshot(registry, ws_echo_server) as (snapshot, recorder):
        proxy = WebSocketProxy(
            snapshot=lambda: snapshot,
            trusted_proxies=TrustedProxies(),
            guard=AddressGuard(own_ports=frozenset()) if guarded else None,
        )
        with serve_gateway(proxy, "websockets-sansio") as port:
            gateway = Gateway(port=port, registry=registry, recorder=recorder, echo=ws_echo_server)
            target = gateway.target("recorder")
            failures = target.total_failures

            async def scenario() -> tuple[int, str] | str:
                async with gateway.connect("/rec/x") as ws:
                    if not guarded:
                        await ws.send("hello")
                        return await ws.recv()
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.recv()
                    assert closed.value.rcvd is not None
                    return closed.value.rcvd.code, closed.value.rcvd.reason

            outcome = run(scenario)
            if guarded:
                assert outcome == (1014, "upstream forbidden")
                assert recorder.sessions == []  # nothing reached the upstream
                assert target.total_failures == failures  # not counted against the target
                assert target.in_flight == 0
            else:
                assert outcome == "hello"
