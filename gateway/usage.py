"""What the proxy learns about one request for its usage record, and the hand-off to the recorder.

A :class:`UsageTrace` stands in for the ASGI ``send`` of a request: it notes the
status and counts the body bytes that actually went out (so a response cut
short by an upstream reset is recorded with the bytes the client got), and the
proxy fills in what it decided along the way (tenant, API, route, identity,
upstream target, latencies). At the end of the request :meth:`emit` hands one
record to ``analytics.recorder.UsageRecorder.record`` — an append to an
in-memory buffer; nothing here does I/O.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from gateway.router import Match
    from policies.context import RequestContext

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
Record = Callable[..., None]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

# Recorded when the client went away before any response started (nginx's convention).
CLIENT_CLOSED = 499


class UsageTrace:
    __slots__ = (
        "bytes_in",
        "bytes_out",
        "client_ip",
        "ctx",
        "error_code",
        "finished_ns",
        "gateway_ns",
        "match",
        "path",
        "request_id",
        "reserved",
        "send",
        "started_ns",
        "started_wall",
        "status",
        "upstream_ns",
        "upstream_target",
        "user_agent",
    )

    def __init__(self, send: Send) -> None:
        self.send = send
        self.started_wall = time.time()
        self.started_ns = time.perf_counter_ns()
        self.status = 0
        self.bytes_out = 0
        self.bytes_in = 0
        self.request_id = b""
        self.path = ""
        self.reserved = False
        self.match: Match | None = None
        self.ctx: RequestContext | None = None
        self.client_ip: str | None = None
        self.user_agent = b""
        self.upstream_target = ""
        self.upstream_ns: int | None = None
        self.gateway_ns = 0
        self.error_code = ""  # set by gateway.errors.send_error: the gateway answered itself
        self.finished_ns = 0  # when the measured latency ends; 0: when the record is emitted

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        else:
            self.bytes_out += len(message.get("body", b""))
        await self.send(message)

    def emit(self, record: Record, scope: MutableMapping[str, Any]) -> None:
        """Hand this request's record to the recorder (never raises into the request)."""
        match = self.match
        api = match.entry.api if match is not None else None
        ctx = self.ctx
        identity = ctx.identity if ctx is not None else None
        record(
            request_id=self.request_id.decode("latin-1"),
            tenant_id=str(api.tenant_id) if api is not None else None,
            method=scope.get("method", "GET"),  # a WebSocket scope has none: its upgrade request is a GET
            path=self.path,
            status=self.status or CLIENT_CLOSED,
            latency_us=((self.finished_ns or time.perf_counter_ns()) - self.started_ns) // 1000,
            api_id=str(api.api_id) if api is not None else None,
            route=match.entry.pattern if match is not None else "",
            consumer_id=identity.consumer_id if identity is not None else None,
            application_id=identity.application_id if identity is not None else None,
            key_prefix=(identity.key_prefix or "") if identity is not None else "",
            deny_reason=(ctx.deny_reason if ctx is not None and ctx.deny_reason else self.error_code),
            upstream_latency_us=self.upstream_ns // 1000 if self.upstream_ns is not None else None,
            gateway_latency_us=self.gateway_ns // 1000,
            bytes_in=self.bytes_in,
            bytes_out=self.bytes_out,
            client_ip=self.client_ip or (scope.get("client") or (None,))[0],
            user_agent=self.user_agent[:512].decode("latin-1"),
            upstream_target=self.upstream_target,
            timestamp=self.started_wall,
        )


class WebSocketUsageTrace(UsageTrace):
    """The usage record of one WebSocket upgrade request, emitted when the session ends.

    A session is one request, like any other, so it leaves one record:

    * ``status``: 101 for a session that was accepted and relayed; the HTTP
      status of a refused handshake (a policy denial, 404, an upstream that
      answered the upgrade with 401...); 403 for a handshake closed before it
      was accepted (what the server answers then); and for a session the gateway
      accepted only to close it because the upstream could not be reached, the
      status the same failure has over HTTP (502 / 503 / 504) so that it counts
      as an error and not as a success.
    * ``latency_us``: the handshake's, until the client was accepted — a
      session's duration (minutes, hours) would swamp the latency percentiles
      that every other record feeds.
    * ``bytes_in`` / ``bytes_out``: message payload bytes over the whole session.
    """

    __slots__ = ()

    async def __call__(self, message: MutableMapping[str, Any]) -> None:
        kind = message["type"]
        if kind == "websocket.send":
            data = message.get("bytes")
            self.bytes_out += len(data) if data is not None else len((message.get("text") or "").encode())
        elif kind == "websocket.accept":
            self.status = 101
            self.finished_ns = time.perf_counter_ns()
        elif kind == "websocket.http.response.start":
            self.status = message["status"]
            self.finished_ns = time.perf_counter_ns()
        elif kind == "websocket.http.response.body":
            self.bytes_out += len(message.get("body", b""))
        elif kind == "websocket.close" and not self.status:
            self.status = 403
            self.finished_ns = time.perf_counter_ns()
        await self.send(message)

    def counted(self, receive: Receive) -> Receive:
        """``receive`` counting the client's message payload bytes into ``bytes_in``."""

        async def receive_counted() -> MutableMapping[str, Any]:
            message = await receive()
            if message["type"] == "websocket.receive":
                data = message.get("bytes")
                self.bytes_in += len(data) if data is not None else len((message.get("text") or "").encode())
            return message

        return receive_counted

    def gateway_failure(self, code: str, status: int) -> None:
        """The gateway accepted the client only to close it at once (no target, upstream unreachable)."""
        self.error_code = code
        self.status = status
