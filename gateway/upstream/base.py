"""The one interface the proxy uses to talk to upstreams.

Two implementations sit behind it (``aiohttp`` and ``httpx``); both pass the
same conformance suite (``tests/gateway/upstream/test_conformance.py``). The
proxy is written against these types only and never imports either library.

Contract, shared by both implementations:

* ``target`` is sent byte for byte: no re-encoding, no normalisation of
  ``%2F``/``%2f``/``+``/``;``/empty query values.
* ``headers`` are sent as given, in order, with the caller's name case. The
  client adds nothing (no User-Agent, Accept, Accept-Encoding, Connection,
  Content-Type, cookies) with three framing exceptions: ``Host`` is derived
  from ``origin`` when absent; a ``bytes`` body without ``Content-Length``
  gets one; a streamed body without ``Content-Length`` is sent chunked.
  ``Transfer-Encoding`` in ``headers`` is ignored (framing is the client's
  job; the proxy strips it as hop-by-hop anyway). An empty body (``None`` or
  ``b""``) is sent with no framing header at all.
* Response ``headers`` have **lowercased names** (what ASGI wants and what
  the hop-by-hop filter compares against) and values exactly as received, in
  received order, duplicates kept (several ``Set-Cookie`` stay separate).
* The body is relayed raw: never decompressed; chunked transfer-coding is
  removed (that is framing, not content).
* Nothing is shared between requests: no cookie jar, no environment proxies,
  no redirects followed, no retries of a request whose bytes may have left.
* Known aiohttp deviations (pinned aiohttp 3.14.5/yarl, covered by tests):
  a bare trailing ``?`` (empty query) is dropped by yarl (ASGI cannot express
  it anyway: ``query_string`` is ``b""`` either way); the method is upper-cased;
  header values that are not valid UTF-8 (obs-text) are re-encoded as UTF-8.
  aiohttp also retries an idempotent request once when a reused keep-alive
  connection turns out to be closed (RFC 9112 §9.3.1), never a consumed body.
* Only the three ``UpstreamError`` subclasses escape from ``request``,
  ``iter_body`` and ``aclose`` for anything the network or the upstream does.
  An exception raised by the caller's own body iterator (for example the
  gateway's ``ClientDisconnected``) is re-raised unchanged, so the proxy can
  tell "the client went away" from "the upstream failed".
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from apim.target_addresses import AddressGuard

TimeoutPhase = Literal["connect", "read", "write"]
RequestBody = AsyncIterator[bytes] | bytes | None
NO_BODY_STATUSES = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class Timeouts:
    """Per-phase deadlines in seconds.

    ``connect``: waiting for a pooled connection plus the TCP (and TLS) connect.
    ``read``: the longest gap between two reads from the upstream, counting
    the time to the first response byte after the request body was sent.
    ``write``: the longest time one chunk of the request may take to be
    accepted by the socket (a stalled upstream that stops reading).
    """

    connect: float
    read: float
    write: float


class UpstreamError(Exception):
    """Base of everything the upstream client raises.

    ``request_sent`` is False only when no byte of the request can have reached
    the upstream; only then may the proxy retry a non-idempotent request on
    another target.
    """

    request_sent: bool

    def __init__(self, message: str, *, request_sent: bool) -> None:
        super().__init__(message)
        self.request_sent = request_sent


class UpstreamConnectError(UpstreamError):
    """Could not connect (refused, unreachable, DNS failure); nothing was sent."""

    def __init__(self, message: str, *, request_sent: bool = False) -> None:
        super().__init__(message, request_sent=request_sent)


class UpstreamForbidden(UpstreamConnectError):
    """The target's address is one the gateway may not connect to (``apim.target_addresses``).

    Raised before any connection is made: nothing was sent, and it says nothing
    about the target's health (the proxy answers ``upstream_forbidden`` 502 and
    does not count it as a failure).
    """


class UpstreamTimeout(UpstreamError):
    """A per-phase deadline passed; ``phase`` says which one."""

    phase: TimeoutPhase

    def __init__(self, message: str, *, phase: TimeoutPhase, request_sent: bool) -> None:
        super().__init__(message, request_sent=request_sent)
        self.phase = phase


class UpstreamProtocolError(UpstreamError):
    """Malformed response, connection reset or closed mid-response, truncated body."""

    def __init__(self, message: str, *, request_sent: bool = True) -> None:
        super().__init__(message, request_sent=request_sent)


class UpstreamResponse(Protocol):
    """A response whose status and headers have arrived; the body has not been read.

    ``http_version`` is ``"1.1"`` or ``"1.0"``. ``iter_body`` may be iterated
    once; it yields raw bytes as they arrive and raises ``UpstreamProtocolError``
    if the upstream resets or the body is shorter than its framing says, and
    ``UpstreamTimeout(phase="read")`` when a read gap passes the deadline.
    ``aclose`` must always be called: it returns the connection to the pool if
    the body was read to the end (or there is none), and discards it otherwise.
    """

    status: int
    headers: list[tuple[bytes, bytes]]
    http_version: str

    def iter_body(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class UpstreamClient(Protocol):
    """A pooled HTTP/1.1 client bound to the event loop it is first used on."""

    name: str

    async def request(
        self,
        *,
        method: str,
        origin: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: RequestBody,
        timeouts: Timeouts,
    ) -> UpstreamResponse: ...

    async def aclose(self) -> None: ...


def create_upstream_client(
    kind: str,
    *,
    max_connections: int = 1024,
    max_keepalive: int = 256,
    keepalive_expiry: float = 60.0,
    guard: AddressGuard | None = None,
) -> UpstreamClient:
    """Build an upstream client; ``kind`` is ``"aiohttp"`` or ``"httpx"``.

    Cheap and loop-free: the underlying session or pool is created on the
    first request, inside the running loop. With a ``guard``, every new
    connection's resolved addresses are checked first and a refused one raises
    ``UpstreamForbidden`` (pooled connections are not checked again).
    """
    if kind == "aiohttp":
        from gateway.upstream.aiohttp_client import AiohttpUpstreamClient

        return AiohttpUpstreamClient(
            max_connections=max_connections,
            max_keepalive=max_keepalive,
            keepalive_expiry=keepalive_expiry,
            guard=guard,
        )
    if kind == "httpx":
        from gateway.upstream.httpx_client import HttpxUpstreamClient

        return HttpxUpstreamClient(
            max_connections=max_connections,
            max_keepalive=max_keepalive,
            keepalive_expiry=keepalive_expiry,
            guard=guard,
        )
    raise ValueError(f"unknown upstream client kind {kind!r}; expected 'aiohttp' or 'httpx'")


def split_origin(origin: str) -> tuple[str, str, int]:
    """``"http://host:port"`` -> ``("http", "host", port)``; IPv6 hosts keep no brackets."""
    scheme, sep, authority = origin.partition("://")
    if not sep or scheme not in ("http", "https") or not authority or "/" in authority:
        raise ValueError(f"origin must look like http://host:port, got {origin!r}")
    default_port = 443 if scheme == "https" else 80
    if authority.startswith("["):
        host, _, rest = authority[1:].partition("]")
        port = int(rest[1:]) if rest.startswith(":") else default_port
    else:
        host, colon, port_text = authority.rpartition(":")
        if not colon:
            host, port = authority, default_port
        else:
            port = int(port_text)
    return scheme, host, port


def request_framing(
    headers: list[tuple[bytes, bytes]], body: RequestBody
) -> tuple[list[tuple[bytes, bytes]], bool, bool]:
    """Apply the shared framing rules to ``headers``.

    Returns ``(headers, has_host, streamed)``: ``Transfer-Encoding`` removed,
    ``Content-Length`` added for a bytes body that lacks one. Whether a
    streamed body goes chunked is left to the implementation (it is chunked
    exactly when no ``Content-Length`` is present).
    """
    has_host = False
    has_length = False
    out: list[tuple[bytes, bytes]] = []
    for name, value in headers:
        lower = name.lower()
        if lower == b"transfer-encoding":
            continue
        if lower == b"host":
            has_host = True
        elif lower == b"content-length":
            has_length = True
        out.append((name, value))
    streamed = body is not None and not isinstance(body, bytes | bytearray | memoryview)
    if not streamed and body and not has_length:
        out.append((b"Content-Length", str(len(body)).encode()))  # type: ignore[arg-type]
    return out, has_host, streamed
