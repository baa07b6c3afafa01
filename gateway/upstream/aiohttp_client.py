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
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
from aiohttp.client_proto import ResponseHandler
from aiohttp.client_reqrep import ClientRequest
from aiohttp.connector import Connection
from yarl import URL

from gateway.upstream.base import (
    NO_BODY_STATUSES,
    RequestBody,
    Timeouts,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamTimeout,
)

_SKIP_AUTO_HEADERS = ("User-Agent", "Accept", "Accept-Encoding", "Content-Type")
_BYTES_STREAM_THRESHOLD = 256 * 1024
_BYTES_SLICE = 64 * 1024
_MAX_LINE = 65536


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
    if isinstance(exc, aiohttp.ClientConnectorError):
        return UpstreamConnectError(f"connect failed: {exc}")
    if isinstance(exc, TimeoutError):  # SocketTimeoutError and plain timeouts
        return UpstreamTimeout(f"read timeout: {exc}", phase="read", request_sent=True)
    where = "reading the response body" if response_started else "waiting for the response"
    return UpstreamProtocolError(f"upstream failed while {where}: {exc!r}")


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

    def __init__(self, *, max_connections: int, max_keepalive: int, keepalive_expiry: float) -> None:
        # aiohttp has no separate idle cap: idle connections are bounded by
        # max_connections and expire after keepalive_expiry.
        self._max_connections = max_connections
        self._max_keepalive = max_keepalive
        self._keepalive_expiry = keepalive_expiry
        self._session: aiohttp.ClientSession | None = None
        self._timeouts: dict[Timeouts, aiohttp.ClientTimeout] = {}

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self._max_connections,
            limit_per_host=0,
            keepalive_timeout=self._keepalive_expiry,
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
    ) -> AiohttpResponse:
        session = self._session
        if session is None:
            session = self._session = self._new_session()
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
            await session.close()
