"""WebSocket through the real gateway: uvicorn in a thread, real upstream servers, a real client.

The gateway serves a snapshot built here from specs (no database): one default
tenant whose APIs point at the shared ``ws_echo_server`` fixture, at a local
``RecordingServer`` (subprotocols, close codes seen by the upstream, large
messages on demand), at a refused port, at a socket that accepts TCP but never
answers the handshake, and at an upstream with no pickable target.

Every scenario runs under ``asyncio.run`` with an overall deadline, so a hang
fails the test instead of blocking the suite.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any, TypeVar

import pytest
import uvicorn
import uvloop
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from gateway.balancer import build_balancers
from gateway.config import GatewaySnapshot, UpstreamRuntime
from gateway.headers import TrustedProxies
from gateway.health import HealthRegistry
from gateway.router import RouteTable
from gateway.snapshot import ApiSpec, RouteSpec, TenantSpec
from gateway.upstream.base import Timeouts
from gateway.upstream_spec import TargetSpec, UpstreamSpec
from gateway.websocket import WebSocketProxy, sendable_close_code
from tests.gateway.servers import WebSocketEchoServer, refused_port_ctx, ws_echo_server  # noqa: F401

T = TypeVar("T")

DEADLINE = 10.0
MAX_MESSAGE = 64 * 1024  # the gateway's cap in these tests (the default is 16 MiB)
SUBPROTOCOLS = ("chat.v1", "chat.v2")  # what the recording upstream speaks


def run(scenario: Callable[[], Awaitable[T]], deadline: float = DEADLINE) -> T:
    async def main() -> T:
        return await asyncio.wait_for(scenario(), deadline)

    return asyncio.run(main())


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0) -> bool:
    """Poll a condition owned by another thread, up to ``timeout`` seconds."""
    tick = threading.Event()
    for _ in range(int(timeout / 0.005)):
        if predicate():
            return True
        tick.wait(0.005)
    return predicate()


# -- a local upstream that records what the echo fixture cannot tell -------------------------


@dataclass
class Session:
    path: str
    headers: list[tuple[str, str]]
    subprotocol: str | None
    close_code: int | None = None
    close_reason: str = ""
    closed: threading.Event = field(default_factory=threading.Event)


class RecordingServer(WebSocketEchoServer):
    """Echoes like the fixture; negotiates ``chat.v1``/``chat.v2``; records the close
    code each session ended with; ``big:<n>`` answers with ``n`` binary bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.sessions: list[Session] = []

    async def _start(self) -> None:
        from websockets.asyncio.server import serve

        def refuse(connection: Any, request: Any) -> Any:
            if request.path.startswith("/deny"):
                return connection.respond(HTTPStatus.UNAUTHORIZED, "no\n")
            return None

        self._server = await serve(
            self._record,
            "127.0.0.1",
            0,
            select_subprotocol=lambda _connection, offered: next((p for p in offered if p in SUBPROTOCOLS), None),
            max_size=None,
            process_request=refuse,
        )
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def _record(self, ws: Any) -> None:
        session = Session(ws.request.path, list(ws.request.headers.raw_items()), ws.subprotocol)
        self.sessions.append(session)
        try:
            async for message in ws:
                if message == "abort":  # the upstream dies without a closing handshake
                    ws.transport.abort()
                    return
                if isinstance(message, str) and message.startswith("big:"):
                    await ws.send(b"x" * int(message[4:]))
                elif isinstance(message, str) and message.startswith("close:"):
                    _, code, *reason = message.split(":", 2)
                    await ws.close(int(code), reason[0] if reason else "")
                else:
                    await ws.send(message)
        except ConnectionClosed:
            pass
        finally:
            received = ws.protocol.close_rcvd
            if received is not None:
                session.close_code, session.close_reason = received.code, received.reason
            session.closed.set()


# -- the gateway under test ------------------------------------------------------------------


