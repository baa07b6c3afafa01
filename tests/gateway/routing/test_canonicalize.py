"""``gateway.canonical.canonicalize``: the one canonical path per request.

Each accepted case states the canonical path and the exact bytes forwarded
upstream; each rejected case states the reason code the proxy puts in the 400.
"""

from __future__ import annotations

import pytest

from gateway.canonical import MAX_PATH_BYTES, BadTarget, CanonicalTarget, canonicalize

# (raw target, canonical path, forwarded raw path)
ACCEPTED: list[tuple[bytes, str, bytes]] = [
    (b"/", "/", b"/"),
    (b"/orders", "/orders", b"/orders"),
    (b"/orders/", "/orders/", b"/orders/"),
    (b"/orders/1/items", "/orders/1/items", b"/orders/1/items"),
    # literal dot segments are resolved (RFC 3986 section 5.2.4)
    (b"/a/../b", "/b", b"/b"),
    (b"/./a", "/a", b"/a"),
    (b"/a/.", "/a/", b"/a/"),
    (b"/a/./b", "/a/b", b"/a/b"),
    (b"/a/b/..", "/a/", b"/a/"),
    (b"/a/..", "/", b"/"),
    (b"/a/b/../../c", "/c", b"/c"),
    (b"/a/./", "/a/", b"/a/"),
    # dots that are not dot segments are data
    (b"/.well-known/acme", "/.well-known/acme", b"/.well-known/acme"),
    (b"/a/.../b", "/a/.../b", b"/a/.../b"),
    (b"/a/..b/c.", "/a/..b/c.", b"/a/..b/c."),
    (b"/file%2ejson", "/file.json", b"/file%2ejson"),
    # runs of slashes are merged
    (b"//a", "/a", b"/a"),
    (b"/a//b", "/a/b", b"/a/b"),
    (b"/a///b//", "/a/b/", b"/a/b/"),
    (b"//", "/", b"/"),
    (b"//evil.example/x", "/evil.example/x", b"/evil.example/x"),
    # unreserved escapes decode for matching, stay byte for byte upstream
    (b"/%41", "/A", b"/%41"),
    (b"/%6Frders/%6frders", "/orders/orders", b"/%6Frders/%6frders"),
    (b"/a%4a%4A", "/aJJ", b"/a%4a%4A"),
    (b"/a%20b", "/a b", b"/a%20b"),
    (b"/100%25", "/100%", b"/100%25"),
    (b"/a%2Cb%3Dc%40d", "/a,b=c@d", b"/a%2Cb%3Dc%40d"),
    (b"/caf%C3%A9", "/café", b"/caf%C3%A9"),
    (b"/%E2%82%AC/%F0%9F%98%80", "/€/😀", b"/%E2%82%AC/%F0%9F%98%80"),
    # encoding preserved in retained segments even when dots/slashes were normalised
    (b"/a%41//./b%2e/../c%7e", "/aA/c~", b"/a%41/c%7e"),
    # sub-delims and tolerated printable characters
    (b"/a:b@c!$&'()*+,=", "/a:b@c!$&'()*+,=", b"/a:b@c!$&'()*+,="),
    (b"/a|b{c}[d]^e`", "/a|b{c}[d]^e`", b"/a|b{c}[d]^e`"),
    (b"/~user/-_.x", "/~user/-_.x", b"/~user/-_.x"),
]

# (raw target, reason)
REJECTED: list[tuple[bytes, str]] = [
    (b"", "empty_target"),
    (b"*", "asterisk_form"),
    (b"http://example.com/a", "not_origin_form"),
    (b"example.com/a", "not_origin_form"),
    (b"a/b", "not_origin_form"),
    # encoded dot segments: some servers decode before resolving, some after
    (b"/a/%2e%2e/b", "encoded_dot_segment"),
    (b"/a/%2E%2E/b", "encoded_dot_segment"),
    (b"/a/%2E./b", "encoded_dot_segment"),
    (b"/a/.%2e/b", "encoded_dot_segment"),
    (b"/a/%2e/b", "encoded_dot_segment"),
    (b"/%2e%2e", "encoded_dot_segment"),
    # dot segments escaping the root
    (b"/..", "dot_segment_escapes_root"),
    (b"/../a", "dot_segment_escapes_root"),
    (b"/a/../..", "dot_segment_escapes_root"),
    (b"/a/../../b", "dot_segment_escapes_root"),
    # separators in disguise
    (b"/a%2fb", "encoded_slash"),
    (b"/a%2Fb", "encoded_slash"),
    (b"/a/..%2f..%2fetc", "encoded_slash"),
    (b"/a%5cb", "encoded_backslash"),
    (b"/a%5Cb", "encoded_backslash"),
    (b"/a\\b", "backslash"),
    (b"/a\\..\\b", "backslash"),
    # path parameters
    (b"/a;x=1/b", "path_parameter"),
    (b"/admin;/x", "path_parameter"),
    (b"/a;", "path_parameter"),
    # delimiters in disguise: a decode-then-reparse upstream would cut there
    (b"/admin%3Bx", "encoded_delimiter"),
    (b"/admin%3bx", "encoded_delimiter"),
    (b"/admin%3Fx", "encoded_delimiter"),
    (b"/admin%23x", "encoded_delimiter"),
    # NUL, controls, whitespace, fragment, raw non-ASCII
    (b"/a\x00", "nul"),
    (b"/a%00", "encoded_nul"),
    (b"/a%00.json", "encoded_nul"),
    (b"/a%0d%0aX-Injected:%201", "encoded_control_character"),
    (b"/a%7f", "encoded_control_character"),
    (b"/a\tb", "control_character"),
    (b"/a\x7fb", "control_character"),
    (b"/a b", "whitespace"),
    (b"/a#frag", "fragment"),
    (b"/a?b", "question_mark_in_path"),
    (b"/caf\xc3\xa9", "non_ascii"),
    # malformed escapes
    (b"/a%zz", "invalid_percent_encoding"),
    (b"/a%4", "invalid_percent_encoding"),
    (b"/a%", "invalid_percent_encoding"),
    (b"/a%g0", "invalid_percent_encoding"),
    # escapes that are not strict UTF-8
    (b"/a/%c0%ae%c0%ae/b", "invalid_utf8"),
    (b"/%c0%af", "invalid_utf8"),
    (b"/%e0%80%ae", "invalid_utf8"),
    (b"/%ed%a0%80", "invalid_utf8"),
    (b"/%ff", "invalid_utf8"),
    (b"/%C3", "invalid_utf8"),
    # double encoding: a twice-decoding upstream would see something new
    (b"/%252e%252e/admin", "double_encoded"),
    (b"/a%252fb", "double_encoded"),
    (b"/%2561dmin", "double_encoded"),
    # Unicode that NFKC folds (fullwidth dots, fullwidth solidus, ligatures)
    (b"/%EF%BC%8E%EF%BC%8E/admin", "unicode_not_normalized"),
    (b"/a%EF%BC%8Fb", "unicode_not_normalized"),
    (b"/%EF%BD%81dmin", "unicode_not_normalized"),
    (b"/e%CC%81", "unicode_not_normalized"),
]


