"""gateway.headers: hop-by-hop removal, framing checks, X-Forwarded-*/Forwarded/Via, client address."""

import pytest

from gateway.headers import (
    FramingError,
    Seen,
    TrustedProxies,
    check_request_framing,
    client_address,
    downstream_response_headers,
    request_id,
    strip_hop_by_hop,
    upstream_request_headers,
)

SEEN = Seen(
    peer="203.0.113.7", scheme="http", host=b"api.example.com", port=8081, http_version="1.1", request_id=b"rid-1"
)
NOBODY = TrustedProxies()
LB = TrustedProxies.parse(["10.0.0.0/8", "::1/128"])


def names(headers):
    return [name for name, _ in headers]


def values(headers, name):
    return [value for n, value in headers if n == name]


def test_fixed_hop_by_hop_and_connection_named_headers_are_removed():
    incoming = [
        (b"connection", b"keep-alive, X-Secret-Thing"),
        (b"connection", b"x-other"),
        (b"keep-alive", b"timeout=5"),
        (b"proxy-connection", b"keep-alive"),
        (b"te", b"trailers"),
        (b"trailer", b"x-foo"),
        (b"upgrade", b"h2c"),
        (b"proxy-authorization", b"Basic abc"),
        (b"x-secret-thing", b"1"),
        (b"x-other", b"2"),
        (b"accept", b"*/*"),
    ]
    assert strip_hop_by_hop(incoming) == [(b"accept", b"*/*")]


def test_a_client_cannot_use_connection_to_strip_gateway_headers_after_they_are_set():
    incoming = [(b"connection", b"x-forwarded-for, x-request-id, via"), (b"accept", b"a")]
    out = upstream_request_headers(incoming, seen=SEEN, upstream_host=b"up:9000", trusted=NOBODY)
    assert values(out, b"x-forwarded-for") == [b"203.0.113.7"]
    assert values(out, b"x-request-id") == [b"rid-1"]
    assert values(out, b"via") == [b"1.1 apim"]


def test_untrusted_peer_cannot_forge_forwarding_headers():
    incoming = [
        (b"x-forwarded-for", b"1.2.3.4"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"evil.example"),
        (b"forwarded", b"for=1.2.3.4;proto=https"),
        (b"x-real-ip", b"1.2.3.4"),
        (b"host", b"api.example.com"),
    ]
    out = upstream_request_headers(incoming, seen=SEEN, upstream_host=b"up:9000", trusted=NOBODY)
    assert values(out, b"x-forwarded-for") == [b"203.0.113.7"]
    assert values(out, b"x-forwarded-proto") == [b"http"]
    assert values(out, b"x-forwarded-host") == [b"api.example.com"]
    assert values(out, b"forwarded") == [b'for=203.0.113.7;proto=http;host="api.example.com"']
    assert values(out, b"x-real-ip") == []
    assert values(out, b"host") == [b"up:9000"]


def test_trusted_peer_chain_is_appended():
    seen = Seen(peer="10.1.2.3", scheme="http", host=b"api.example.com", port=None, http_version="1.1", request_id=b"r")
    incoming = [
        (b"x-forwarded-for", b"198.51.100.1"),
        (b"x-forwarded-proto", b"https"),
        (b"forwarded", b"for=198.51.100.1"),
    ]
    out = upstream_request_headers(incoming, seen=seen, upstream_host=b"up", trusted=LB)
    assert values(out, b"x-forwarded-for") == [b"198.51.100.1, 10.1.2.3"]
    assert values(out, b"x-forwarded-proto") == [b"https"]
    assert values(out, b"forwarded") == [b'for=198.51.100.1, for=10.1.2.3;proto=http;host="api.example.com"']
    assert values(out, b"x-forwarded-port") == []


def test_ipv6_peer_is_quoted_in_forwarded():
    seen = Seen(peer="2001:db8::1", scheme="https", host=b"h", port=443, http_version="2", request_id=b"r")
    out = upstream_request_headers([], seen=seen, upstream_host=b"up", trusted=NOBODY)
    assert values(out, b"forwarded") == [b'for="[2001:db8::1]";proto=https;host="h"']
    assert values(out, b"via") == [b"2 apim"]


