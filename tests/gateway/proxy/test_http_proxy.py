"""gateway.proxy through a real gateway server, real upstreams and a real client.

Every test runs against both upstream-client implementations (the ``gateway``
fixture is parametrised over aiohttp and httpx).
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import threading
import time

import httpx
import pytest

from tests.gateway.harness import Api
from tests.gateway.servers import GZIP_BODY, stream_pattern


def echoed(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def header_values(echo: dict, name: str) -> list[str]:
    return [value for key, value in echo["headers"] if key.lower() == name]


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> bytes:
    """Send bytes exactly as given and read until the server closes or goes quiet."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = []
        try:
            while True:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                chunks.append(chunk)
                if b"\r\n\r\n" in b"".join(chunks) and len(chunks) > 0:
                    sock.settimeout(0.5)
        except TimeoutError:
            pass
        return b"".join(chunks)


def test_routes_by_longest_prefix_and_strips_the_base_path(gateway, http, echo_server):
    gateway.configure(Api("/shop", [echo_server.origin]), Api("/shop/admin", [echo_server.origin], strip=False))
    assert echoed(http.get(f"{gateway.url}/shop/items/1"))["target"] == "/items/1"
    assert echoed(http.get(f"{gateway.url}/shop"))["target"] == "/"
    assert echoed(http.get(f"{gateway.url}/shop/admin/users"))["target"] == "/shop/admin/users"
    missing = http.get(f"{gateway.url}/shopping")
    assert missing.status_code == 404
    body = missing.json()
    assert body["success"] is False and body["error"]["code"] == "not_found"
    assert body["request_id"] == missing.headers["x-request-id"]


def test_target_path_prefix_is_prepended(gateway, http, echo_server):
    gateway.configure(Api("/v1", [f"{echo_server.origin}/backend"]))
    assert echoed(http.get(f"{gateway.url}/v1/x"))["target"] == "/backend/x"


def test_method_restriction_gives_405_with_allow(gateway, http, echo_server):
    gateway.configure(Api("/orders", [echo_server.origin], routes=[("/", frozenset({"GET"}))]))
    assert http.get(f"{gateway.url}/orders/1").status_code == 200
    refused = http.post(f"{gateway.url}/orders/1", content=b"x")
    assert refused.status_code == 405
    assert set(refused.headers["allow"].replace(" ", "").split(",")) == {"GET", "HEAD"}
    assert refused.json()["error"]["code"] == "method_not_allowed"