@pytest.mark.parametrize(("raw", "path", "forwarded"), ACCEPTED, ids=[repr(c[0]) for c in ACCEPTED])
def test_canonicalize_accepts(raw: bytes, path: str, forwarded: bytes) -> None:
    target = canonicalize(raw, b"")
    assert target.path == path
    assert target.raw_path == forwarded
    assert target.normalized == (forwarded != raw)


@pytest.mark.parametrize(("raw", "reason"), REJECTED, ids=[repr(c[0]) for c in REJECTED])
def test_canonicalize_rejects(raw: bytes, reason: str) -> None:
    with pytest.raises(BadTarget) as caught:
        canonicalize(raw, b"")
    assert caught.value.reason == reason
    assert caught.value.status == 400


def test_case_tables_are_large_enough() -> None:
    assert len(ACCEPTED) + len(REJECTED) >= 40


def test_unchanged_target_is_forwarded_as_the_same_bytes() -> None:
    raw = b"/Orders/%7Euser/%41%4a%4A/caf%c3%a9/x%20y"
    target = canonicalize(raw, b"")
    assert target.raw_path is raw or target.raw_path == raw
    assert not target.normalized


def test_query_is_forwarded_byte_for_byte_and_never_decoded() -> None:
    query = b"a=%2F%2e%2E&b=%zz&c=caf\xc3\xa9&d=;x&e=/../"
    target = canonicalize(b"/a", query)
    assert target.query == query
    assert target.path == "/a"


@pytest.mark.parametrize("query", [b"a=1#frag", b"a=1 2", b"a=\x00", b"a=\r\n", b"a=\x7f"])
def test_query_with_request_line_breaking_bytes_is_rejected(query: bytes) -> None:
    with pytest.raises(BadTarget) as caught:
        canonicalize(b"/a", query)
    assert caught.value.reason == "invalid_query"


def test_overlong_target_is_414() -> None:
    canonicalize(b"/" + b"a" * (MAX_PATH_BYTES - 1))
    with pytest.raises(BadTarget) as caught:
        canonicalize(b"/" + b"a" * MAX_PATH_BYTES)
    assert caught.value.status == 414
    assert caught.value.reason == "target_too_long"


@pytest.mark.parametrize(
    ("raw", "strip", "expected"),
    [
        (b"/orders", 1, b"/"),
        (b"/orders/", 1, b"/"),
        (b"/orders/1", 1, b"/1"),
        (b"/orders/1/", 1, b"/1/"),
        (b"/%6Frders/%41", 1, b"/%41"),
        (b"/a/b/c", 2, b"/c"),
        (b"/a/b/c", 0, b"/a/b/c"),
        (b"/a/b", 3, b"/"),
        (b"//orders//x%2e", 1, b"/x%2e"),
    ],
)
def test_raw_upstream_strips_whole_segments_of_the_forwarded_bytes(raw: bytes, strip: int, expected: bytes) -> None:
    assert canonicalize(raw).raw_upstream(strip) == expected


def test_canonical_target_is_immutable() -> None:
    target = canonicalize(b"/a")
    assert isinstance(target, CanonicalTarget)
    with pytest.raises(AttributeError):
        target.path = "/b"  # type: ignore[misc]


def test_reason_never_echoes_client_input() -> None:
    with pytest.raises(BadTarget) as caught:
        canonicalize(b"/<script>%zz")
    assert "<script>" not in str(caught.value)