def test_via_is_appended_and_expect_dropped():
    incoming = [(b"via", b"1.0 fred"), (b"expect", b"100-continue")]
    out = upstream_request_headers(incoming, seen=SEEN, upstream_host=b"up", trusted=NOBODY)
    assert values(out, b"via") == [b"1.0 fred, 1.1 apim"]
    assert values(out, b"expect") == []


def test_repeated_end_to_end_headers_keep_their_order():
    incoming = [(b"x-a", b"1"), (b"cookie", b"a=1"), (b"x-a", b"2"), (b"cookie", b"b=2")]
    out = upstream_request_headers(incoming, seen=SEEN, upstream_host=b"up", trusted=NOBODY)
    assert [(n, v) for n, v in out if n in (b"x-a", b"cookie")] == incoming


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], None),
        ([(b"content-length", b"12")], 12),
        ([(b"content-length", b"5"), (b"content-length", b"5")], 5),
        ([(b"transfer-encoding", b"chunked")], None),
    ],
)
def test_framing_accepted(headers, expected):
    assert check_request_framing(headers) == expected


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],
        [(b"content-length", b"5"), (b"content-length", b"6")],
        [(b"content-length", b"5, 6")],
        [(b"content-length", b"-1")],
        [(b"content-length", b"0x10")],
        [(b"content-length", b"+5")],
    ],
)
def test_ambiguous_framing_refused(headers):
    with pytest.raises(FramingError):
        check_request_framing(headers)


def test_client_address_uses_rightmost_untrusted_hop():
    headers = [(b"x-forwarded-for", b"6.6.6.6, 198.51.100.9"), (b"x-forwarded-for", b"10.0.0.5")]
    assert client_address("10.0.0.1", headers, LB) == "198.51.100.9"
    assert client_address("203.0.113.7", headers, LB) == "203.0.113.7"  # untrusted peer: header ignored
    assert client_address("10.0.0.1", [], LB) == "10.0.0.1"
    assert client_address("10.0.0.1", [(b"x-forwarded-for", b"10.0.0.9")], LB) == "10.0.0.1"


def test_trust_answers_are_remembered_per_network_list_and_bounded(monkeypatch):
    from gateway import headers as module

    monkeypatch.setattr(module, "_TRUST_MEMO_SIZE", 3)
    proxies = TrustedProxies.parse(["10.0.0.0/8"])
    others = TrustedProxies.parse(["192.0.2.0/24"])
    answers = [proxies.trusts(a) for a in ("10.1.1.1", "10.1.1.1", "192.0.2.7", "not-an-ip", "2001:db8::1")]
    assert answers == [True, True, False, False, False]
    assert others.trusts("192.0.2.7") is True  # another list's memo is its own
    assert len(proxies._memo) <= 3  # a flood of distinct addresses cannot grow it without end
    assert proxies == TrustedProxies.parse(["10.0.0.0/8"])  # the memo is not part of equality


def test_request_id_passthrough_only_when_safe():
    fresh = lambda: b"generated"  # noqa: E731
    assert request_id([(b"x-request-id", b"abc-123")], fresh) == b"abc-123"
    assert request_id([(b"x-request-id", b"bad id\r\nx: y")], fresh) == b"generated"
    assert request_id([(b"x-request-id", b"a" * 129)], fresh) == b"generated"
    assert request_id([], fresh) == b"generated"


def test_response_headers_filtered_and_extended():
    upstream = [  # names lowercase: the upstream clients' contract
        (b"set-cookie", b"a=1"),
        (b"connection", b"close, X-Internal"),
        (b"x-internal", b"secret"),
        (b"transfer-encoding", b"chunked"),
        (b"set-cookie", b"b=2"),
        (b"x-request-id", b"upstream-made-this-up"),
        (b"via", b"1.1 backend"),
    ]
    out = downstream_response_headers(upstream, http_version="1.1", extra=[(b"x-request-id", b"rid-1")])
    assert out == [
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"via", b"1.1 backend, 1.1 apim"),
        (b"x-request-id", b"rid-1"),
    ]
