"""The aiohttp implementation of ``UpstreamClient``.

One ``ClientSession`` per client, created lazily inside the running loop, set
up so that it behaves as a transparent HTTP/1.1 client:

* ``DummyCookieJar``, ``trust_env=False``, ``auto_decompress=False``,
  ``allow_redirects=False``.
* ``skip_auto_headers`` covers User-Agent, Accept, Accept-Encoding and
  Content-Type; ``_TransparentRequest`` stops aiohttp adding
  ``Content-Length: 0`` to bodiless requests of body-carrying methods.
* URLs are built with ``yarl.URL(..., encoded=True)``; without it aiohttp
  turns ``%2F`` into ``/`` and re-quotes the query.
* Header values are handed to aiohttp as UTF-8-decoded text (latin-1 if not UTF-8);
  it re-encodes them as UTF-8, so only non-UTF-8 obs-text bytes change.
* aiohttp has no write timeout. ``_BodyPump`` measures how long aiohttp takes
  to come back for the next chunk (that is the time the previous chunk spent
  being written) and, past ``timeouts.write``, aborts the exchange and
  reports ``UpstreamTimeout(phase="write")``.
* ``sock_read`` is aiohttp's read timeout; it starts once the request body
  has been written and is re-armed by every read, which is our ``read``.

Fast path. ``ClientSession._request`` does a lot per request that a transparent
proxy never needs (cookie jar, redirects, auth, proxies, traces, middlewares, a
``TimeoutHandle``, a ``CIMultiDict`` of headers, ``ClientRequest`` and
``ClientResponse`` objects with their ``request_info``); under load that was
about a fifth of a gateway worker's CPU. Requests with no body or a small bytes
body, an ASCII origin-form target and ASCII headers (nearly all traffic) skip
it: the same ``TCPConnector`` hands out the connection (``connect`` with a
per-origin probe request, so pooling, limits, keep-alive expiry and the connect
timeout are aiohttp's), the head and body go out in one ``transport.write``, and
the protocol's own parser, ``sock_read`` timer and ``StreamReader`` deliver the
response. The bytes on the wire are what the session would have sent (Host
first when derived, the same control-character checks, a bare ``?`` dropped as
yarl does) with one difference the contract asks for: a caller's ``Host`` keeps
its position (the session moved it to the front). aiohttp's one retry of an
idempotent request on a dead keep-alive connection is kept, and a small body
the socket will not take within ``timeouts.write`` is a write timeout.
Everything else (streamed or large bodies, non-ASCII targets or headers,
targets yarl would alter) still goes through the session. The fast path leans
on aiohttp internals (``ResponseHandler.set_response_params``/``read``,
``_drain_helper``, ``TCPConnector.connect``), which is why aiohttp is pinned
and the conformance suite runs both paths.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.client_exceptions import ClientConnectionResetError, ServerDisconnectedError
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest, ConnectionKey
from aiohttp.connector import Connection
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.streams import EofStream, StreamReader
from yarl import URL

from apim.target_addresses import AddressGuard, ForbiddenAddress
from gateway.upstream.base import (
    NO_BODY_STATUSES,
    RequestBody,
    Timeouts,
    UpstreamConnectError,
    UpstreamError,
    UpstreamForbidden,
    UpstreamProtocolError,
    UpstreamTimeout,
)

_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
_BYTES_STREAM_THRESHOLD = 256 * 1024
_BYTES_SLICE = 64 * 1024
_MAX_LINE = 65536
_MAX_HEADERS = 128
_READ_BUFSIZE = 2**16
_MAX_ORIGINS = 1024
# aiohttp's retry of a request sent on a keep-alive connection the upstream had closed.
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"})
# What aiohttp's header serialiser refuses (control characters but HTAB); CR and LF are
# counted separately because the head legitimately contains one CRLF per line.
_FORBIDDEN_IN_HEAD = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
# Targets yarl would alter (fragment, spaces, control characters): left to the session path.
_UNUSUAL_TARGET = re.compile(rb"[\x00-\x20\x7f#]")


class GuardedTCPConnector(aiohttp.TCPConnector):
    """A ``TCPConnector`` that refuses to connect where ``guard`` says no (SSRF, DNS rebinding).

    The check wraps ``_resolve_host``, which the connector calls once per new
    connection (IP literals included: aiohttp skips the resolver for those, so
    a resolver wrapper alone would miss ``http://169.254.169.254``). Pooled
    connections never get here. The refusal is an ``OSError``, which aiohttp
    reports as ``ClientConnectorDNSError`` before anything is sent.
    """

    def __init__(self, *, guard: AddressGuard, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._apim_guard = guard

    async def _resolve_host(self, host: str, port: int, traces: Any = None) -> list[Any]:
        hosts = await super()._resolve_host(host, port, traces=traces)
        for resolved in hosts:
            reason = self._apim_guard.refusal(resolved["host"], resolved["port"])
            if reason is not None:
                raise ForbiddenAddress(f"refused to connect to {host}: {reason}")
        return hosts


def _forbidden(exc: BaseException) -> ForbiddenAddress | None:
    if isinstance(exc, aiohttp.ClientConnectorError) and isinstance(exc.os_error, ForbiddenAddress):
        return exc.os_error
    return exc if isinstance(exc, ForbiddenAddress) else None


def forbidden_connect(exc: BaseException) -> bool:
    """Whether ``exc`` is a connect refused by ``GuardedTCPConnector`` (for the WebSocket proxy)."""
    return _forbidden(exc) is not None


class _TransparentRequest(ClientRequest):
    """aiohttp's request, minus two things a transparent proxy cannot have.

    No ``Content-Length: 0`` on bodiless requests of body-carrying methods, and
    a streamed body's ``_BodyPump`` learns the connection it is written to, so
    that a write stall can abort exactly that socket.
    """

    _apim_pump: _BodyPump | None = None

    def update_body_from_data(self, body: Any, _stacklevel: int = 3) -> None:
        if body is None:
            self._body = None
            return
        if isinstance(body, _BodyPump):
            self._apim_pump = body
        super().update_body_from_data(body, _stacklevel=_stacklevel + 1)

    async def send(self, conn: Connection) -> aiohttp.ClientResponse:
        if self._apim_pump is not None:
            self._apim_pump.protocol = conn.protocol
        return await super().send(conn)


class _BodyPump:
    """Wraps the caller's body: keeps its exceptions and enforces the write deadline.

    The deadline is armed when a chunk is handed to aiohttp and disarmed when
    aiohttp asks for the next one, so only time spent writing counts (not time
    spent waiting on the caller's source). On expiry the transport is aborted
    (``close()`` would wait forever to flush to a peer that does not read).
    """

    __slots__ = ("_handle", "_source", "_write_timeout", "error", "protocol", "timed_out")

    def __init__(self, source: AsyncIterator[bytes], write_timeout: float) -> None:
        self._source = source
        self._write_timeout = write_timeout
        self._handle: asyncio.TimerHandle | None = None
        self.error: BaseException | None = None
        self.timed_out = False
        self.protocol: ResponseHandler | None = None

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self._stream()

    async def _stream(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            async for chunk in self._source:
                if not chunk:
                    continue
                self._handle = loop.call_later(self._write_timeout, self._stalled)
                yield bytes(chunk)
                self.disarm()
        except Exception as exc:
            # aiohttp would wrap this in a ClientConnectionError; keep the original.
            self.error = exc
            raise
        finally:
            self.disarm()

    def disarm(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _stalled(self) -> None:
        self._handle = None
        self.timed_out = True
        protocol = self.protocol
        if protocol is not None and protocol.transport is not None:
            protocol.transport.abort()


async def _slices(body: bytes) -> AsyncIterator[bytes]:
    view = memoryview(body)
    for start in range(0, len(view), _BYTES_SLICE):
        yield view[start : start + _BYTES_SLICE]  # type: ignore[misc]


def _map_error(exc: BaseException, *, pump: _BodyPump | None, response_started: bool) -> BaseException:
    """Translate an aiohttp/OS exception into the interface's error classes."""
    if pump is not None:
        if pump.error is not None:
            return pump.error
        if pump.timed_out:
            return UpstreamTimeout("timed out writing the request body", phase="write", request_sent=True)
    if isinstance(exc, aiohttp.ConnectionTimeoutError):
        return UpstreamTimeout(f"connect timeout: {exc}", phase="connect", request_sent=False)
    forbidden = _forbidden(exc)
    if forbidden is not None:
        return UpstreamForbidden(str(forbidden))
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError(f"connect failed: {exc}")
    if isinstance(exc, TimeoutError):  # SocketTimeoutError and plain timeouts
        return UpstreamTimeout(f"read timeout: {exc}", phase="read", request_sent=True)
    where = "reading the response body" if response_started else "waiting for the response"
    return UpstreamProtocolError(f"upstream failed while {where}: {exc!r}")


_TOKEN = re.compile(r"[-!#$%&'*+.^_`|~0-9a-zA-Z]+")
_METHODS: dict[str, bytes] = {}
_FRAMING_NAMES = frozenset({b"transfer-encoding", b"host", b"content-length"})


def _method_token(method: str) -> bytes | None:
    """The method as it goes on the wire (upper-cased, as aiohttp does), or None if not a token."""
    if not _TOKEN.fullmatch(method):
        return None  # the session path raises aiohttp's error for it
    verb = method.upper().encode("ascii")
    if len(_METHODS) < 64:
        _METHODS[method] = verb
    return verb


def _fast_request_bytes(
    verb: bytes, where: _Origin, target: bytes, headers: list[tuple[bytes, bytes]], body: bytes | None
) -> bytes | None:
    """Head and body of a fast-path request, exactly as the session would frame them.

    None when the request must take the session path instead: a target that
    is not ASCII origin-form or that yarl would alter (fragment, whitespace,
    control characters), or non-ASCII header bytes (aiohttp re-encodes those);
    there the session keeps its established behaviour.
    """
    if not target.startswith(b"/") or not target.isascii() or _UNUSUAL_TARGET.search(target) is not None:
        return None
    if target.endswith(b"?") and target.index(b"?") == len(target) - 1:
        target = target[:-1]  # yarl drops an empty query
    parts = [verb, b" ", target, b" HTTP/1.1\r\n", b""]  # [4]: the derived Host line, if any
    lines = 2  # the request line and the blank line
    has_host = False
    length: bytes | None = None
    for name, value in headers:
        lower = name.lower()
        if lower in _FRAMING_NAMES:
            if lower == b"transfer-encoding":
                continue
            if lower == b"host":
                has_host = True
            elif length is None:
                length = value  # aiohttp reads the first Content-Length
        parts += (name, b": ", value, b"\r\n")
        lines += 1
    if not has_host:
        parts[4] = where.host_line
        lines += 1
    if body:
        if length is None:
            parts += (b"Content-Length: ", str(len(body)).encode(), b"\r\n")
            lines += 1
        elif not length.isdigit():
            raise UpstreamProtocolError(f"invalid exchange: invalid Content-Length header: {length!r}")
        else:
            body = body[: int(length)]  # aiohttp never sends more than the declared length
    parts.append(b"\r\n")
    head = b"".join(parts)
    if not head.isascii():
        return None
    # What aiohttp's serialiser refuses: a CR or LF inside a line, or another control character.
    if head.count(b"\n") != lines or head.count(b"\r") != lines or _FORBIDDEN_IN_HEAD.search(head) is not None:
        raise UpstreamProtocolError("invalid exchange: forbidden control character in the request head")
    return head + body if body else head  # one transport.write for head and body


async def _drain(protocol: ResponseHandler, write_timeout: float) -> None:
    """Wait for the socket to take a paused write, at most ``write_timeout`` seconds."""
    try:
        async with asyncio.timeout(write_timeout):
            await protocol._drain_helper()
    except TimeoutError:
        raise UpstreamTimeout("timed out writing the request", phase="write", request_sent=True) from None


class _OriginProbe(ClientRequest):
    """The request ``TCPConnector.connect`` sees on the fast path, one per origin.

    The connector only reads the connection key, the proxy and (for a new
    connection) host, port and TLS settings from it, so one instance built at
    first use serves every request to that origin. The key is computed once
    instead of by the property on every ``connect``.
    """

    connection_key: ConnectionKey = None  # type: ignore[assignment]  # shadows the property


class _Origin:
    """Per-origin constants of the fast path: the probe and the derived Host line."""

    __slots__ = ("host_line", "probe")

    def __init__(self, origin: str, loop: asyncio.AbstractEventLoop) -> None:
        url = URL(origin, encoded=True)
        probe = _OriginProbe("GET", url, loop=loop)
        probe.connection_key = ClientRequest.connection_key.fget(probe)  # type: ignore[attr-defined]
        self.probe = probe
        host = url.host_port_subcomponent
        assert host is not None
        self.host_line = b"Host: " + host.encode("ascii") + b"\r\n"


class _FastResponse:
    """A response read straight from aiohttp's protocol, without a ``ClientResponse``."""

    __slots__ = ("_closed", "_conn", "_done", "_no_body", "_payload", "headers", "http_version", "status")

    def __init__(self, conn: Connection, message: Any, payload: StreamReader, no_body: bool) -> None:
        self._conn = conn
        self._payload = payload
        self._done = False
        self._closed = False
        self._no_body = no_body
        self.status: int = message.code
        self.headers = [(name.lower(), value) for name, value in message.raw_headers]
        version = message.version
        self.http_version = "1.1" if version == (1, 1) else f"{version[0]}.{version[1]}"

    async def iter_body(self) -> AsyncIterator[bytes]:
        payload = self._payload
        try:
            while True:
                chunk = await payload.readany()
                if not chunk:
                    break
                yield chunk
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _map_error(exc, pump=None, response_started=True) from exc
        self._done = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        payload = self._payload
        # release() still closes it when the protocol says so (Connection: close, leftovers).
        if self._done or self._no_body or (payload.at_eof() and payload.exception() is None):
            self._conn.release()
        else:
            self._conn.close()


class AiohttpResponse:
    __slots__ = ("_closed", "_done", "_no_body", "_pump", "_resp", "headers", "http_version", "status")

    def __init__(self, resp: aiohttp.ClientResponse, pump: _BodyPump | None, no_body: bool) -> None:
        self._resp = resp
        self._pump = pump
        self._done = False
        self._closed = False
        self._no_body = no_body
        self.status = resp.status
        self.headers = [(name.lower(), value) for name, value in resp.raw_headers]
        version = resp.version
        self.http_version = f"{version.major}.{version.minor}" if version is not None else "1.1"

    async def iter_body(self) -> AsyncIterator[bytes]:
        content = self._resp.content
        try:
            while True:
                chunk = await content.readany()
                if not chunk:
                    break
                yield chunk
        except UpstreamError:
            raise
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _map_error(exc, pump=self._pump, response_started=True) from exc
        self._done = True

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._pump is not None:
            self._pump.protocol = None
        resp = self._resp
        if self._done or self._no_body or (resp.content.at_eof() and resp.content.exception() is None):
            resp.release()
        else:
            resp.close()


class AiohttpUpstreamClient:
    name = "aiohttp"

    def __init__(
        self,
        *,
        max_connections: int,
        max_keepalive: int,
        keepalive_expiry: float,
        guard: AddressGuard | None = None,
    ) -> None:
        # aiohttp has no separate idle cap: idle connections are bounded by
        # max_connections and expire after keepalive_expiry.
        self._guard = guard
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}
        self._origins: dict[str, _Origin] = {}

    def _new_session(self) -> aiohttp.ClientSession:
        options: dict[str, Any] = {
            "limit": self._max_connections,
            "limit_per_host": 0,
            "keepalive_timeout": self._keepalive_expiry,
        }
        connector = (
            aiohttp.TCPConnector(**options)
            if self._guard is None
            else GuardedTCPConnector(guard=self._guard, **options)
        )
        return aiohttp.ClientSession(
            connector=connector,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=_SKIP_AUTO_HEADERS,
            auto_decompress=False,
            trust_env=False,
            request_class=_TransparentRequest,
            timeout=aiohttp.ClientTimeout(total=None),
            max_line_size=_MAX_LINE,
            max_field_size=_MAX_LINE,
            max_headers=_MAX_HEADERS,
            read_bufsize=_READ_BUFSIZE,
        )

    def _client_timeout(self, timeouts: Timeouts) -> aiohttp.ClientTimeout:
        cached = self._timeouts.get(timeouts)
        if cached is None:
            cached = aiohttp.ClientTimeout(
                total=None, connect=timeouts.connect, sock_connect=timeouts.connect, sock_read=timeouts.read
            )
            if len(self._timeouts) < 1024:
                self._timeouts[timeouts] = cached
        return cached

    async def request(
        self,
        *,
        method: str,
        origin: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: RequestBody,
        timeouts: Timeouts,
    ) -> AiohttpResponse | _FastResponse:
        session = self._session
        if session is None:
            session = self._session = self._new_session()
        if body is None or (isinstance(body, bytes | bytearray | memoryview) and len(body) <= _BYTES_STREAM_THRESHOLD):
            verb = _METHODS.get(method) or _method_token(method)
            if verb is not None:
                where = self._origins.get(origin) or self._origin(origin, session)
                if where is not None:
                    data = _fast_request_bytes(verb, where, target, headers, body)
                    if data is not None:
                        return await self._fast(session, where, verb, data, timeouts)
        return await self._via_session(session, method, origin, target, headers, body, timeouts)

    def _origin(self, origin: str, session: aiohttp.ClientSession) -> _Origin | None:
        try:
            where = _Origin(origin, asyncio.get_running_loop())
        except ValueError:
            return None  # the session path reports it as it always has
        if len(self._origins) < _MAX_ORIGINS:
            self._origins[origin] = where
        return where

    async def _fast(
        self, session: aiohttp.ClientSession, where: _Origin, verb: bytes, data: bytes, timeouts: Timeouts
    ) -> _FastResponse:
        """Send ``data`` (head and body) on a pooled connection and wait for the response head.

        Mirrors ``ClientSession._request`` for this case: connect errors are not
        retried; an idempotent request that meets a closed keep-alive connection
        is sent once more on another one; anything else closes the connection.
        """
        connector: aiohttp.TCPConnector = session.connector  # type: ignore[assignment]
        client_timeout = self._client_timeout(timeouts)
        head_only = verb == b"HEAD"
        retry = verb in _IDEMPOTENT
        while True:
            try:
                conn = await connector.connect(where.probe, [], client_timeout)
            except TimeoutError as exc:
                raise UpstreamTimeout(f"connect timeout: {exc}", phase="connect", request_sent=False) from exc
            except (aiohttp.ClientError, OSError) as exc:
                raise _map_error(exc, pump=None, response_started=False) from exc
            protocol: ResponseHandler = conn.protocol  # type: ignore[assignment]
            try:
                protocol.set_response_params(
                    skip_payload=head_only,
                    read_until_eof=True,
                    auto_decompress=False,
                    read_timeout=timeouts.read,
                    read_bufsize=_READ_BUFSIZE,
                    timeout_ceil_threshold=connector._timeout_ceil_threshold,
                    max_line_size=_MAX_LINE,
                    max_field_size=_MAX_LINE,
                    max_headers=_MAX_HEADERS,
                )
                transport = protocol.transport
                if transport is None or transport.is_closing():
                    raise ClientConnectionResetError("Cannot write to closing transport")
                transport.write(data)
                if protocol.writing_paused:
                    await _drain(protocol, timeouts.write)
                protocol.start_timeout()  # sock_read: from the end of the request on
                while True:
                    message, payload = await protocol.read()
                    code = message.code
                    if code < 100 or code > 199 or code == 101:
                        break
            except BaseException as exc:
                conn.close()
                if retry and isinstance(exc, aiohttp.ClientOSError | ServerDisconnectedError):
                    retry = False
                    continue
                if isinstance(exc, TimeoutError | aiohttp.ClientError | OSError):
                    raise _map_error(exc, pump=None, response_started=False) from exc
                if isinstance(exc, HttpProcessingError | EofStream | ValueError):
                    raise UpstreamProtocolError(f"upstream failed while waiting for the response: {exc!r}") from exc
                raise
            return _FastResponse(conn, message, payload, head_only or code in NO_BODY_STATUSES)

    async def _via_session(
        self,
        session: aiohttp.ClientSession,
        method: str,
        origin: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: RequestBody,
        timeouts: Timeouts,
    ) -> AiohttpResponse:
        """The general path: streamed or large bodies and anything unusual the fast path declines."""
        # request_framing's rules and the str conversion aiohttp needs, in one pass (hot path).
        streamed = body is not None and not isinstance(body, bytes | bytearray | memoryview)
        str_headers: list[tuple[str, str]] = []
        has_length = False
        for name, value in headers:
            lower = name.lower()
            if lower == b"transfer-encoding":
                continue
            if lower == b"content-length":
                has_length = True
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = value.decode("latin-1")
            str_headers.append((name.decode("latin-1"), text))
        if not streamed and body and not has_length:
            str_headers.append(("Content-Length", str(len(body))))  # type: ignore[arg-type]
        pump: _BodyPump | None = None
        data: Any = None
        if streamed:
            pump = _BodyPump(body, timeouts.write)  # type: ignore[arg-type]
            data = pump
        elif body:
            if len(body) > _BYTES_STREAM_THRESHOLD:  # type: ignore[arg-type]
                pump = _BodyPump(_slices(bytes(body)), timeouts.write)  # type: ignore[arg-type]
                data = pump
            else:
                data = bytes(body)  # type: ignore[arg-type]
        url = URL(origin + target.decode("latin-1"), encoded=True)
        try:
            resp = await session.request(
                method,
                url,
                headers=str_headers,
                data=data,
                allow_redirects=False,
                timeout=self._client_timeout(timeouts),
                proxy=None,
                read_until_eof=True,
                chunked=None,
            )
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise _map_error(exc, pump=pump, response_started=False) from exc
        except ValueError as exc:  # aiohttp rejects some malformed responses/URLs this way
            raise UpstreamProtocolError(f"invalid exchange: {exc}") from exc
        return AiohttpResponse(resp, pump, method == "HEAD" or resp.status in NO_BODY_STATUSES)

    async def aclose(self) -> None:
        if self._session is not None:
            session, self._session = self._session, None
            self._origins = {}
            await session.close()
