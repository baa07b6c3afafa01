"""Conformance of both upstream clients to ``gateway.upstream.base``, over real loopback sockets."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gateway.upstream import (
    Timeouts,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamError,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamTimeout,
)
from tests.gateway.servers import GZIP_BODY, EchoServer, stream_pattern

T = Timeouts(connect=2.0, read=5.0, write=5.0)
HOST = [(b"Host", b"api.example.test")]
MiB = 1024 * 1024


async def fetch(
    client: UpstreamClient,
    origin: str,
    target: bytes = b"/",
    *,
    method: str = "GET",
    headers: list[tuple[bytes, bytes]] | None = None,
    body: AsyncIterator[bytes] | bytes | None = None,
    timeouts: Timeouts = T,
) -> tuple[UpstreamResponse, bytes]:
    resp = await client.request(
        method=method,
        origin=origin,
        target=target,
        headers=HOST if headers is None else headers,
        body=body,
        timeouts=timeouts,
    )
    try:
        data = b"".join([chunk async for chunk in resp.iter_body()])
    finally:
        await resp.aclose()
    return resp, data


async def echo(client: UpstreamClient, origin: str, target: bytes = b"/", **kwargs: Any) -> dict[str, Any]:
    resp, data = await fetch(client, origin, target, **kwargs)
    assert resp.status == 200
    return json.loads(data)


async def consume(resp: UpstreamResponse, counter: list[int]) -> None:
    """Read the body, recording chunk sizes in ``counter`` (kept when the read fails)."""
    async for chunk in resp.iter_body():
        counter.append(len(chunk))


def raw_headers(received: dict[str, Any]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1")) for k, v in received["headers"]]


async def chunks(*parts: bytes, pause: float = 0.0) -> AsyncIterator[bytes]:
    for part in parts:
        if pause:
            await asyncio.sleep(pause)
        yield part


@pytest.mark.parametrize(
    "target",
    [
        b"/a%2Fb?x=%20&y",
        b"/a%2fb/c%2F%2f",
        b"/p;param=1/q;x?x=1;y=2",
        b"/s?q=a+b&q=c&q=&empty=&flag&=v",
        b"/%7Euser/%E2%82%AC?%3D=%26&x=%2B+",
        b"//double//slash/./dot/../end",
        b"/*?a=%00b",
    ],
)
def test_target_sent_byte_for_byte(upstream_client, echo_server, target: bytes) -> None:
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, target))
    assert received["target"].encode("latin-1") == target


def test_bare_trailing_question_mark(upstream_client, echo_server) -> None:
    """yarl drops an empty query, so aiohttp sends ``/t`` for ``/t?``; httpx keeps it.

    Harmless for the gateway: ASGI gives ``query_string=b""`` for both forms, so
    the proxy never builds a target ending in a bare ``?``.
    """
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, b"/t?"))
    expected = b"/t" if upstream_client.kind == "aiohttp" else b"/t?"
    assert received["target"].encode("latin-1") == expected


@pytest.mark.parametrize("method", ["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "PURGE", "MKCOL"])
def test_method_passthrough(upstream_client, echo_server, method: str) -> None:
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, method=method))
    assert received["method"] == method


@pytest.mark.parametrize("method", ["GET", "POST", "DELETE"])
def test_headers_sent_exactly_as_given(upstream_client, echo_server, method: str) -> None:
    headers = [
        (b"Host", b"api.example.test:8443"),
        (b"x-lower", b"1"),
        (b"X-Mixed-Case", b"Value With  Spaces"),
        (b"X-Dup", b"one"),
        (b"X-Dup", b"two"),
        (b"Cookie", b"session=abc; theme=dark"),
        (b"X-Forwarded-For", b"203.0.113.7"),
    ]
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, method=method, headers=headers))
    # Nothing added: no User-Agent, Accept, Accept-Encoding, Connection, Content-Type, Content-Length.
    assert raw_headers(received) == headers


def test_non_ascii_utf8_header_value_sent_raw(upstream_client, echo_server) -> None:
    headers = [*HOST, (b"X-Name", "café ☕".encode())]
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, headers=headers))
    assert raw_headers(received) == headers


def test_host_derived_from_origin_when_absent(upstream_client, echo_server) -> None:
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, headers=[(b"X-A", b"1")]))
    hosts = [v for k, v in received["headers"] if k.lower() == "host"]
    assert hosts == [f"127.0.0.1:{echo_server.port}"]
    assert [k.lower() for k, _ in received["headers"]] in (["host", "x-a"], ["x-a", "host"])


def test_bytes_body_gets_content_length(upstream_client, echo_server) -> None:
    payload = b'{"hello": "world"}'
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, method="POST", body=payload))
    assert base64.b64decode(received["body_b64"]) == payload
    assert received["chunked"] is False
    assert raw_headers(received) == [*HOST, (b"Content-Length", str(len(payload)).encode())]


def test_streamed_body_with_content_length(upstream_client, echo_server) -> None:
    parts = [b"a" * 1000, b"b" * 70000, b"c" * 5]
    total = sum(map(len, parts))
    headers = [*HOST, (b"Content-Length", str(total).encode()), (b"Content-Type", b"application/x-thing")]
    received = upstream_client.run(
        lambda c: echo(c, echo_server.origin, method="PUT", headers=headers, body=chunks(*parts, pause=0.01))
    )
    assert received["chunked"] is False
    assert base64.b64decode(received["body_b64"]) == b"".join(parts)
    assert raw_headers(received) == headers


def test_streamed_body_without_length_is_chunked(upstream_client, echo_server) -> None:
    parts = [b"first,", b"", b"second," * 5000, b"third"]
    received = upstream_client.run(
        lambda c: echo(c, echo_server.origin, method="POST", body=chunks(*parts, pause=0.01))
    )
    assert received["chunked"] is True
    assert base64.b64decode(received["body_b64"]) == b"".join(parts)
    names = [k.lower() for k, _ in received["headers"]]
    assert "content-length" not in names
    assert names.count("transfer-encoding") == 1


@pytest.mark.parametrize("body", [None, b""], ids=["none", "empty-bytes"])
def test_empty_body_sends_no_framing(upstream_client, echo_server, body: bytes | None) -> None:
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, method="POST", body=body))
    assert base64.b64decode(received["body_b64"]) == b""
    assert raw_headers(received) == HOST


def test_empty_streamed_body(upstream_client, echo_server) -> None:
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, method="POST", body=chunks()))
    assert base64.b64decode(received["body_b64"]) == b""


def test_caller_body_error_is_reraised_unchanged(upstream_client, echo_server) -> None:
    class ClientGone(Exception):
        pass

    async def failing() -> AsyncIterator[bytes]:
        yield b"x" * 100
        await asyncio.sleep(0.01)
        raise ClientGone

    async def scenario(client: UpstreamClient) -> None:
        with pytest.raises(ClientGone):
            await fetch(client, echo_server.origin, method="POST", body=failing())
        # The client stays usable.
        assert (await echo(client, echo_server.origin))["method"] == "GET"

    upstream_client.run(scenario)


def test_response_headers_lowercase_in_order_with_repeated_set_cookie(upstream_client, echo_server) -> None:
    resp, data = upstream_client.run(lambda c: fetch(c, echo_server.origin, b"/set-cookies"))
    assert resp.status == 200
    assert resp.http_version == "1.1"
    assert data == b"cookies"
    assert resp.headers == [
        (b"set-cookie", b"a=1; Path=/"),
        (b"set-cookie", b"b=2; Path=/; HttpOnly"),
        (b"set-cookie", b"c=3"),
        (b"content-length", b"7"),
    ]


def test_hop_by_hop_response_headers_are_not_filtered_by_the_client(upstream_client, echo_server) -> None:
    resp, data = upstream_client.run(lambda c: fetch(c, echo_server.origin, b"/hop-by-hop"))
    names = [k for k, _ in resp.headers]
    assert resp.status == 200
    assert data == b"hop"
    for name in (b"connection", b"keep-alive", b"proxy-connection", b"te", b"trailer", b"upgrade", b"x-hop-custom"):
        assert name in names


def test_gzip_body_relayed_raw(upstream_client, echo_server) -> None:
    resp, data = upstream_client.run(
        lambda c: fetch(c, echo_server.origin, b"/gzip", headers=[*HOST, (b"Accept-Encoding", b"gzip")])
    )
    assert (b"content-encoding", b"gzip") in resp.headers
    assert data == GZIP_BODY


def test_chunked_response_is_dechunked_not_decoded(upstream_client, echo_server) -> None:
    size = 300_000
    resp, data = upstream_client.run(
        lambda c: fetch(c, echo_server.origin, b"/stream?size=%d&chunk=7000&chunked=1" % size)
    )
    assert (b"transfer-encoding", b"chunked") in resp.headers
    assert data == stream_pattern(size)


@pytest.mark.parametrize(
    ("method", "target", "status"),
    [
        ("HEAD", b"/fixed", 200),
        ("HEAD", b"/stream?size=5000", 200),
        ("GET", b"/status/204", 204),
        ("GET", b"/status/304", 304),
    ],
)
def test_no_body_responses(upstream_client, echo_server, method: str, target: bytes, status: int) -> None:
    async def scenario(client: UpstreamClient) -> None:
        for _ in range(2):  # the connection must stay usable after a bodiless response
            resp, data = await fetch(client, echo_server.origin, target, method=method)
            assert resp.status == status
            assert data == b""
        # Closing without iterating the body is fine too.
        resp = await client.request(
            method=method, origin=echo_server.origin, target=target, headers=HOST, body=None, timeouts=T
        )
        await resp.aclose()
        assert (await echo(client, echo_server.origin))["method"] == "GET"

    upstream_client.run(scenario)


def test_keepalive_reuses_one_connection(upstream_client, echo_server) -> None:
    async def scenario(client: UpstreamClient) -> list[tuple[int, int]]:
        seen = []
        for _ in range(5):
            received = await echo(client, echo_server.origin)
            seen.append((received["connection"], received["request_on_connection"]))
        return seen

    seen = upstream_client.run(scenario)
    assert len({conn for conn, _ in seen}) == 1
    assert [n for _, n in seen] == [seen[0][1] + i for i in range(5)]


def test_connection_close_response_then_next_request(upstream_client, echo_server) -> None:
    async def scenario(client: UpstreamClient) -> None:
        _, data = await fetch(client, echo_server.origin, b"/close")
        assert data == b"bye"
        first = await echo(client, echo_server.origin)
        second = await echo(client, echo_server.origin)
        assert first["connection"] == second["connection"]

    upstream_client.run(scenario)


def test_connect_refused(upstream_client, refused_port) -> None:
    async def scenario(client: UpstreamClient) -> None:
        with pytest.raises(UpstreamConnectError) as info:
            await client.request(
                method="POST",
                origin=f"http://127.0.0.1:{refused_port}",
                target=b"/",
                headers=HOST,
                body=b"x",
                timeouts=T,
            )
        assert info.value.request_sent is False
        assert isinstance(info.value, UpstreamError)

    upstream_client.run(scenario)


def test_read_timeout_before_headers(upstream_client, slow_server) -> None:
    timeouts = Timeouts(connect=2.0, read=0.5, write=2.0)

    async def scenario(client: UpstreamClient) -> float:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as info:
            await client.request(
                method="GET",
                origin=slow_server.origin,
                target=b"/delay?s=5",
                headers=HOST,
                body=None,
                timeouts=timeouts,
            )
        assert info.value.phase == "read"
        assert info.value.request_sent is True
        return time.monotonic() - started

    elapsed = upstream_client.run(scenario)
    assert elapsed < 1.5


def test_read_timeout_mid_body(upstream_client, slow_server) -> None:
    timeouts = Timeouts(connect=2.0, read=0.5, write=2.0)

    async def scenario(client: UpstreamClient) -> float:
        resp = await client.request(
            method="GET",
            origin=slow_server.origin,
            target=b"/stall-body?after=100",
            headers=HOST,
            body=None,
            timeouts=timeouts,
        )
        assert resp.status == 200
        counter: list[int] = []
        started = time.monotonic()
        try:
            with pytest.raises(UpstreamTimeout) as info:
                await consume(resp, counter)
        finally:
            await resp.aclose()
        assert info.value.phase == "read"
        assert sum(counter) == 100
        return time.monotonic() - started

    assert upstream_client.run(scenario) < 1.5


def test_write_timeout_when_upstream_stops_reading(upstream_client, slow_server) -> None:
    timeouts = Timeouts(connect=2.0, read=5.0, write=0.5)

    async def endless() -> AsyncIterator[bytes]:
        block = b"w" * (256 * 1024)
        for _ in range(1024):  # 256 MiB, far more than socket buffers hold
            yield block

    async def scenario(client: UpstreamClient) -> float:
        started = time.monotonic()
        with pytest.raises(UpstreamTimeout) as info:
            await fetch(client, slow_server.origin, b"/stall-read", method="POST", body=endless(), timeouts=timeouts)
        assert info.value.phase == "write"
        assert info.value.request_sent is True
        return time.monotonic() - started

    assert upstream_client.run(scenario) < 3.0


def test_reset_mid_body_is_a_protocol_error(upstream_client, reset_server) -> None:
    async def scenario(client: UpstreamClient) -> int:
        resp = await client.request(
            method="GET", origin=reset_server.origin, target=b"/", headers=HOST, body=None, timeouts=T
        )
        assert resp.status == 200
        counter: list[int] = []
        try:
            with pytest.raises(UpstreamProtocolError) as info:
                await consume(resp, counter)
        finally:
            await resp.aclose()
        assert info.value.request_sent is True
        return sum(counter)

    assert upstream_client.run(scenario) < 1000


def test_no_cookies_carried_between_requests(upstream_client, echo_server) -> None:
    async def scenario(client: UpstreamClient) -> dict[str, Any]:
        resp, _ = await fetch(client, echo_server.origin, b"/set-cookies")
        assert any(k == b"set-cookie" for k, _ in resp.headers)
        return await echo(client, echo_server.origin, b"/after")

    received = upstream_client.run(scenario)
    assert raw_headers(received) == HOST


def test_environment_proxies_are_ignored(upstream_client, echo_server, refused_port, monkeypatch) -> None:
    dead = f"http://127.0.0.1:{refused_port}"
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.setenv(name, dead)
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    received = upstream_client.run(lambda c: echo(c, echo_server.origin, b"/via-proxy?x=1"))
    assert received["target"] == "/via-proxy?x=1"


def test_64_concurrent_requests(upstream_client, echo_server) -> None:
    async def scenario(client: UpstreamClient) -> None:
        async def one(i: int) -> None:
            target = b"/c/%d?i=%d" % (i, i)
            received = await echo(client, echo_server.origin, target, method="POST", body=b"%d" % i)
            assert received["target"].encode() == target
            assert base64.b64decode(received["body_b64"]) == b"%d" % i

        for _ in range(3):
            await asyncio.gather(*(one(i) for i in range(64)))

    upstream_client.run(scenario)


def test_aclose_without_reading_body_keeps_client_usable(upstream_client, echo_server) -> None:
    async def scenario(client: UpstreamClient) -> None:
        resp = await client.request(
            method="GET",
            origin=echo_server.origin,
            target=b"/stream?size=%d" % (8 * MiB),
            headers=HOST,
            body=None,
            timeouts=T,
        )
        await resp.aclose()
        resp = await client.request(
            method="GET",
            origin=echo_server.origin,
            target=b"/stream?size=%d" % (8 * MiB),
            headers=HOST,
            body=None,
            timeouts=T,
        )
        body = resp.iter_body()
        assert len(await body.__anext__()) > 0
        await resp.aclose()
        await resp.aclose()  # idempotent
        for _ in range(3):
            assert (await echo(client, echo_server.origin))["method"] == "GET"

    upstream_client.run(scenario)


def test_64_mib_response_streams_chunk_by_chunk(upstream_client, echo_server) -> None:
    size = 64 * MiB
    gate = f"gate-{uuid.uuid4().hex}"
    expected = hashlib.sha256(stream_pattern(size)).hexdigest()

    async def scenario(client: UpstreamClient) -> tuple[int, str, int]:
        resp = await client.request(
            method="GET",
            origin=echo_server.origin,
            target=f"/stream?size={size}&gate={gate}&gate_after={MiB}".encode(),
            headers=HOST,
            body=None,
            timeouts=T,
        )
        digest = hashlib.sha256()
        received = 0
        chunks_seen = 0
        sent_when_first_mib_arrived = -1
        try:
            async for chunk in resp.iter_body():
                digest.update(chunk)
                received += len(chunk)
                chunks_seen += 1
                if sent_when_first_mib_arrived < 0 and received >= MiB:
                    # The server is parked after 1 MiB until we open the gate: a client
                    # that buffered the whole body would never get here.
                    sent_when_first_mib_arrived = echo_server.bytes_sent(gate)
                    echo_server.open_gate(gate)
        finally:
            await resp.aclose()
        assert sent_when_first_mib_arrived == MiB
        return received, digest.hexdigest(), chunks_seen

    received, digest, chunks_seen = upstream_client.run(scenario, deadline=30)
    assert received == size
    assert digest == expected
    assert chunks_seen > 64


def test_pool_limit_queues_requests_instead_of_failing(upstream_client) -> None:
    with EchoServer() as server:

        async def scenario(client: UpstreamClient) -> None:
            async def one(i: int) -> None:
                received = await echo(client, server.origin, b"/q/%d" % i)
                assert received["target"] == f"/q/{i}"

            await asyncio.gather(*(one(i) for i in range(32)))

        upstream_client.run(scenario, max_connections=4, max_keepalive=4)
        assert 1 <= server.connections <= 4
        assert len(server.requests) == 32