@dataclass
class Gateway:
    port: int
    registry: HealthRegistry
    recorder: RecordingServer
    echo: WebSocketEchoServer

    def url(self, path: str) -> str:
        return f"ws://127.0.0.1:{self.port}{path}"

    def connect(self, path: str, **kwargs: Any) -> Any:
        kwargs.setdefault("open_timeout", 5)
        kwargs.setdefault("close_timeout", 5)
        return connect(self.url(path), proxy=None, **kwargs)

    def target(self, upstream_id: str) -> Any:
        health = self.registry.find(upstream_id)
        assert health is not None
        return next(iter(health.targets.values()))


def _upstream(uid: str, *urls: str, connect_timeout: float = 2.0, weight: int = 100) -> UpstreamSpec:
    return UpstreamSpec(
        id=uid,
        targets=tuple(TargetSpec(url=u, weight=weight) for u in urls),
        connect_timeout=connect_timeout,
        retries=1,
    )


def build_snapshot(registry: HealthRegistry, echo: str, recorder: str, refused: str, silent: str) -> GatewaySnapshot:
    specs = [
        _upstream("echo", echo),
        _upstream("prefixed", echo + "/base"),
        _upstream("recorder", recorder),
        _upstream("down", refused),
        _upstream("silent", silent, connect_timeout=0.3),
        _upstream("drained", echo, weight=0),
    ]
    registry.sync(specs)
    balancers = build_balancers(specs, registry)
    upstreams = {
        spec.id: UpstreamRuntime(
            spec=spec,
            balancer=balancers[spec.id],
            timeouts=Timeouts(connect=spec.connect_timeout, read=spec.read_timeout, write=spec.write_timeout),
        )
        for spec in specs
    }

    def api(base: str, upstream: str, **kwargs: Any) -> ApiSpec:
        return ApiSpec(api_id=base, tenant_id="t", base_path=base, upstream_id=upstream, **kwargs)

    apis = [
        api("/echo", "echo"),
        api("/keep", "echo", strip_base_path=False),
        api("/prefixed", "prefixed"),
        api("/rec", "recorder"),
        api("/down", "down"),
        api("/silent", "silent"),
        api("/drained", "drained"),
        api("/post-only", "echo", routes=(RouteSpec(route_id="p", path="/", methods=frozenset({"POST"})),)),
    ]
    apis.append(ApiSpec(api_id="other", tenant_id="t2", base_path="/echo", upstream_id="recorder"))
    tenants = [TenantSpec(tenant_id="t", is_default=True), TenantSpec(tenant_id="t2", hosts=("ws.example",))]
    router = RouteTable(tenants, apis)
    return GatewaySnapshot(router=router, upstreams=upstreams)


@contextlib.contextmanager
def upstream_snapshot(
    registry: HealthRegistry, echo: WebSocketEchoServer
) -> Iterator[tuple[GatewaySnapshot, RecordingServer]]:
    """The tests' snapshot over real upstreams: the echo server, a recorder, a refused and a silent port."""
    with RecordingServer() as recorder, refused_port_ctx() as refused, silent_port() as silent:
        yield (
            build_snapshot(
                registry,
                echo=echo.origin,
                recorder=recorder.origin,
                refused=f"http://127.0.0.1:{refused}",
                silent=f"http://127.0.0.1:{silent}",
            ),
            recorder,
        )