def test_query_and_percent_encoding_are_forwarded_byte_for_byte(gateway, echo_server):
    gateway.configure(Api("/q", [echo_server.origin]))
    target = b"/q/a%20b/c%7E?x=%2F%2f&y=a+b&y=&z=%E2%82%AC;k"
    response = raw_request(gateway.port, b"GET " + target + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    body = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert body["target"].encode() == b"/a%20b/c%7E?x=%2F%2f&y=a+b&y=&z=%E2%82%AC;k"


@pytest.mark.parametrize(
    "path",
    [
        b"/q/%2e%2e/admin/x",
        b"/q/.%2E/admin/x",
        b"/q/..%2fadmin",
        b"/q%2fadmin",
        b"/q/a%00b",
        b"/q\\..\\admin",
        b"/q/..;/admin",
    ],
)
def test_path_tricks_never_reach_another_api(gateway, echo_server, path):
    gateway.configure(Api("/q", [echo_server.origin]), Api("/admin", [f"{echo_server.origin}/ADMIN"]))
    response = raw_request(gateway.port, b"GET " + path + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert b"/ADMIN" not in response
    status = int(response.split(b" ", 2)[1])
    assert status in (400, 404)


def test_literal_dot_segments_route_as_the_normalised_path(gateway, echo_server):
    """``/q/../admin/x`` *is* ``/admin/x`` (RFC 3986 §5.2.4), as for nginx: it routes there, whole."""
    gateway.configure(Api("/q", [echo_server.origin]), Api("/admin", [f"{echo_server.origin}/ADMIN"]))
    response = raw_request(gateway.port, b"GET /q/../admin/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    assert json.loads(response.split(b"\r\n\r\n", 1)[1])["target"] == "/ADMIN/x"


def test_forwarding_headers_and_request_id(gateway, http, echo_server):
    gateway.configure(Api("/h", [echo_server.origin]))
    response = http.get(
        f"{gateway.url}/h/x",
        headers={
            "X-Forwarded-For": "6.6.6.6",
            "X-Request-ID": "client-id-1",
            "Connection": "x-drop-me",
            "X-Drop-Me": "1",
        },
    )
    echo = echoed(response)
    assert header_values(echo, "x-forwarded-for") == ["127.0.0.1"]  # untrusted client: its claim is dropped
    assert header_values(echo, "x-forwarded-proto") == ["http"]
    assert header_values(echo, "via") == ["1.1 apim"]
    assert header_values(echo, "x-request-id") == ["client-id-1"]
    assert header_values(echo, "x-drop-me") == []
    assert header_values(echo, "host") == [echo_server.origin.split("://")[1]]
    assert response.headers["x-request-id"] == "client-id-1"
    assert response.headers["via"].endswith("1.1 apim")
    assert int(response.headers["x-apim-proxy-latency"]) >= 0
    assert int(response.headers["x-apim-upstream-latency"]) >= 0


def test_hop_by_hop_response_headers_removed_and_cookies_kept_in_order(gateway, http, echo_server):
    gateway.configure(Api("/h", [echo_server.origin]))
    hop = http.get(f"{gateway.url}/h/hop-by-hop")
    for name in ("keep-alive", "proxy-connection", "te", "trailer", "upgrade", "x-hop-custom"):
        assert name not in hop.headers
    assert "x-end-to-end" in hop.headers
    cookies = http.get(f"{gateway.url}/h/set-cookies")
    assert [c.split(";")[0] for c in cookies.headers.get_list("set-cookie")] == ["a=1", "b=2", "c=3"]


def test_head_204_304_have_no_body(gateway, echo_server):
    gateway.configure(Api("/s", [echo_server.origin]))
    for request in (b"HEAD /s/anything", b"GET /s/status/204", b"GET /s/status/304"):
        response = raw_request(gateway.port, request + b" HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        head, _, body = response.partition(b"\r\n\r\n")
        assert body == b"", request
        assert head.startswith(b"HTTP/1.1 2") or head.startswith(b"HTTP/1.1 3")


def test_compressed_body_is_relayed_raw(gateway, http, echo_server):
    gateway.configure(Api("/z", [echo_server.origin]))
    with http.stream("GET", f"{gateway.url}/z/gzip") as response:
        raw = b"".join(response.iter_raw())
    assert response.headers["content-encoding"] == "gzip"
    assert raw == GZIP_BODY


def test_request_bodies_stream_with_length_and_chunked(gateway, http, echo_server):
    gateway.configure(Api("/b", [echo_server.origin]))
    payload = bytes(range(256)) * 4096  # 1 MiB
    fixed = echoed(http.post(f"{gateway.url}/b/x", content=payload))
    assert base64.b64decode(fixed["body_b64"]) == payload
    assert header_values(fixed, "content-length") == [str(len(payload))]

    def chunks():
        for i in range(0, len(payload), 100_000):
            yield payload[i : i + 100_000]

    chunked = echoed(http.post(f"{gateway.url}/b/x", content=chunks()))
    assert base64.b64decode(chunked["body_b64"]) == payload
    assert chunked["chunked"] is True


def test_large_response_streams_through(gateway, http, echo_server):
    gateway.configure(Api("/big", [echo_server.origin]))
    size = 32 * 1024 * 1024
    digest = hashlib.sha256()
    with http.stream("GET", f"{gateway.url}/big/stream?size={size}") as response:
        for chunk in response.iter_raw():
            digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(stream_pattern(size)).hexdigest()


def test_ambiguous_framing_is_refused(gateway, echo_server):
    gateway.configure(Api("/f", [echo_server.origin]))
    before = len(echo_server.requests)
    request = (
        b"POST /f/x HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"0\r\n\r\nGET /f/smuggled HTTP/1.1\r\nHost: x\r\n\r\n"
    )
    response = raw_request(gateway.port, request)
    assert response.startswith(b"HTTP/1.1 400")
    assert len(echo_server.requests) == before  # nothing reached the upstream, smuggled or not


def test_connect_refused_is_502(gateway, http, refused_port):
    gateway.configure(Api("/down", [f"http://127.0.0.1:{refused_port}"], retries=0))
    response = http.get(f"{gateway.url}/down/x")
    assert response.status_code == 502
    assert response.json()["error"]["code"] == "upstream_unreachable"


def test_timeout_is_504_at_the_deadline(gateway, http, slow_server):
    gateway.configure(Api("/slow", [slow_server.origin], read_timeout=0.5))
    started = time.monotonic()
    response = http.get(f"{gateway.url}/slow/delay?s=5")
    assert response.status_code == 504
    assert response.json()["error"]["code"] == "upstream_timeout"
    assert time.monotonic() - started < 4  # the deadline, not the upstream's 5 s


def test_no_enabled_target_is_503(gateway, http):
    gateway.configure(Api("/none", []))
    response = http.get(f"{gateway.url}/none/x")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "no_healthy_target"


def test_reset_mid_body_gives_a_detectably_truncated_response(gateway, http, reset_server):
    gateway.configure(Api("/r", [reset_server.origin]))
    with http.stream("GET", f"{gateway.url}/r/x") as response:
        assert response.status_code == 200
        assert response.headers["content-length"] == "1000"
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            b"".join(response.iter_raw())


def test_connect_failure_retries_on_another_target(gateway, http, echo_server, refused_port):
    gateway.configure(Api("/rt", [f"http://127.0.0.1:{refused_port}", echo_server.origin], retries=1))
    statuses = [http.get(f"{gateway.url}/rt/x").status_code for _ in range(6)]
    assert statuses == [200] * 6
    posts = [http.post(f"{gateway.url}/rt/x", content=b"").status_code for _ in range(4)]
    assert posts == [200] * 4  # nothing was sent on a refused connect: safe even for POST


def test_failing_target_is_ejected(gateway, http, echo_server, refused_port):
    dead = f"http://127.0.0.1:{refused_port}"
    gateway.configure(Api("/ej", [dead, echo_server.origin], retries=0, passive_failure_threshold=2))
    statuses = [http.get(f"{gateway.url}/ej/x").status_code for _ in range(12)]
    assert statuses.count(502) == 2  # two failures eject the dead target; then all go to the live one
    assert statuses[-6:] == [200] * 6
    health = gateway.registry.get("u0", dead).describe(time.monotonic(), time.time())
    assert health["circuit"] == "open"


def test_reload_during_traffic_fails_no_request(gateway, echo_server):
    apis = [Api("/live", [echo_server.origin])]
    gateway.configure(*apis)
    stop = threading.Event()

    def churn():
        while not stop.is_set():
            gateway.configure(*apis)
            time.sleep(0.005)

    swapper = threading.Thread(target=churn)
    swapper.start()
    try:
        with httpx.Client(timeout=10, trust_env=False) as client:
            statuses = [client.get(f"{gateway.url}/live/x").status_code for _ in range(200)]
    finally:
        stop.set()
        swapper.join()
    assert statuses == [200] * 200


def test_reserved_endpoints_cannot_be_claimed(gateway, http, echo_server):
    gateway.configure(Api("/x", [echo_server.origin]))
    assert http.get(f"{gateway.url}/__apim/health").json() == {"status": "ok"}
    assert http.get(f"{gateway.url}/__apim/ready").status_code == 200
    assert http.get(f"{gateway.url}/__apim/metrics").status_code == 200
    assert http.get(f"{gateway.url}/__apim/nothing").status_code == 404


def test_not_ready_before_the_first_snapshot(gateway, http):
    response = http.get(f"{gateway.url}/anything")
    assert response.status_code == 503
    assert response.json()["error"]["code"] == "not_ready"
    assert http.get(f"{gateway.url}/__apim/ready").status_code == 503


def test_a_target_killed_during_traffic_is_routed_around(gateway, echo_servers):
    gateway.configure(Api("/k", echo_servers.origins, retries=2, passive_failure_threshold=1))
    with httpx.Client(timeout=10, trust_env=False) as client:
        assert [client.get(f"{gateway.url}/k/x").status_code for _ in range(6)] == [200] * 6
        echo_servers.servers[1].stop()
        statuses = [client.get(f"{gateway.url}/k/x").status_code for _ in range(30)]
    assert statuses == [200] * 30  # GET is idempotent: a failed target is retried on another one
