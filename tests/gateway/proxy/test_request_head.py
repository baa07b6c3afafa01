"""The request head as an intermediary must take it (RFC 9110 / 9112 / 6585), through a real gateway.

Raw bytes on a socket, because every case here is something a well-behaved
client library would never send: missing or doubled Host fields, the absolute
form, Transfer-Encoding in HTTP/1.0, oversized request lines and header
sections, TRACE. Each is refused in the gateway's JSON envelope (or, for the
absolute form, routed by the target's authority) and none reaches the upstream.
"""

from __future__ import annotations

import json

import pytest

from gateway.snapshot import TenantSpec
from tests.gateway.harness import Api
from tests.gateway.proxy.test_http_proxy import raw_request


def status_and_body(raw: bytes) -> tuple[int, dict | bytes, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body), head
    except ValueError:
        return status, body, head


@pytest.fixture
def routed(gateway, echo_server):
    gateway.configure(
        Api("/shop", [echo_server.origin], tenant="a"),
        Api("/shop", [f"{echo_server.origin}/tenant-b"], tenant="b", api_id="b-shop"),
        tenants=[TenantSpec(tenant_id="a", is_default=True), TenantSpec(tenant_id="b", hosts=("b.example",))],
    )
    return gateway


def hits(echo_server) -> int:
    return len(echo_server.requests)


@pytest.mark.parametrize(
    ("request_head", "reason"),
    [
        (b"GET /shop/x HTTP/1.1\r\nConnection: close\r\n\r\n", "missing_host"),
        (b"GET /shop/x HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nConnection: close\r\n\r\n", "duplicate_host"),
        (b"GET /shop/x HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n", "invalid_host"),
        (b"GET /shop/x HTTP/1.1\r\nHost: a.example/evil\r\nConnection: close\r\n\r\n", "invalid_host"),
        (b"GET /shop/x HTTP/1.1\r\nHost: a.example:80x\r\nConnection: close\r\n\r\n", "invalid_host"),
    ],
)
def test_host_fields_must_be_exactly_one_valid_authority(routed, echo_server, request_head, reason):
    before = hits(echo_server)
    status, body, _ = status_and_body(raw_request(routed.port, request_head))
    assert status == 400
    assert body["error"]["code"] == "bad_request" and body["error"]["details"] == {"reason": reason}
    assert hits(echo_server) == before


def test_http_1_0_may_omit_host_and_ipv6_and_empty_hosts_are_valid(routed):
    for head in (
        b"GET /shop/x HTTP/1.0\r\n\r\n",
        b"GET /shop/x HTTP/1.1\r\nHost: [::1]:8081\r\nConnection: close\r\n\r\n",
        b"GET /shop/x HTTP/1.1\r\nHost: \r\nConnection: close\r\n\r\n",
    ):
        status, _, _ = status_and_body(raw_request(routed.port, head))
        assert status == 200, head


def test_the_absolute_form_routes_by_the_targets_authority_not_host(routed, echo_server):
    """RFC 9112 §3.2.2: the Host field is ignored; tenant b is chosen by the target, whatever Host says."""
    head = b"GET http://b.example/shop/x?q=1 HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n"
    status, body, _ = status_and_body(raw_request(routed.port, head))
    assert status == 200
    assert body["target"] == "/tenant-b/x?q=1"  # tenant b's API answered
    assert [v for k, v in body["headers"] if k.lower() == "x-forwarded-host"] == ["b.example"]


def test_transfer_encoding_in_http_1_0_is_faulty_framing(routed, echo_server):
    before = hits(echo_server)
    head = b"POST /shop/x HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    status, body, raw_head = status_and_body(raw_request(routed.port, head))
    assert status == 400 and body["error"]["code"] == "ambiguous_framing"
    assert b"connection: close" in raw_head.lower()
    assert hits(echo_server) == before


def test_trace_is_answered_405_by_the_gateway(routed, echo_server):
    before = hits(echo_server)
    status, body, raw_head = status_and_body(
        raw_request(routed.port, b"TRACE /shop/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
    )
    assert status == 405 and body["error"]["code"] == "method_not_allowed"
    assert b"\r\nallow: GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS" in raw_head
    assert hits(echo_server) == before


@pytest.mark.parametrize(
    ("request_head", "status", "code", "reason"),
    [
        (b"GET /shop/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414, "uri_too_long", "request_target_too_long"),
        (
            b"GET /shop/x HTTP/1.1\r\nHost: a\r\nX-Big: " + b"b" * 40_000 + b"\r\n\r\n",
            431,
            "header_fields_too_large",
            "header_section_too_large",
        ),
        (
            b"GET /shop/x HTTP/1.1\r\nHost: a\r\n" + b"".join(b"X-H%d: v\r\n" % i for i in range(150)) + b"\r\n",
            431,
            "header_fields_too_large",
            "too_many_header_fields",
        ),
    ],
)
def test_oversized_heads_are_refused_before_the_application(routed, echo_server, request_head, status, code, reason):
    before = hits(echo_server)
    got, body, raw_head = status_and_body(raw_request(routed.port, request_head))
    assert got == status
    assert body["error"]["code"] == code and body["error"]["details"] == {"reason": reason}
    assert body["request_id"]
    assert b"connection: close" in raw_head.lower()
    assert hits(echo_server) == before


def test_a_malformed_request_gets_the_envelope_not_plain_text(routed):
    status, body, _ = status_and_body(raw_request(routed.port, b"GET /shop/x HTTP/1.1\r\nHost : a\r\n\r\n"))
    assert status == 400
    assert body["success"] is False and body["error"]["code"] == "bad_request"
    assert body["error"]["details"] == {"reason": "malformed_request"}
