"""request-size-limit through a real gateway: declared lengths refused up front, streamed bodies counted."""

from __future__ import annotations

import base64
import socket

from tests.gateway.harness import Api

LIMIT = 1000


def _api(echo_server, limit=LIMIT):
    return Api(base_path="/svc", targets=[echo_server.origin], policies=[("request-size-limit", {"max_bytes": limit})])


def _chunks(total, size=100):
    sent = 0
    while sent < total:
        n = min(size, total - sent)
        yield b"x" * n
        sent += n


def _received(echo_server, path):
    """What the upstream received on ``path`` (the echo server is shared by the module's tests)."""
    return [r for r in echo_server.requests if r.path == path]


def test_declared_length_over_the_limit_gets_413_without_reaching_the_upstream(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    response = http.post(f"{gateway.url}/svc/declared-over", content=b"x" * (LIMIT + 1))
    assert response.status_code == 413
    body = response.json()
    assert body["error"]["code"] == "body_too_large"
    assert body["error"]["details"] == {"limit_bytes": LIMIT}
    assert response.headers["connection"] == "close"
    assert _received(echo_server, "/declared-over") == []


def test_a_body_of_exactly_the_limit_passes_declared_and_chunked(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    declared = http.post(f"{gateway.url}/svc/upload", content=b"y" * LIMIT)
    chunked = http.post(f"{gateway.url}/svc/upload", content=_chunks(LIMIT))
    assert declared.status_code == 200
    assert base64.b64decode(declared.json()["body_b64"]) == b"y" * LIMIT
    assert chunked.status_code == 200
    assert chunked.json()["chunked"] is True
    assert base64.b64decode(chunked.json()["body_b64"]) == b"x" * LIMIT


def test_chunked_body_over_the_limit_is_stopped_while_streaming(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    response = http.post(f"{gateway.url}/svc/chunked-over", content=_chunks(LIMIT * 50))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "body_too_large"
    # The upstream request was abandoned mid-body: the upstream never got a complete request over the limit.
    assert all(len(r.body) <= LIMIT for r in _received(echo_server, "/chunked-over"))


def test_small_bodies_and_bodiless_requests_pass(gateway, echo_server, http):
    gateway.configure(_api(echo_server))
    assert http.get(f"{gateway.url}/svc/x").status_code == 200
    assert http.post(f"{gateway.url}/svc/x", content=b"abc").status_code == 200


def test_expect_100_continue_client_gets_413_instead_of_continue(gateway, echo_server):
    gateway.configure(_api(echo_server))
    with socket.create_connection(("127.0.0.1", gateway.port), timeout=10) as sock:
        sock.sendall(
            b"POST /svc/expect HTTP/1.1\r\nHost: gw\r\nContent-Length: 5000000\r\n"
            b"Content-Type: application/octet-stream\r\nExpect: 100-continue\r\n\r\n"
        )
        received = b""
        while b"\r\n\r\n" not in received:
            chunk = sock.recv(65536)
            if not chunk:
                break
            received += chunk
    status_line = received.split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413"), received[:200]
    assert b"100 Continue" not in received
    assert _received(echo_server, "/expect") == []


def test_a_new_snapshot_changes_the_limit(gateway, echo_server, http):
    gateway.configure(_api(echo_server, limit=10))
    assert http.post(f"{gateway.url}/svc/x", content=b"z" * 20).status_code == 413
    gateway.configure(_api(echo_server, limit=100))
    assert http.post(f"{gateway.url}/svc/x", content=b"z" * 20).status_code == 200
