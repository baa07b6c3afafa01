"""A lean Redis client for the rate-limit hot path: one connection, pre-encoded commands, C parsing.

Why not redis-py here: the gateway asks Redis one question per request (one
``EVALSHA``), and redis-py's asyncio client spends most of that round trip's
cost in Python — command packing, connection-pool checkout, the pipeline
object, response parsing and error mapping — about a quarter of a millisecond
per request at one connection. This client does only what the limiter needs:

* **One persistent connection per client** (so per gateway worker), opened
  lazily on the event loop that uses it, re-opened after any failure. The
  limiter's circuit decides *when* to try again; this module never retries.
* **Pipelining with FIFO matching.** :meth:`RespClient.send` writes already
  encoded RESP bytes (any number of commands in one ``write``) and waits for
  that many replies; Redis answers in order, so each batch's waiter simply
  takes the next ``n`` replies. No per-command future.
* **hiredis parses** (C ``Reader``: ``feed`` / ``gets``); error replies come
  back as :class:`hiredis.ReplyError` values in their slot, so one bad command
  does not fail its neighbours (``NOSCRIPT`` is the caller's to handle).
* **Handshake** ``AUTH`` / ``SELECT`` from the URL plus the caller's own
  commands (the limiter's ``SCRIPT LOAD``), pipelined into one round trip.

What it does *not* do: TLS (``rediss://``), RESP3, Sentinel/Cluster, or the
URL options redis-py understands beyond ``db``. :func:`parse_url` raises
:class:`UnsupportedURL` for those and the limiter falls back to redis-py.

A connection whose round trip failed or timed out is never reused: its reply
stream may be out of step with its waiters. :meth:`RespClient.reset` aborts it.
The password lives only in the encoded ``AUTH`` command and in
:class:`Address` (excluded from its ``repr``); no message here contains it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import hiredis

ReplyError = hiredis.ReplyError

_MORE = object()  # hiredis' "not enough data yet" marker (a RESP2 reply is never this object)


class UnsupportedURL(ValueError):
    """The URL needs something this client does not implement (TLS, extra options): use redis-py."""


class RespConnectionError(ConnectionError):
    """The connection failed or was lost; every command in flight on it has an unknown outcome."""


@dataclass(frozen=True, slots=True)
class Address:
    """Where and as whom to connect. ``password`` is kept out of ``repr`` (logs, tracebacks)."""

    host: str = "127.0.0.1"
    port: int = 6379
    unix_path: str | None = None
    db: int = 0
    username: str | None = None
    password: str | None = field(default=None, repr=False)

    @property
    def where(self) -> str:
        """For messages: the endpoint, never the credentials."""
        return self.unix_path or f"{self.host}:{self.port}"


def parse_url(url: str) -> Address:
    """``redis://[[user]:password@]host[:port][/db]`` or ``unix:///path[?db=N]``, as redis-py reads them.

    Raises :class:`UnsupportedURL` (message without credentials) for ``rediss://`` and for query
    options other than ``db``: the caller then keeps redis-py, which implements all of them.
    """
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme == "rediss":
        raise UnsupportedURL("rediss:// (TLS) is not supported by the lean limiter client")
    if scheme not in ("redis", "unix"):
        raise UnsupportedURL(f"unsupported scheme {scheme!r} for the lean limiter client")
    query = parse_qs(parts.query)
    extra = sorted(set(query) - {"db"})
    if extra:
        raise UnsupportedURL(f"URL options {extra} are not supported by the lean limiter client")
    db = 0
    if "db" in query:
        db = int(query["db"][0])
    elif scheme == "redis" and parts.path not in ("", "/"):
        db = int(parts.path.lstrip("/"))
    username = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password else None
    if scheme == "unix":
        if not parts.path:
            raise UnsupportedURL("unix:// URL without a socket path")
        return Address(unix_path=unquote(parts.path), db=db, username=username, password=password)
    return Address(
        host=parts.hostname or "localhost", port=parts.port or 6379, db=db, username=username, password=password
    )


def pack(*args: str | bytes | int) -> bytes:
    """One command as a RESP array (for rare commands; the hot path encodes its own)."""
    return hiredis.pack_command(args)  # type: ignore[no-any-return]


class _Batch:
    """A waiter for the next ``n`` replies on the connection (FIFO)."""

    __slots__ = ("future", "n", "replies")

    def __init__(self, n: int, future: asyncio.Future[list[Any]]) -> None:
        self.n = n
        self.replies: list[Any] = []
        self.future = future


class _Connection(asyncio.Protocol):
    """One socket: writes bytes, hands replies to waiters in order, fails them all when it dies."""

    def __init__(self, loop: asyncio.AbstractEventLoop, where: str) -> None:
        self.loop = loop
        self.where = where
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(notEnoughData=_MORE)
        self.waiters: collections.deque[_Batch] = collections.deque()
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        reader = self.reader
        reader.feed(data)
        waiters = self.waiters
        try:
            while (reply := reader.gets()) is not _MORE:
                batch = waiters[0]  # IndexError: a reply nobody asked for — the stream is broken
                batch.replies.append(reply)
                if len(batch.replies) == batch.n:
                    waiters.popleft()
                    if not batch.future.done():
                        batch.future.set_result(batch.replies)
        except (hiredis.ProtocolError, IndexError) as exc:
            self._fail(RespConnectionError(f"redis {self.where}: protocol out of step ({type(exc).__name__})"))

    def eof_received(self) -> bool:
        return False  # close the transport; connection_lost fails the waiters

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(RespConnectionError(f"redis {self.where}: connection lost"))

    def _fail(self, error: Exception) -> None:
        self.closed = True
        if self.transport is not None:
            self.transport.abort()
        while self.waiters:
            batch = self.waiters.popleft()
            if not batch.future.done():
                batch.future.set_exception(error)

    def send(self, payload: bytes, n: int) -> asyncio.Future[list[Any]]:
        future: asyncio.Future[list[Any]] = self.loop.create_future()
        if self.closed or self.transport is None or self.transport.is_closing():
            self.closed = True
            future.set_exception(RespConnectionError(f"redis {self.where}: connection closed"))
            return future
        self.waiters.append(_Batch(n, future))
        self.transport.write(payload)
        return future

    def abort(self) -> None:
        self._fail(RespConnectionError(f"redis {self.where}: connection reset"))


class RespClient:
    """A pipelining client over one connection (re-opened lazily after a failure).

    ``on_connect``: commands sent right after ``AUTH``/``SELECT`` on every new connection
    (the limiter loads its script there, so a restarted Redis gets it before the first check).
    Callers bound the time of :meth:`send` themselves (``asyncio.timeout``) and call
    :meth:`reset` when a round trip failed or timed out.
    """

    def __init__(
        self,
        address: Address,
        *,
        connect_timeout: float = 0.5,
        on_connect: Sequence[Sequence[str | bytes | int]] = (),
    ) -> None:
        self.address = address
        self.connect_timeout = connect_timeout
        handshake: list[bytes] = []
        if address.password is not None:
            if address.username is not None:
                handshake.append(pack(b"AUTH", address.username, address.password))
            else:
                handshake.append(pack(b"AUTH", address.password))
        if address.db:
            handshake.append(pack(b"SELECT", address.db))
        handshake.extend(pack(*command) for command in on_connect)
        self._handshake = b"".join(handshake)
        self._handshake_n = len(handshake)
        self._conn: _Connection | None = None
        self._connecting: asyncio.Task[_Connection] | None = None
        self.connects = 0  # connections opened (observability; tests see reconnects)

    def __repr__(self) -> str:
        return f"<RespClient {self.address.where} db={self.address.db}>"

    async def send(self, payload: bytes, n: int, timeout: float | None = None) -> list[Any]:
        """Write ``payload`` (``n`` encoded commands) and return their ``n`` replies, in order.

        Error replies are :class:`ReplyError` values in their slot. Raises
        :class:`RespConnectionError` when the connection cannot be had or is lost, and
        ``TimeoutError`` when the replies take longer than ``timeout`` seconds (a plain timer
        on the reply future: cheaper than ``asyncio.timeout`` on a per-request path). Opening
        a connection is bounded by ``connect_timeout`` on its own.
        """
        conn = self._conn
        if conn is None or conn.closed or conn.loop is not asyncio.get_running_loop():
            conn = await self._connection()
        future = conn.send(payload, n)
        if timeout is None:
            return await future
        timer = conn.loop.call_later(timeout, _expire, future, conn.where)
        try:
            return await future
        finally:
            timer.cancel()

    async def _connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        conn = self._conn
        if conn is not None and not conn.closed and conn.loop is loop:
            return conn
        task = self._connecting
        if task is None or task.get_loop() is not loop:
            self._drop()
            # One attempt shared by concurrent callers (the non-coalescing mode); shielded so a
            # caller's timeout does not kill it half-way (it is bounded by connect_timeout anyway).
            task = self._connecting = loop.create_task(self._open(loop), name="apim-resp-connect")
            task.add_done_callback(self._opened)
        return await asyncio.shield(task)

    def _opened(self, task: asyncio.Task[_Connection]) -> None:
        if self._connecting is task:
            self._connecting = None
        if not task.cancelled() and task.exception() is None:
            self._conn = task.result()

    async def _open(self, loop: asyncio.AbstractEventLoop) -> _Connection:
        address = self.address
        where = address.where
        conn: _Connection | None = None
        try:
            # Connect and handshake under one bound: a frozen Redis accepts connections (the
            # kernel does) but never answers, and must not leave this attempt pending forever.
            async with asyncio.timeout(self.connect_timeout):
                if address.unix_path is not None:
                    _, conn = await loop.create_unix_connection(lambda: _Connection(loop, where), address.unix_path)
                else:
                    _, conn = await loop.create_connection(lambda: _Connection(loop, where), address.host, address.port)
                self.connects += 1
                replies = await conn.send(self._handshake, self._handshake_n) if self._handshake_n else []
        except BaseException as exc:
            if conn is not None:
                conn.abort()
            if isinstance(exc, TimeoutError):
                raise RespConnectionError(f"redis {where}: connect timed out") from None
            if isinstance(exc, OSError) and not isinstance(exc, RespConnectionError):
                raise RespConnectionError(
                    f"redis {where}: cannot connect ({exc.strerror or type(exc).__name__})"
                ) from None
            raise
        for reply in replies:
            if isinstance(reply, ReplyError):
                conn.abort()
                # The server's words (WRONGPASS, NOAUTH...): Redis never echoes the password.
                raise RespConnectionError(f"redis {where}: handshake refused: {reply}")
        return conn

    def _drop(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            _abort(conn)

    def reset(self) -> None:
        """Abort the current connection (its replies may be out of step); the next send reconnects."""
        self._drop()

    async def connect(self) -> None:
        """Open the connection now (and run the handshake) instead of on the first send."""
        await self._connection()

    async def aclose(self) -> None:
        task, self._connecting = self._connecting, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
        self._drop()


def _expire(future: asyncio.Future[list[Any]], where: str) -> None:
    if not future.done():
        future.set_exception(TimeoutError(f"redis {where}: no reply in time"))


def _abort(conn: _Connection) -> None:
    """Abort a connection from whichever thread: a transport may only be touched on its own loop."""
    if conn.closed or conn.loop.is_closed():
        return
    try:
        running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
    except RuntimeError:
        running = None
    if running is conn.loop or (running is None and not conn.loop.is_running()):
        with contextlib.suppress(RuntimeError):
            conn.abort()
    else:
        conn.loop.call_soon_threadsafe(conn.abort)
