"""Every WebSocket session leaves one usage record when it ends, refused and failed ones included.

The same real gateway as ``test_websocket_proxy`` (uvicorn in a thread, real
upstreams, a real client), with a usage callable that keeps the records the
proxy hands over instead of a recorder.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.headers import TrustedProxies
from gateway.health import HealthRegistry
from gateway.websocket import WebSocketProxy
from tests.gateway.servers import WebSocketEchoServer, ws_echo_server  # noqa: F401
from tests.gateway.websocket.test_websocket_proxy import (
    MAX_MESSAGE,
    Gateway,
    run,
    serve_gateway,
    upstream_snapshot,
    wait_until,
)


class Records:
    """The usage callable: what the proxy would hand to ``UsageRecorder.record``."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[dict[str, Any]] = []

    def __call__(self, **fields: Any) -> None:
        with self._lock:
            self._rows.append(fields)

    def by_request_id(self, rid: str, timeout: float = 5.0) -> dict[str, Any]:
        def found() -> list[dict[str, Any]]:
            with self._lock:
                return [row for row in self._rows if row["request_id"] == rid]

        assert wait_until(lambda: len(found()) >= 1, timeout), f"no usage record for {rid}"
        rows = found()
        assert len(rows) == 1, rows
        return rows[0]


@pytest.fixture(scope="module")
def records() -> Records:
    return Records()


@pytest.fixture(scope="module")
def gateway(records: Records, ws_echo_server: WebSocketEchoServer) -> Iterator[Gateway]:  # noqa: F811
    registry = HealthRegistry()
    with upstream_snapshot(registry, ws_echo_server) as (snapshot, recorder):
        proxy = WebSocketProxy(
            snapshot=lambda: snapshot, trusted_proxies=TrustedProxies(), max_message_size=MAX_MESSAGE, usage=records
        )
        with serve_gateway(proxy, "websockets") as port:
            yield Gateway(port=port, registry=registry, recorder=recorder, echo=ws_echo_server)


def test_a_relayed_session_is_one_record_with_its_message_bytes(gateway: Gateway, records: Records) -> None:
    async def scenario() -> None:
        headers = {"X-Request-ID": "ws-usage-ok", "User-Agent": "ws-usage/1"}
        async with gateway.connect("/echo/chat//room?x=1", additional_headers=headers) as ws:
            await ws.send("héllo")  # 6 bytes of UTF-8
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00" * 100)
            assert await ws.recv() == b"\x00" * 100

    run(scenario)
    row = records.by_request_id("ws-usage-ok")
    assert row["status"] == 101
    assert row["method"] == "GET"
    assert row["path"] == "/echo/chat/room"  # the canonical path, as for HTTP
    assert row["api_id"] == "/echo" and row["tenant_id"] == "t"
    assert row["bytes_in"] == 106 and row["bytes_out"] == 106
    assert row["deny_reason"] == ""
    assert row["user_agent"] == "ws-usage/1"
    assert row["client_ip"] == "127.0.0.1"
    assert row["upstream_target"] == gateway.echo.origin
    assert row["upstream_latency_us"] is not None and row["upstream_latency_us"] >= 0
    # The handshake's latency, not the session's: never less than the upstream's share of it.
    assert row["latency_us"] >= row["upstream_latency_us"]


def test_a_refused_handshake_is_recorded_with_its_status_and_reason(gateway: Gateway, records: Records) -> None:
    async def scenario() -> None:
        with pytest.raises(InvalidStatus):
            async with gateway.connect("/nowhere", additional_headers={"X-Request-ID": "ws-usage-404"}):
                pass

    run(scenario)
    row = records.by_request_id("ws-usage-404")
    assert (row["status"], row["deny_reason"], row["api_id"]) == (404, "not_found", None)
    assert row["upstream_latency_us"] is None and row["upstream_target"] == ""
    assert row["bytes_out"] > 0  # the error envelope


@pytest.mark.parametrize(
    ("path", "status", "reason", "close_code"),
    [
        ("/down/x", 502, "upstream_unreachable", 1014),
        ("/silent/x", 504, "upstream_timeout", 1014),
        ("/drained/x", 503, "no_healthy_target", 1013),
    ],
)
def test_a_session_the_gateway_could_not_open_counts_as_an_error(
    gateway: Gateway, records: Records, path: str, status: int, reason: str, close_code: int
) -> None:
    """Accepted only to be closed at once: recorded with the status the same failure has over HTTP."""
    rid = f"ws-usage-fail-{status}"

    async def scenario() -> int:
        async with gateway.connect(path, additional_headers={"X-Request-ID": rid}) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code

    assert run(scenario) == close_code
    row = records.by_request_id(rid)
    assert (row["status"], row["deny_reason"]) == (status, reason)
    assert row["upstream_latency_us"] is None
