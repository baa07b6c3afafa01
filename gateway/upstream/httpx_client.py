"""The httpx implementation of ``UpstreamClient``, on httpx's transport layer.

``httpx.AsyncClient.send`` is not used: it adds default headers, a cookie jar,
redirect handling and URL normalisation. Requests go to httpcore (the engine
under ``httpx.AsyncHTTPTransport``) with the target given as raw bytes
(``httpcore.URL(target=...)``), so it is sent byte for byte. httpcore reads
no environment (no proxies), keeps no cookies, follows no redirects and never
decodes content. ``sniffio`` must be installed (it is pinned): without it
httpcore retries the failing import on every lock.

httpcore's own ``AsyncConnectionPool`` is not used either: on every request
it rescans all requests against all connections and polls each idle socket
for readability, so it gets slower per request as concurrency rises.
``_ConnectionPool`` keeps the same httpcore connections (``AsyncHTTPConnection``:
connect, TLS, HTTP/1.1 via h11) in a per-origin LIFO idle stack, so a request
costs O(1) pool work. Under them, ``_AsyncioBackend`` replaces httpcore's anyio
network layer with plain asyncio transports (no cancel scope per read; a
server-closed idle connection is known from the protocol's EOF, no poll).
Measured with ``bench/client_bench.py`` at 64 concurrent requests: httpcore's
pool ~160 req/s, this pool on anyio ~4,400, on the asyncio backend ~6,600.

httpcore writes the whole request body before it reads the response, so
``read`` starts after the body is sent, and every socket write is bounded by
``write``.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable
from typing import Any

import httpcore

from apim.target_addresses import AddressGuard
from gateway.upstream.base import (
    NO_BODY_STATUSES,
    RequestBody,
    Timeouts,
    UpstreamConnectError,
    UpstreamForbidden,
    UpstreamProtocolError,
    UpstreamTimeout,
    request_framing,
    split_origin,
)

_CHUNKED = (b"Transfer-Encoding", b"chunked")


class _Forbidden(httpcore.ConnectError):
    """The guard refused every address of the origin; carried through httpcore as a connect error."""


def _map_error(exc: Exception, *, response_started: bool) -> Exception:
    if isinstance(exc, _Forbidden):
        return UpstreamForbidden(str(exc))
    if isinstance(exc, httpcore.ConnectTimeout | httpcore.PoolTimeout):
        return UpstreamTimeout(f"connect timeout: {exc!r}", phase="connect", request_sent=False)
    if isinstance(exc, httpcore.ReadTimeout):
        return UpstreamTimeout(f"read timeout: {exc!r}", phase="read", request_sent=True)
    if isinstance(exc, httpcore.WriteTimeout):
        return UpstreamTimeout(f"write timeout: {exc!r}", phase="write", request_sent=True)
    if isinstance(exc, httpcore.ConnectError | httpcore.UnsupportedProtocol | httpcore.ProxyError):
        return UpstreamConnectError(f"connect failed: {exc!r}")
    where = "reading the response body" if response_started else "waiting for the response"
    return UpstreamProtocolError(f"upstream failed while {where}: {exc!r}")


_ERRORS = (
    httpcore.NetworkError,
    httpcore.TimeoutException,
    httpcore.ProtocolError,
    httpcore.UnsupportedProtocol,
    httpcore.ProxyError,
)


class _StreamProtocol(asyncio.Protocol):
    """Buffers what the socket delivers; flow control both ways, no anyio cancel scopes."""

    _HIGH_WATER = 256 * 1024

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.eof = False
        self.error: BaseException | None = None
        self._reader: asyncio.Future[None] | None = None
        self._drainer: asyncio.Future[None] | None = None
        self._paused_reading = False
        self._paused_writing = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if len(self.buffer) > self._HIGH_WATER and not self._paused_reading and self.transport is not None:
            self._paused_reading = True
            self.transport.pause_reading()
        self._wake_reader()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake_reader()
        return False

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if exc is not None:
            self.error = exc
        self._wake_reader()
        drainer, self._drainer = self._drainer, None
        if drainer is not None and not drainer.done():
            drainer.set_result(None)

    def pause_writing(self) -> None:
        self._paused_writing = True

    def resume_writing(self) -> None:
        self._paused_writing = False
        drainer, self._drainer = self._drainer, None
        if drainer is not None and not drainer.done():
            drainer.set_result(None)

    def _wake_reader(self) -> None:
        reader, self._reader = self._reader, None
        if reader is not None and not reader.done():
            reader.set_result(None)

    async def read(self, max_bytes: int, timeout: float | None) -> bytes:
        if not self.buffer and not self.eof:
            loop = asyncio.get_running_loop()
            reader = self._reader = loop.create_future()
            handle = loop.call_later(timeout, _expire, reader) if timeout is not None else None
            try:
                await reader
            except TimeoutError:
                raise httpcore.ReadTimeout("read timed out") from None
            finally:
                self._reader = None
                if handle is not None:
                    handle.cancel()
        buffer = self.buffer
        if buffer:
            if len(buffer) <= max_bytes:
                data = bytes(buffer)
                buffer.clear()
            else:
                data = bytes(buffer[:max_bytes])
                del buffer[:max_bytes]
            if self._paused_reading and len(buffer) <= self._HIGH_WATER // 4 and self.transport is not None:
                self._paused_reading = False
                self.transport.resume_reading()
            return data
        if self.error is not None:
            raise httpcore.ReadError(f"connection lost: {self.error!r}")
        return b""

    async def drain(self, timeout: float | None) -> None:
        if self.transport is None or self.transport.is_closing():
            raise httpcore.WriteError(f"connection lost: {self.error!r}")
        if not self._paused_writing:
            return
        loop = asyncio.get_running_loop()
        drainer = self._drainer = loop.create_future()
        handle = loop.call_later(timeout, _expire, drainer) if timeout is not None else None
        try:
            await drainer
        except TimeoutError:
            raise httpcore.WriteTimeout("write timed out") from None
        finally:
            if handle is not None:
                handle.cancel()
        if self.transport.is_closing():
            raise httpcore.WriteError(f"connection lost: {self.error!r}")


def _expire(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_exception(TimeoutError())


class _AsyncioStream(httpcore.AsyncNetworkStream):
    """An httpcore network stream on a plain asyncio transport (what the loop gives natively)."""

    def __init__(self, transport: asyncio.Transport, protocol: _StreamProtocol) -> None:
        self._transport = transport
        self._protocol = protocol

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._protocol.read(max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        if not buffer:
            return
        if self._transport.is_closing():
            raise httpcore.WriteError("connection closed")
        try:
            self._transport.write(buffer)
        except (OSError, RuntimeError) as exc:
            raise httpcore.WriteError(repr(exc)) from exc
        await self._protocol.drain(timeout)

    async def aclose(self) -> None:
        transport = self._transport
        if transport.is_closing():
            return
        if transport.get_write_buffer_size():
            transport.abort()  # close() would wait to flush to a peer that may never read
        else:
            transport.close()

    async def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        try:
            transport = await loop.start_tls(
                self._transport,
                self._protocol,
                ssl_context,
                server_hostname=server_hostname,
                ssl_handshake_timeout=timeout,
            )
        except TimeoutError as exc:
            self._transport.abort()
            raise httpcore.ConnectTimeout("TLS handshake timed out") from exc
        except (OSError, ssl.SSLError, ConnectionError) as exc:
            self._transport.abort()
            raise httpcore.ConnectError(repr(exc)) from exc
        if transport is None:
            raise httpcore.ConnectError("TLS upgrade failed")
        self._protocol.transport = transport
        return _AsyncioStream(transport, self._protocol)

    def get_extra_info(self, info: str) -> object:
        if info == "is_readable":
            # Data or EOF on an idle connection means the server closed it; the
            # loop has already told the protocol, so no poll syscall is needed.
            protocol = self._protocol
            return bool(protocol.buffer) or protocol.eof
        if info == "ssl_object":
            return self._transport.get_extra_info("ssl_object")
        if info == "client_addr":
            return self._transport.get_extra_info("sockname")
        if info == "server_addr":
            return self._transport.get_extra_info("peername")
        if info == "socket":
            return self._transport.get_extra_info("socket")
        return None


class _AsyncioBackend(httpcore.AsyncNetworkBackend):
    """httpcore's network layer on asyncio transports instead of anyio streams.

    anyio's per-read cancel scopes were the largest single cost in a profile of
    the httpx client at 64 concurrent requests; timeouts here are one
    ``call_later`` per wait.

    With a ``guard`` the host is resolved here and every address checked
    before connecting to the checked addresses themselves (resolve, check,
    connect: no second lookup a rebinding DNS server could answer
    differently). TLS still verifies the origin's name: httpcore starts TLS
    with the origin host as ``server_hostname``.
    """

    def __init__(self, guard: AddressGuard | None = None) -> None:
        self._guard = guard

    async def _guarded_addresses(self, host: str, port: int) -> list[tuple[int, str]]:
        assert self._guard is not None
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (OSError, UnicodeError) as exc:
            raise httpcore.ConnectError(repr(exc)) from exc
        addresses: list[tuple[int, str]] = []
        for family, _, _, _, sockaddr in infos:
            reason = self._guard.refusal(sockaddr[0], port)
            if reason is not None:
                raise _Forbidden(f"refused to connect to {host}: {reason}")
            if (family, sockaddr[0]) not in addresses:
                addresses.append((family, sockaddr[0]))
        return addresses

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        loop = asyncio.get_running_loop()
        local = (local_address, 0) if local_address else None
        try:
            async with asyncio.timeout(timeout):
                if self._guard is None:
                    transport, protocol = await loop.create_connection(_StreamProtocol, host, port, local_addr=local)
                else:
                    transport, protocol = await self._connect_checked(host, port, local)
        except TimeoutError as exc:
            raise httpcore.ConnectTimeout(f"connect to {host}:{port} timed out") from exc
        except OSError as exc:
            raise httpcore.ConnectError(repr(exc)) from exc
        for option in socket_options or ():
            transport.get_extra_info("socket").setsockopt(*option)
        return _AsyncioStream(transport, protocol)

    async def _connect_checked(
        self, host: str, port: int, local: tuple[str, int] | None
    ) -> tuple[asyncio.Transport, _StreamProtocol]:
        loop = asyncio.get_running_loop()
        last: OSError | None = None
        for family, ip in await self._guarded_addresses(host, port):
            try:
                return await loop.create_connection(  # type: ignore[return-value]
                    _StreamProtocol, ip, port, family=family, local_addr=local
                )
            except OSError as exc:
                last = exc
        raise last or OSError(f"no address to connect to for {host}")

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise httpcore.UnsupportedProtocol("unix sockets are not supported")

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


class _ConnectionPool:
    """Per-origin LIFO stacks of idle HTTP/1.1 connections, at most ``max_connections`` open.

    A connection is checked out for one exchange and given back by ``release``
    once its response is closed: kept if httpcore left it idle (response read to
    the end) and there is room among ``max_keepalive`` idle ones, closed
    otherwise. Idle connections older than ``keepalive_expiry`` are closed when
    met. When every slot is taken, an idle connection of another origin is
    closed to make room, or the request waits (bounded by the connect timeout).
    """

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive: int,
        keepalive_expiry: float,
        guard: AddressGuard | None = None,
    ) -> None:
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        self._idle: dict[str, deque[tuple[httpcore.AsyncHTTPConnection, float]]] = {}
        self._idle_count = 0
        self._open = 0
        self._waiters: deque[asyncio.Future[None]] = deque()
        self._backend = _AsyncioBackend(guard)
        self._ssl_context: ssl.SSLContext | None = None
        self._closed = False

    async def acquire(self, key: str, origin: httpcore.Origin, connect_timeout: float) -> httpcore.AsyncHTTPConnection:
        conn = await self._pop_idle(key)
        if conn is not None:
            return conn
        if self._open >= self._max_connections:
            try:
                async with asyncio.timeout(connect_timeout):
                    while self._open >= self._max_connections:
                        if self._idle.get(key):
                            conn = await self._pop_idle(key)
                            if conn is not None:
                                return conn
                        elif self._idle_count:
                            await self._close(self._oldest_idle())
                        else:
                            await self._wait_for_slot()
            except TimeoutError:
                raise httpcore.PoolTimeout("no free connection slot") from None
        self._open += 1
        ssl_context = None
        if origin.scheme == b"https":
            if self._ssl_context is None:
                self._ssl_context = ssl.create_default_context()
            ssl_context = self._ssl_context
        return httpcore.AsyncHTTPConnection(
            origin,
            ssl_context=ssl_context,
            keepalive_expiry=self._keepalive_expiry,
            http1=True,
            http2=False,
            retries=0,
            network_backend=self._backend,
        )

    async def _pop_idle(self, key: str) -> httpcore.AsyncHTTPConnection | None:
        idle = self._idle.get(key)
        if idle:
            now = time.monotonic()
            while idle:
                conn, since = idle.pop()
                self._idle_count -= 1
                if now - since < self._keepalive_expiry and conn.is_available() and not conn.has_expired():
                    return conn
                await self._close(conn)
        return None

    async def _wait_for_slot(self) -> None:
        """Wait until a connection is closed or returned idle."""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter in self._waiters:
                self._waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self._wake_one()  # woken but leaving: pass the wake-up on
            raise

    def _oldest_idle(self) -> httpcore.AsyncHTTPConnection:
        oldest: tuple[str, float] | None = None
        for key, stack in self._idle.items():
            if stack and (oldest is None or stack[0][1] < oldest[1]):
                oldest = (key, stack[0][1])
        assert oldest is not None
        conn, _ = self._idle[oldest[0]].popleft()
        self._idle_count -= 1
        return conn

    async def release(self, conn: httpcore.AsyncHTTPConnection, key: str) -> None:
        if self._closed or not conn.is_available() or self._idle_count >= self._max_keepalive:
            await self._close(conn)
            return
        now = time.monotonic()
        stack = self._idle.get(key)
        if stack is None:
            stack = self._idle[key] = deque()
        while stack and now - stack[0][1] >= self._keepalive_expiry:
            old, _ = stack.popleft()
            self._idle_count -= 1
            await self._close(old)
        stack.append((conn, now))
        self._idle_count += 1
        self._wake_one()

    async def _close(self, conn: httpcore.AsyncHTTPConnection) -> None:
        self._open -= 1
        self._wake_one()
        with contextlib.suppress(httpcore.NetworkError, OSError):
            await conn.aclose()

    def _wake_one(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    async def aclose(self) -> None:
        self._closed = True
        stacks, self._idle = self._idle, {}
        self._idle_count = 0
        for stack in stacks.values():
            for conn, _ in stack:
                await self._close(conn)


class HttpxResponse:
    __slots__ = ("_closed", "_conn", "_done", "_key", "_no_body", "_pool", "_resp", "headers", "http_version", "status")

    def __init__(
        self,
        resp: httpcore.Response,
        no_body: bool,
        pool: _ConnectionPool,
        conn: httpcore.AsyncHTTPConnection,
        key: str,
    ) -> None:
        self._resp = resp
        self._pool = pool
        self._conn = conn
        self._key = key
        self._done = False
        self._closed = False
        self._no_body = no_body
        self.status = resp.status
        self.headers = [(name.lower(), value) for name, value in resp.headers]
        version: bytes = resp.extensions.get("http_version", b"HTTP/1.1")
        self.http_version = version.decode("ascii").removeprefix("HTTP/")

    async def iter_body(self) -> AsyncIterator[bytes]:
        try:
            async for chunk in self._resp.aiter_stream():
                if chunk:
                    yield chunk
        except _ERRORS as exc:
            raise _map_error(exc, response_started=True) from exc
        self._done = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            if not self._done and self._no_body:
                # Lets h11 reach DONE (no network read) so the connection is reused.
                async for _ in self._resp.aiter_stream():
                    pass
            await self._resp.aclose()
        except _ERRORS:
            await self._resp.aclose()
        finally:
            await self._pool.release(self._conn, self._key)


class HttpxUpstreamClient:
    name = "httpx"

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive: int,
        keepalive_expiry: float,
        guard: AddressGuard | None = None,
    ) -> None:
        self._guard = guard
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        self._pool: _ConnectionPool | None = None
        self._origins: dict[str, tuple[httpcore.Origin, bytes]] = {}
        self._extensions: dict[Timeouts, dict[str, dict[str, float]]] = {}

    def _origin(self, origin: str) -> tuple[httpcore.Origin, bytes]:
        parts = self._origins.get(origin)
        if parts is None:
            scheme, host, port = split_origin(origin)
            default = 443 if scheme == "https" else 80
            host_header = host if ":" not in host else f"[{host}]"
            if port != default:
                host_header = f"{host_header}:{port}"
            parts = (httpcore.Origin(scheme.encode(), host.encode("idna"), port), host_header.encode("idna"))
            if len(self._origins) < 4096:
                self._origins[origin] = parts
        return parts

    def _timeout_extensions(self, timeouts: Timeouts) -> dict[str, dict[str, float]]:
        ext = self._extensions.get(timeouts)
        if ext is None:
            ext = {
                "timeout": {
                    "connect": timeouts.connect,
                    "pool": timeouts.connect,
                    "read": timeouts.read,
                    "write": timeouts.write,
                }
            }
            if len(self._extensions) < 1024:
                self._extensions[timeouts] = ext
        return ext

    async def request(
        self,
        *,
        method: str,
        origin: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: RequestBody,
        timeouts: Timeouts,
    ) -> HttpxResponse:
        pool = self._pool
        if pool is None:
            pool = self._pool = _ConnectionPool(
                max_connections=self._max_connections,
                max_keepalive=self._max_keepalive,
                keepalive_expiry=self._keepalive_expiry,
                guard=self._guard,
            )
        parsed_origin, host_header = self._origin(origin)
        out_headers, has_host, streamed = request_framing(headers, body)
        if not has_host:
            out_headers.insert(0, (b"Host", host_header))
        content: bytes | AsyncIterator[bytes]
        if streamed:
            content = body  # type: ignore[assignment]
            if not any(name.lower() == b"content-length" for name, _ in out_headers):
                out_headers.append(_CHUNKED)
        else:
            content = bytes(body) if body else b""  # type: ignore[arg-type]
        req = httpcore.Request(
            method=method.encode("ascii"),
            url=httpcore.URL(
                scheme=parsed_origin.scheme, host=parsed_origin.host, port=parsed_origin.port, target=target
            ),
            headers=out_headers,
            content=content,
            extensions=self._timeout_extensions(timeouts),
        )
        try:
            conn = await pool.acquire(origin, parsed_origin, timeouts.connect)
        except _ERRORS as exc:
            raise _map_error(exc, response_started=False) from exc
        try:
            resp = await conn.handle_async_request(req)
        except BaseException as exc:
            await pool.release(conn, origin)
            if isinstance(exc, _ERRORS):
                raise _map_error(exc, response_started=False) from exc
            raise
        return HttpxResponse(resp, method == "HEAD" or resp.status in NO_BODY_STATUSES, pool, conn, origin)

    async def aclose(self) -> None:
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.aclose()