@contextlib.contextmanager
def silent_port() -> Iterator[int]:
    """A port that completes TCP connects (kernel backlog) but never answers: handshake timeouts."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield sock.getsockname()[1]
    finally:
        sock.close()


@contextlib.contextmanager
def serve_gateway(proxy: WebSocketProxy, ws: str) -> Iterator[int]:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        assert scope["type"] == "websocket"
        await proxy(scope, receive, send)

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)  # listening before uvicorn starts: early clients wait in the backlog, no polling
    port = sock.getsockname()[1]
    # As ``manage.py gateway`` does: the gateway applies its own trusted-proxy rules.
    config = uvicorn.Config(app, lifespan="off", log_level="warning", ws=ws, ws_ping_interval=None, proxy_headers=False)
    server = uvicorn.Server(config)

    def serve() -> None:
        async def main() -> None:
            try:
                await server.serve(sockets=[sock])
            finally:
                await proxy.aclose()

        uvloop.run(main())  # the loop ``manage.py gateway`` serves with

    thread = threading.Thread(target=serve, name="gateway", daemon=True)
    thread.start()
    try:
        yield port
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


# "websockets" is what ``manage.py gateway`` serves with; "websockets-sansio" is uvicorn's default.
@pytest.fixture(scope="module", params=["websockets", "websockets-sansio"])
def gateway(request: pytest.FixtureRequest, ws_echo_server: WebSocketEchoServer) -> Iterator[Gateway]:  # noqa: F811
    registry = HealthRegistry()
    with upstream_snapshot(registry, ws_echo_server) as (snapshot, recorder):
        proxy = WebSocketProxy(
            snapshot=lambda: snapshot, trusted_proxies=TrustedProxies(), max_message_size=MAX_MESSAGE
        )
        with serve_gateway(proxy, request.param) as port:
            yield Gateway(port=port, registry=registry, recorder=recorder, echo=ws_echo_server)


async def _request_info(ws: ClientConnection) -> dict[str, Any]:
    await ws.send("request")
    return json.loads(await ws.recv())


def _header(headers: list[list[str]] | list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name.lower()]


# -- relaying --------------------------------------------------------------------------------


def test_text_and_binary_echo(gateway: Gateway) -> None:
    async def scenario() -> None:
        async with gateway.connect("/echo/chat") as ws:
            await ws.send("hello")
            assert await ws.recv() == "hello"
            await ws.send("héllo wörld ✓")
            assert await ws.recv() == "héllo wörld ✓"
            payload = bytes(range(256)) * 4
            await ws.send(payload)
            assert await ws.recv() == payload
            await ws.send(b"")
            assert await ws.recv() == b""

    run(scenario)


def test_many_messages_in_order_both_directions(gateway: Gateway) -> None:
    count = 500

    async def scenario() -> None:
        async with gateway.connect("/echo/seq") as ws:

            async def produce() -> None:
                for i in range(count):
                    await ws.send(f"m{i}" if i % 2 else f"m{i}".encode())

            producer = asyncio.create_task(produce())
            received = [await ws.recv() for _ in range(count)]
            await producer
            expected = [f"m{i}" if i % 2 else f"m{i}".encode() for i in range(count)]
            assert received == expected

    run(scenario)


def test_large_message_under_the_cap(gateway: Gateway) -> None:
    async def scenario() -> None:
        async with gateway.connect("/echo/big") as ws:
            payload = bytes(range(256)) * (MAX_MESSAGE // 256)
            await ws.send(payload)
            assert await ws.recv() == payload

    run(scenario)


def test_client_message_over_the_cap_closes_1009(gateway: Gateway) -> None:
    async def scenario() -> Session:
        before = len(gateway.recorder.sessions)
        async with gateway.connect("/rec/x") as ws:
            await ws.send("ping")
            assert await ws.recv() == "ping"
            session = gateway.recorder.sessions[before]
            await ws.send(b"x" * (MAX_MESSAGE + 1))
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009
        assert await asyncio.to_thread(session.closed.wait, 5)
        return session

    session = run(scenario)
    assert session.close_code == 1009


def test_upstream_message_over_the_cap_closes_1009(gateway: Gateway) -> None:
    async def scenario() -> None:
        async with gateway.connect("/rec/x") as ws:
            await ws.send(f"big:{MAX_MESSAGE + 1}")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1009

    run(scenario)


# -- close codes -----------------------------------------------------------------------------


def test_upstream_close_code_and_reason_reach_the_client(gateway: Gateway) -> None:
    async def scenario() -> None:
        async with gateway.connect("/echo/x") as ws:
            await ws.send("close:4001:bye now")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (4001, "bye now")

    run(scenario)


def test_client_close_code_and_reason_reach_the_upstream(gateway: Gateway) -> None:
    async def scenario() -> Session:
        before = len(gateway.recorder.sessions)
        async with gateway.connect("/rec/close") as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            session = gateway.recorder.sessions[before]
            await ws.close(4000, "client done")
        assert await asyncio.to_thread(session.closed.wait, 5)
        return session

    session = run(scenario)
    assert (session.close_code, session.close_reason) == (4000, "client done")


def test_normal_client_close_is_1000_upstream(gateway: Gateway) -> None:
    async def scenario() -> Session:
        before = len(gateway.recorder.sessions)
        async with gateway.connect("/rec/close") as ws:
            await ws.send("hi")
            await ws.recv()
            session = gateway.recorder.sessions[before]
        assert await asyncio.to_thread(session.closed.wait, 5)
        return session

    assert run(scenario).close_code == 1000


def test_upstream_dying_mid_session_closes_1011(gateway: Gateway) -> None:
    async def scenario() -> None:
        async with gateway.connect("/rec/abort") as ws:
            await ws.send("abort")
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1011  # 1006 must not be sent on the wire

    run(scenario)


def test_unsendable_codes_are_mapped() -> None:
    assert sendable_close_code(1005) == 1000
    assert sendable_close_code(None) == 1000
    assert sendable_close_code(1006) == 1011
    assert sendable_close_code(1015) == 1011
    assert sendable_close_code(1004) == 1011
    assert sendable_close_code(2500) == 1011
    assert sendable_close_code(4001) == 4001
    assert sendable_close_code(1001) == 1001


# -- handshake -------------------------------------------------------------------------------


def test_subprotocol_chosen_by_upstream_is_accepted(gateway: Gateway) -> None:
    async def scenario() -> tuple[str | None, Session]:
        before = len(gateway.recorder.sessions)
        async with gateway.connect("/rec/proto", subprotocols=["chat.v9", "chat.v2"]) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
            return ws.subprotocol, gateway.recorder.sessions[before]

    chosen, session = run(scenario)
    assert chosen == "chat.v2"
    assert session.subprotocol == "chat.v2"
    offered = ",".join(_header(session.headers, "sec-websocket-protocol")).replace(" ", "")
    assert offered == "chat.v9,chat.v2"


def test_no_subprotocol_when_none_offered(gateway: Gateway) -> None:
    async def scenario() -> str | None:
        async with gateway.connect("/rec/proto") as ws:
            return ws.subprotocol

    assert run(scenario) is None


def test_forwarded_headers_and_request_id(gateway: Gateway) -> None:
    async def scenario() -> tuple[dict[str, Any], dict[str, Any], str | None]:
        headers = {"X-Request-ID": "req-ws-123", "X-Custom": "kept", "X-Forwarded-For": "6.6.6.6"}
        async with gateway.connect("/echo/h", additional_headers=headers) as ws:
            given = await _request_info(ws)
            accepted_id = ws.response.headers.get("x-request-id")
        async with gateway.connect("/echo/h") as ws:
            generated = await _request_info(ws)
        return given, generated, accepted_id

    given, generated, accepted_id = run(scenario)
    h = given["headers"]
    assert _header(h, "x-request-id") == ["req-ws-123"]
    assert accepted_id == "req-ws-123"
    assert _header(h, "x-forwarded-for") == ["127.0.0.1"]  # an untrusted client cannot forge it
    assert _header(h, "x-forwarded-proto") == ["http"]
    assert _header(h, "x-custom") == ["kept"]
    assert _header(h, "via") == ["1.1 apim"]
    assert _header(h, "host") == [gateway.echo.origin.removeprefix("http://")]
    assert len(_header(h, "sec-websocket-key")) == 1  # generated for the upstream hop, not duplicated
    assert _header(h, "upgrade") == ["websocket"]
    assert _header(generated["headers"], "x-request-id") and _header(generated["headers"], "x-request-id") != [
        "req-ws-123"
    ]


def test_host_selects_the_tenant(gateway: Gateway) -> None:
    """``Host: ws.example`` routes to the other tenant's ``/echo`` (the recorder), whatever the
    case of the header name the server hands over."""

    async def scenario() -> str:
        before = len(gateway.recorder.sessions)
        uri = f"ws://ws.example:{gateway.port}/echo/tenant"
        async with connect(uri, host="127.0.0.1", port=gateway.port, proxy=None, open_timeout=5) as ws:
            await ws.send("hi")
            assert await ws.recv() == "hi"
        return gateway.recorder.sessions[before].path

    assert run(scenario) == "/tenant"


def test_base_path_stripped_kept_and_prefixed(gateway: Gateway) -> None:
    async def scenario() -> list[str]:
        paths = []
        for path in ("/echo/a/b?x=1&y=%2F", "/echo", "/keep/a/b?q", "/prefixed/a/%7Eb"):
            async with gateway.connect(path) as ws:
                paths.append((await _request_info(ws))["path"])
        return paths

    assert run(scenario) == ["/a/b?x=1&y=%2F", "/", "/keep/a/b?q", "/base/a/%7Eb"]


def test_lease_released_and_success_recorded(gateway: Gateway) -> None:
    target = gateway.target("recorder")

    async def scenario() -> int:
        async with gateway.connect("/rec/lease") as ws:
            await ws.send("x")
            await ws.recv()
            in_session = target.in_flight
        return in_session

    assert run(scenario) == 1
    # The lease is released when the relay ends, which may trail the client's close by a moment.
    assert wait_until(lambda: target.in_flight == 0)


# -- refusals and failures -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/nowhere", 404, "not_found"),
        ("/__apim/health", 404, "not_found"),
        ("/echo/%2Fetc", 400, "bad_request"),
        ("/post-only/x", 405, "method_not_allowed"),
    ],
)
def test_refused_before_the_handshake(gateway: Gateway, path: str, status: int, code: str) -> None:
    async def scenario() -> Any:
        with pytest.raises(InvalidStatus) as refused:
            async with gateway.connect(path):
                pass
        return refused.value.response

    response = run(scenario)
    assert response.status_code == status
    body = json.loads(response.body)
    assert body["success"] is False
    assert body["error"]["code"] == code
    assert response.headers["x-request-id"] == body["request_id"]
    if status == 405:
        assert "POST" in response.headers["allow"]


def _closed_right_after_open(gateway: Gateway, path: str) -> tuple[int, str]:
    async def scenario() -> tuple[int, str]:
        async with gateway.connect(path) as ws:
            with pytest.raises(ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code, closed.value.rcvd.reason

    return run(scenario)


def test_unreachable_upstream_closes_1014(gateway: Gateway) -> None:
    target = gateway.target("down")
    failures = target.total_failures
    assert _closed_right_after_open(gateway, "/down/x") == (1014, "upstream unreachable")
    assert target.total_failures > failures  # passive health heard about it
    assert target.in_flight == 0  # released before the client was told


def test_handshake_timeout_closes_1014(gateway: Gateway) -> None:
    target = gateway.target("silent")
    failures = target.total_failures
    assert _closed_right_after_open(gateway, "/silent/x") == (1014, "upstream timeout")
    assert target.total_failures > failures


def test_no_available_target_closes_1013(gateway: Gateway) -> None:
    assert _closed_right_after_open(gateway, "/drained/x") == (1013, "no healthy upstream target")


def test_upstream_refusing_the_upgrade_is_relayed(gateway: Gateway) -> None:
    async def scenario() -> Any:
        with pytest.raises(InvalidStatus) as refused:
            async with gateway.connect("/rec/deny"):
                pass
        return refused.value.response

    response = run(scenario)
    assert response.status_code == 401
    body = json.loads(response.body)
    assert body["error"]["code"] == "upstream_error"
    assert body["error"]["details"] == {"upstream_status": 401}


@pytest.mark.parametrize(
    ("hosts", "reason"),
    [
        ([b"127.0.0.1", b"ws.example"], "duplicate_host"),
        ([b"bad host"], "invalid_host"),
    ],
)
def test_an_upgrade_without_exactly_one_valid_host_is_refused(gateway: Gateway, hosts, reason) -> None:
    # As for plain HTTP (RFC 9112 §3.2): two Hosts leave the tenant ambiguous, so nothing is routed.
    head = b"GET /echo/x HTTP/1.1\r\n" + b"".join(b"Host: " + h + b"\r\n" for h in hosts)
    head += (
        b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        b"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    )
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=5) as sock:
        sock.sendall(head)
        answer = b""
        while b"\r\n\r\n" not in answer or not answer.rstrip().endswith(b"}"):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    status_line = answer.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 400"), answer[:200]
    body = json.loads(answer.split(b"\r\n\r\n", 1)[1])
    assert body["error"]["code"] == "bad_request"
    assert body["error"]["details"] == {"reason": reason}
