"""An upgrade request passes the API's request policies exactly like an HTTP request.

A denial refuses the handshake with the error envelope; what the policies
edit (headers added or removed) is what the upstream's handshake carries.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from gateway.headers import TrustedProxies
from gateway.health import HealthRegistry
from gateway.websocket import WebSocketProxy
from tests.gateway.harness import Api, build_snapshot
from tests.gateway.servers import WebSocketEchoServer, ws_echo_server  # noqa: F401
from tests.gateway.websocket.test_websocket_proxy import _header, run, serve_gateway


@pytest.fixture
def ws_gateway(ws_echo_server: WebSocketEchoServer):  # noqa: F811
    snapshot = build_snapshot(
        [
            Api(
                base_path="/guarded",
                targets=[ws_echo_server.origin],
                policies=[("ip-restriction", {"deny": ["127.0.0.0/8"]})],
            ),
            Api(
                base_path="/edited",
                targets=[ws_echo_server.origin],
                policies=[
                    (
                        "request-transformer",
                        {"add": {"headers": {"X-Added": "by-policy"}}, "remove": {"headers": ["X-Secret"]}},
                    )
                ],
            ),
        ],
        HealthRegistry(),
    )
    proxy = WebSocketProxy(snapshot=lambda: snapshot, trusted_proxies=TrustedProxies())
    with serve_gateway(proxy, "websockets-sansio") as port:
        yield f"ws://127.0.0.1:{port}"


def test_a_denying_policy_refuses_the_handshake_with_the_envelope(ws_gateway: str) -> None:
    async def scenario() -> Any:
        with pytest.raises(InvalidStatus) as refused:
            async with connect(f"{ws_gateway}/guarded/socket"):
                pass
        return refused.value.response

    response = run(scenario)
    assert response.status_code == 403
    body = json.loads(response.body)
    assert body["error"]["code"] == "ip_denied"
    assert response.headers["x-request-id"] == body["request_id"]


def test_policy_edits_reach_the_upstream_handshake(ws_gateway: str) -> None:
    async def scenario() -> dict[str, Any]:
        async with connect(f"{ws_gateway}/edited/socket", additional_headers={"X-Secret": "s3cret"}) as ws:
            await ws.send("request")
            return json.loads(await ws.recv())

    info = run(scenario)
    assert _header(info["headers"], "x-added") == ["by-policy"]
    assert _header(info["headers"], "x-secret") == []
