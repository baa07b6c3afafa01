"""Real loopback servers for gateway tests, with every byte under the test's control.

Each server runs its own event loop in a background thread, listens on
127.0.0.1 on a free port, exposes ``.port`` / ``.origin`` and records what it
received in ``.requests`` (a list of ``ReceivedRequest``). Use them as context
managers or through the pytest fixtures at the bottom of this module; import
the fixtures into a ``conftest.py`` (``from tests.gateway.servers import
echo_server``) to use them.

HTTP servers speak hand-written HTTP/1.1 (keep-alive, Content-Length and
chunked request bodies, HEAD honoured everywhere).

EchoServer (``echo_server`` fixture) — special paths (query string ignored
unless stated):

* any other path: ``200`` with ``application/json`` describing exactly what
  arrived: ``{"method", "target" (raw request target, as on the wire),
  "http_version", "headers": [[name, value], ...] (raw, in order),
  "body_b64", "chunked", "connection" (1-based connection number),
  "request_on_connection" (1-based)}``.
* ``/set-cookies``: three ``Set-Cookie`` headers, in order ``a=1``, ``b=2``, ``c=3``.
* ``/status/<code>``: that status; 204, 304 and 1xx carry no body, others an
  empty body with ``Content-Length: 0``.
* ``/gzip``: ``GZIP_BODY`` (gzip of ``GZIP_PLAIN``) with ``Content-Encoding: gzip``.
* ``/close``: a small body with ``Connection: close``; the server then closes.
* ``/hop-by-hop``: a response carrying ``Keep-Alive``, ``Proxy-Connection``,
  ``TE``, ``Trailer``, ``Upgrade``, ``Connection: X-Hop-Custom`` and
  ``X-Hop-Custom``, plus ``X-End-To-End`` (must survive a proxy).
* ``/stream?size=N&chunk=M[&gate=NAME&gate_after=B][&chunked=1]``: ``N`` bytes
  of ``stream_pattern`` (bytes 0..255 repeating) sent in ``M``-byte writes
  (default 64 KiB, at most 1 MiB), with
  ``Content-Length`` unless ``chunked=1``. With ``gate``, the server stops
  after ``B`` bytes (default 1 MiB) until the test calls
  ``server.open_gate(NAME)``; ``server.bytes_sent(NAME)`` tells how far it got.
* ``/fixed``: a small fixed body (``FIXED_BODY``), for benchmarks.

SlowServer (``slow_server``):

* ``/delay?s=F``: waits ``F`` seconds (default ``default_delay``) before the
  status line, then answers 200 ``b"late"``.
* ``/stall-body?after=N``: headers with ``Content-Length: 1000``, ``N`` bytes
  (default 100), then nothing until the client goes away.
* ``/stall-read``: reads the request head, never reads the body, never answers,
  closes after 10 s (for write timeouts).

ResetServer (``reset_server``): for any request, headers with
``Content-Length: 1000``, 100 body bytes, a short pause, then an RST
(``SO_LINGER`` 0).

``refused_port``: a port bound on 127.0.0.1 but not listening, so connecting
is refused; held for the fixture's lifetime so nothing else takes it.

``echo_servers``: three independent EchoServers (function-scoped, so a test
may ``stop()`` one to kill a target); ``.origins`` lists them.

WebSocketEchoServer (``ws_echo_server``, on the ``websockets`` package; ``.url``
is ``ws://127.0.0.1:<port>``):
echoes text and binary frames; text ``close:<code>[:<reason>]`` closes with
that code; text ``request`` answers with JSON ``{"path", "headers"}`` of the
handshake it received; text ``ping-me`` is echoed after a server ping.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import gzip
import json
import socket
import struct
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qs

import pytest

GZIP_PLAIN = b"hello gzip world " * 64
GZIP_BODY = gzip.compress(GZIP_PLAIN, mtime=0)
FIXED_BODY = b'{"ok":true}'
_MAX_WRITE = 1024 * 1024
_BLOCK = bytes(range(256)) * (_MAX_WRITE // 256 + 1)  # any window of it continues the 0..255 cycle


def stream_pattern(size: int) -> bytes:
    """The bytes ``/stream?size=N`` sends: 0, 1, ..., 255, 0, 1, ... (compare large ones by hash)."""
    reps, rest = divmod(size, 256)
    return bytes(range(256)) * reps + bytes(range(rest))


@dataclass
class ReceivedRequest:
    method: str
    target: bytes
    http_version: str
    headers: list[tuple[bytes, bytes]]
    body: bytes
    chunked: bool
    connection: int
    request_on_connection: int

    @property
    def path(self) -> str:
        return self.target.split(b"?", 1)[0].decode("latin-1")

    @property
    def query(self) -> dict[str, list[str]]:
        _, _, query = self.target.decode("latin-1").partition("?")
        return parse_qs(query, keep_blank_values=True)

    def header(self, name: str) -> list[bytes]:
        lower = name.lower().encode()
        return [v for k, v in self.headers if k.lower() == lower]

    def as_json(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "target": self.target.decode("latin-1"),
            "http_version": self.http_version,
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in self.headers],
            "body_b64": base64.b64encode(self.body).decode(),
            "chunked": self.chunked,
            "connection": self.connection,
            "request_on_connection": self.request_on_connection,
        }


class BadRequest(Exception):
    pass


class _ThreadedServer:
    """A loop in a thread; subclasses implement ``_serve(reader, writer, conn_no)``."""

    def __init__(self) -> None:
        self.requests: list[ReceivedRequest] = []
        self.connections = 0
        self.port = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: Any = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._ready = threading.Event()
        self._startup_error: BaseException | None = None

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._run, name=type(self).__name__, daemon=True)
        self._thread.start()
        self._ready.wait(10)
        if self._startup_error is not None:
            raise self._startup_error
        return self

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(self._start())
        except BaseException as exc:  # noqa: BLE001 - surfaced by start()
            self._startup_error = exc
            self._ready.set()
            loop.close()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()

    async def _start(self) -> None:
        self._server = await asyncio.start_server(self._on_connection, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def _on_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        conn_no = self.connections
        self._writers.add(writer)
        try:
            await self._serve(reader, writer, conn_no)
        except (ConnectionError, asyncio.IncompleteReadError, BadRequest, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn_no: int) -> None:
        raise NotImplementedError

    def call(self, fn: Callable[[], Any]) -> None:
        """Run ``fn`` on the server's loop (thread-safe)."""
        assert self._loop is not None
        self._loop.call_soon_threadsafe(fn)

    def stop(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def _shutdown() -> None:
            if self._server is not None:
                self._server.close()
            for writer in list(self._writers):
                writer.transport.abort()
            for task in asyncio.all_tasks():
                if task is not asyncio.current_task():
                    task.cancel()
            await asyncio.sleep(0)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class HTTPServer(_ThreadedServer):
    """Hand-written HTTP/1.1: parses requests and hands them to ``respond``."""

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, conn_no: int) -> None:
        count = 0
        while True:
            head = await self._read_head(reader)
            if head is None:
                return
            count += 1
            method, target, version, headers = head
            keep = await self.on_head(method, target, version, headers, reader, writer)
            if not keep:
                return
            body, chunked = await self._read_body(reader, headers)
            req = ReceivedRequest(method, target, version, headers, body, chunked, conn_no, count)
            self.requests.append(req)
            keep_alive = await self.respond(req, writer)
            await writer.drain()
            if not keep_alive or version == "HTTP/1.0" or _has_token(req.header("connection"), b"close"):
                return

    async def on_head(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Hook before the body is read; return False to stop handling the connection."""
        return True

    async def respond(self, req: ReceivedRequest, writer: asyncio.StreamWriter) -> bool:
        raise NotImplementedError

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> tuple[str, bytes, str, list[tuple[bytes, bytes]]] | None:
        try:
            raw = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError as exc:
            if exc.partial.strip():
                raise BadRequest("truncated head") from exc
            return None
        lines = raw[:-4].split(b"\r\n")
        try:
            method, target, version = lines[0].split(b" ")
        except ValueError as exc:
            raise BadRequest(lines[0]) from exc
        headers: list[tuple[bytes, bytes]] = []
        for line in lines[1:]:
            name, colon, value = line.partition(b":")
            if not colon:
                raise BadRequest(line)
            headers.append((name, value.strip(b" \t")))
        return method.decode("latin-1"), target, version.decode("latin-1"), headers

    @staticmethod
    async def _read_body(reader: asyncio.StreamReader, headers: list[tuple[bytes, bytes]]) -> tuple[bytes, bool]:
        te = [v for k, v in headers if k.lower() == b"transfer-encoding"]
        if te:
            if not te[-1].lower().endswith(b"chunked"):
                raise BadRequest("unsupported transfer-encoding")
            parts: list[bytes] = []
            while True:
                size_line = await reader.readuntil(b"\r\n")
                size = int(size_line.split(b";", 1)[0].strip(), 16)
                if size == 0:
                    while (await reader.readuntil(b"\r\n")) != b"\r\n":  # trailers
                        pass
                    return b"".join(parts), True
                parts.append(await reader.readexactly(size))
                if await reader.readexactly(2) != b"\r\n":
                    raise BadRequest("bad chunk")
        lengths = [v for k, v in headers if k.lower() == b"content-length"]
        if lengths:
            return await reader.readexactly(int(lengths[-1])), False
        return b"", False


def _has_token(values: list[bytes], token: bytes) -> bool:
    return any(token == part.strip().lower() for value in values for part in value.split(b","))


def response_head(status: int, headers: list[tuple[bytes, bytes]], reason: bytes = b"X") -> bytes:
    lines = [b"HTTP/1.1 %d %s" % (status, reason)]
    lines.extend(k + b": " + v for k, v in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


class EchoServer(HTTPServer):
    def __init__(self) -> None:
        super().__init__()
        self._gates: dict[str, asyncio.Event] = {}
        self._sent: dict[str, int] = {}

    def open_gate(self, name: str) -> None:
        self.call(lambda: self._gate(name).set())

    def bytes_sent(self, name: str) -> int:
        return self._sent.get(name, 0)

    def _gate(self, name: str) -> asyncio.Event:
        gate = self._gates.get(name)
        if gate is None:
            gate = self._gates[name] = asyncio.Event()
        return gate

    async def respond(self, req: ReceivedRequest, writer: asyncio.StreamWriter) -> bool:
        head_only = req.method == "HEAD"
        path = req.path

        def send(status: int, headers: list[tuple[bytes, bytes]], body: bytes = b"", *, length: bool = True) -> None:
            if length:
                headers = [*headers, (b"Content-Length", str(len(body)).encode())]
            writer.write(response_head(status, headers) + (b"" if head_only else body))

        if path == "/fixed":
            send(200, [(b"Content-Type", b"application/json")], FIXED_BODY)
        elif path == "/set-cookies":
            send(
                200,
                [(b"Set-Cookie", b"a=1; Path=/"), (b"Set-Cookie", b"b=2; Path=/; HttpOnly"), (b"Set-Cookie", b"c=3")],
                b"cookies",
            )
        elif path.startswith("/status/"):
            status = int(path.rsplit("/", 1)[1])
            no_body = status in (204, 304) or status < 200
            send(status, [(b"X-Status", str(status).encode())], length=not no_body)
        elif path == "/gzip":
            send(200, [(b"Content-Type", b"text/plain"), (b"Content-Encoding", b"gzip")], GZIP_BODY)
        elif path == "/close":
            send(200, [(b"Connection", b"close")], b"bye")
            return False
        elif path == "/hop-by-hop":
            send(
                200,
                [
                    (b"Connection", b"X-Hop-Custom"),
                    (b"Keep-Alive", b"timeout=5, max=100"),
                    (b"Proxy-Connection", b"keep-alive"),
                    (b"TE", b"trailers"),
                    (b"Trailer", b"X-Checksum"),
                    (b"Upgrade", b"h2c"),
                    (b"X-Hop-Custom", b"secret"),
                    (b"X-End-To-End", b"kept"),
                ],
                b"hop",
            )
        elif path == "/stream":
            await self._stream(req, writer, head_only)
        else:
            send(200, [(b"Content-Type", b"application/json")], json.dumps(req.as_json()).encode())
        return True

    async def _stream(self, req: ReceivedRequest, writer: asyncio.StreamWriter, head_only: bool) -> None:
        q = req.query
        size = int(q.get("size", ["0"])[0])
        chunk = min(int(q.get("chunk", [str(64 * 1024)])[0]), _MAX_WRITE)
        chunked = q.get("chunked", ["0"])[0] == "1"
        gate_name = q.get("gate", [""])[0]
        gate_after = int(q.get("gate_after", [str(1024 * 1024)])[0])
        framing = (b"Transfer-Encoding", b"chunked") if chunked else (b"Content-Length", str(size).encode())
        writer.write(response_head(200, [(b"Content-Type", b"application/octet-stream"), framing]))
        if head_only:
            return
        sent = 0
        view = memoryview(_BLOCK)
        gated = bool(gate_name)
        while sent < size:
            if gated and sent >= gate_after:
                await writer.drain()
                await self._gate(gate_name).wait()
                gated = False
            n = min(chunk, size - sent, gate_after - sent if gated else size)
            offset = sent % 256
            piece = view[offset : offset + n]
            if chunked:
                writer.writelines((b"%x\r\n" % n, piece, b"\r\n"))
            else:
                writer.write(piece)
            sent += n
            if gate_name:
                self._sent[gate_name] = sent
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")


class SlowServer(HTTPServer):
    def __init__(self, default_delay: float = 1.0) -> None:
        super().__init__()
        self.default_delay = default_delay

    async def on_head(
        self,
        method: str,
        target: bytes,
        version: str,
        headers: list[tuple[bytes, bytes]],
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        path = target.split(b"?", 1)[0]
        if path == b"/stall-body":
            req = ReceivedRequest(method, target, version, headers, b"", False, self.connections, 1)
            self.requests.append(req)
            after = int(req.query.get("after", ["100"])[0])
            writer.write(response_head(200, [(b"Content-Length", b"1000")]) + b"x" * after)
            await writer.drain()
            await reader.read()  # hold the response open until the client goes away
            return False
        if path == b"/stall-read":
            self.requests.append(ReceivedRequest(method, target, version, headers, b"", False, self.connections, 1))
            writer.transport.pause_reading()  # let the socket buffers fill up
            await asyncio.sleep(10)
            return False
        return True

    async def respond(self, req: ReceivedRequest, writer: asyncio.StreamWriter) -> bool:
        delay = float(req.query.get("s", [str(self.default_delay)])[0])
        await asyncio.sleep(delay)
        writer.write(response_head(200, [(b"Content-Length", b"4")]) + (b"" if req.method == "HEAD" else b"late"))
        return True


class ResetServer(HTTPServer):
    async def respond(self, req: ReceivedRequest, writer: asyncio.StreamWriter) -> bool:
        writer.write(response_head(200, [(b"Content-Length", b"1000")]) + b"r" * 100)
        await writer.drain()
        await asyncio.sleep(0.2)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()
        return False


class WebSocketEchoServer(_ThreadedServer):
    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def _start(self) -> None:
        from websockets.asyncio.server import serve

        self._server = await serve(self._handler, "127.0.0.1", 0)
        self.port = next(iter(self._server.sockets)).getsockname()[1]

    async def _handler(self, ws: Any) -> None:
        from websockets.exceptions import ConnectionClosed

        self.connections += 1
        request = ws.request
        headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in request.headers.raw_items()]
        self.requests.append(
            ReceivedRequest("GET", request.path.encode("latin-1"), "HTTP/1.1", headers, b"", False, self.connections, 1)
        )
        try:
            async for message in ws:
                if isinstance(message, str) and message.startswith("close:"):
                    _, code, *reason = message.split(":", 2)
                    await ws.close(int(code), reason[0] if reason else "")
                    return
                if message == "request":
                    await ws.send(
                        json.dumps({"path": request.path, "headers": [[k, v] for k, v in request.headers.raw_items()]})
                    )
                    continue
                if message == "ping-me":
                    await ws.ping()
                await ws.send(message)
        except ConnectionClosed:
            pass

    def stop(self) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return

        async def _shutdown() -> None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

        with contextlib.suppress(Exception):
            asyncio.run_coroutine_threadsafe(_shutdown(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        if self._thread is not None:
            self._thread.join(5)


@contextlib.contextmanager
def refused_port_ctx() -> Iterator[int]:
    """A loopback port that refuses connections (bound, never listening)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
    finally:
        sock.close()


def _serve_fixture(factory: Callable[[], _ThreadedServer]) -> Iterator[Any]:
    server = factory().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def echo_server() -> Iterator[EchoServer]:
    yield from _serve_fixture(EchoServer)


@pytest.fixture(scope="session")
def slow_server() -> Iterator[SlowServer]:
    yield from _serve_fixture(SlowServer)


@pytest.fixture(scope="session")
def reset_server() -> Iterator[ResetServer]:
    yield from _serve_fixture(ResetServer)


@pytest.fixture(scope="session")
def ws_echo_server() -> Iterator[WebSocketEchoServer]:
    yield from _serve_fixture(WebSocketEchoServer)


@pytest.fixture
def refused_port() -> Iterator[int]:
    with refused_port_ctx() as port:
        yield port


@dataclass
class ServerSet:
    """Several echo targets, for load-balancing tests."""

    servers: list[EchoServer] = field(default_factory=list)

    @property
    def origins(self) -> list[str]:
        return [s.origin for s in self.servers]


@pytest.fixture
def echo_servers() -> Iterator[ServerSet]:
    """Three independent echo servers (function-scoped so a test may stop one)."""
    servers = ServerSet([EchoServer().start() for _ in range(3)])
    try:
        yield servers
    finally:
        for server in servers.servers:
            server.stop()
