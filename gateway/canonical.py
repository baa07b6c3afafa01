"""One canonical path per request, computed once from the raw request target.

Routing, every policy, the usage record and the path forwarded upstream all use
the result of :func:`canonicalize`. If they used different views of the same
bytes (the router the decoded path, a policy the raw one, the upstream its own
decoding) a crafted target could be routed or authorised as one path and served
as another: the path-confusion class behind APISIX CVE-2021-43557 (``//internal``
passing a ``^/internal/`` block rule), Apache httpd CVE-2021-41773 (``.%2e``
traversal), Spring/Tomcat ``;`` bypasses and IIS backslash/Unicode folding.

Policy (RFC 3986 section 6 and RFC 9112 section 3.2, strict where ambiguous):

* **Rejected with 400** (:class:`BadTarget`), because two reasonable servers
  would read them differently: anything not in origin-form (``*``,
  absolute-form, empty); ``#``; ``;`` path parameters (Tomcat/Jetty strip them,
  most others do not); a backslash, literal or ``%5C`` (a separator on Windows
  and in some frameworks); ``%2F`` (Envoy's ``path_with_escaped_slashes_action:
  REJECT_REQUEST``: decoding it would add a segment, forwarding it lets the
  upstream do so); ``%3B``, ``%3F`` and ``%23``, which a server that decodes
  before stripping parameters or re-parsing the URL would read as ``;``,
  query or fragment (``/admin%3Bx`` served as ``/admin``); NUL and control
  characters, literal or encoded; whitespace and raw non-ASCII bytes; malformed escapes (``%zz``, ``%4``); escapes that
  do not decode to strict UTF-8 (overlong ``%C0%AE``, surrogates); dot
  segments written with escapes (``%2e``, ``.%2E``) since some servers decode
  before resolving dots and some after; ``..`` that would climb above the root
  (nginx answers 400 too); decoded text that still holds a valid escape
  (``%252e``), so an upstream that decodes twice sees nothing new; and
  non-ASCII segments that change under NFKC (fullwidth ``．．``, ligatures), so
  Unicode folding upstream cannot create ``..`` or a route name either.
* **Normalised**, because every RFC 3986 reader agrees on the result: literal
  ``.`` and ``..`` segments are resolved (RFC 3986 section 5.2.4); runs of
  ``/`` are merged (Envoy ``merge_slashes``, nginx ``merge_slashes on``).
  Merging rather than rejecting keeps clients that join ``base/`` + ``/path``
  working, and it is safe because the merged path is also what the upstream
  receives, so nothing downstream can disagree about it; it also stops
  ``//host/x`` from reaching an upstream that reads it as scheme-relative.
* **Decoded for matching only**: percent escapes are decoded in
  :attr:`CanonicalTarget.path` (``/%6Frders`` routes as ``/orders``), but
  :attr:`CanonicalTarget.raw_path`, the form forwarded upstream, keeps every
  retained segment's bytes as the client sent them, hex case included. When
  nothing was merged or resolved it is the original target byte for byte. Any
  upstream decoding ``raw_path`` once gets ``path`` exactly.
* Printable ASCII that RFC 3986 does not allow unencoded but that carries no
  structure (``" < > [ ] ^ ` { | }``) is tolerated, as nginx does, because
  real clients send it raw; it can never equal a route segment, which
  ``apim.validators`` limits to ``[A-Za-z0-9._~-]``.
* The query string is never decoded or rewritten. It is rejected only for
  bytes that cannot appear in a request line (controls, space, DEL) or ``#``.

A trailing slash is kept (``/orders/`` and ``/orders`` are different resources
to many upstreams); both route under ``/orders``.
"""

from __future__ import annotations

import re
import unicodedata
from typing import NamedTuple
from urllib.parse import unquote_to_bytes

__all__ = ["MAX_PATH_BYTES", "BadTarget", "CanonicalTarget", "canonicalize"]

MAX_PATH_BYTES = 8192

# Characters allowed raw in a segment: RFC 3986 pchar minus ';' and '%' (handled
# separately), plus the structure-free printable characters real clients send raw.
_SEG_CHARS = rb"A-Za-z0-9\-._~!$&'()*+,=:@\"<>\[\]^`{|}"
# The common case: already canonical, nothing to decode. No '%', no ';', no
# empty segment except a trailing one; dot segments are screened separately.
_FAST_RE = re.compile(rb"(?:/[" + _SEG_CHARS + rb"]+)+/?|/")
_PATH_RE = re.compile(rb"(?:[/" + _SEG_CHARS + rb"]|%[0-9A-Fa-f]{2})*")
_DECODED_BAD_RE = re.compile(rb"[\x00-\x1f\x7f/\\;?#]")
_ESCAPE_RE = re.compile(r"%[0-9A-Fa-f]{2}")
_QUERY_BAD_RE = re.compile(rb"[\x00-\x20\x7f#]")


class BadTarget(ValueError):
    """The request target is ambiguous or malformed; the proxy answers ``status``.

    ``reason`` is a stable machine code (it goes into the error envelope's
    details); it never echoes client input, so it is safe to return and log.
    """

    def __init__(self, reason: str, status: int = 400) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class CanonicalTarget(NamedTuple):
    """The request target every later stage uses (immutable).

    ``path``: decoded, dot-free, slash-merged, always starts with ``/``; what the
    router, policies and usage record see. ``raw_path``: the percent-encoded form
    forwarded upstream; it decodes to ``path`` exactly. ``query``: the raw query
    string without ``?``, forwarded byte for byte. ``normalized``: whether
    ``raw_path`` differs from what the client sent (merged slashes or dots).

    A NamedTuple rather than a frozen dataclass: it is built on every request,
    and a tuple is the cheapest immutable object CPython makes (about a third
    of the cost of a frozen slotted dataclass here).
    """

    path: str
    raw_path: bytes
    query: bytes = b""
    normalized: bool = False

    def raw_upstream(self, strip_segments: int) -> bytes:
        """``raw_path`` with its first ``strip_segments`` segments removed.

        The router strips the base path from ``path`` by length; the forwarded
        bytes must lose the same segments, whose encoded length may differ
        (``/%6Frders``). Segments in ``raw_path`` are separated by literal ``/``
        only (``%2F`` is rejected), so counting slashes is exact.
        """
        raw = self.raw_path
        index = 0
        for _ in range(strip_segments):
            index = raw.find(b"/", index + 1)
            if index < 0:
                return b"/"
        return raw[index:]


def _classify(raw_path: bytes) -> str:
    """Name the first reason a raw path failed ``_PATH_RE`` (failure path only)."""
    for index, byte in enumerate(raw_path):
        char = bytes((byte,))
        if char == b"/":
            continue
        if char == b"%":
            if not re.fullmatch(rb"%[0-9A-Fa-f]{2}", raw_path[index : index + 3]):
                return "invalid_percent_encoding"
            continue
        if re.fullmatch(rb"[" + _SEG_CHARS + rb"]", char):
            continue
        if char == b"\\":
            return "backslash"
        if char == b";":
            return "path_parameter"
        if char == b"\x00":
            return "nul"
        if char == b"#":
            return "fragment"
        if char == b"?":
            return "question_mark_in_path"
        if char == b" ":
            return "whitespace"
        if byte < 0x20 or byte == 0x7F:
            return "control_character"
        return "non_ascii"
    return "invalid_character"  # pragma: no cover - the regex and this loop agree


def _decode_segment(raw: bytes) -> str:
    """Decode one raw segment (its characters already checked by ``_PATH_RE``)."""
    if b"%" not in raw:
        return raw.decode("ascii")
    decoded = unquote_to_bytes(raw)
    bad = _DECODED_BAD_RE.search(decoded)
    if bad is not None:
        found = bad.group()
        if found == b"/":
            raise BadTarget("encoded_slash")
        if found == b"\\":
            raise BadTarget("encoded_backslash")
        if found in b";?#":
            raise BadTarget("encoded_delimiter")
        raise BadTarget("encoded_nul" if found == b"\x00" else "encoded_control_character")
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        raise BadTarget("invalid_utf8") from None
    if "%" in text and _ESCAPE_RE.search(text):
        raise BadTarget("double_encoded")
    if text in (".", ".."):
        raise BadTarget("encoded_dot_segment")
    if not text.isascii() and unicodedata.normalize("NFKC", text) != text:
        raise BadTarget("unicode_not_normalized")
    return text


def _check_query(query: bytes) -> None:
    if query and _QUERY_BAD_RE.search(query):
        raise BadTarget("invalid_query")


def canonicalize(raw_path: bytes, query_string: bytes = b"", *, max_length: int = MAX_PATH_BYTES) -> CanonicalTarget:
    """Turn the raw ASGI target (``scope["raw_path"]``, ``scope["query_string"]``)
    into the one :class:`CanonicalTarget` for this request, or raise :class:`BadTarget`.

    Cost: one regex match and one ASCII decode for an already-canonical path
    (the overwhelmingly common case); a per-segment pass otherwise.
    """
    if len(raw_path) > max_length:
        raise BadTarget("target_too_long", 414)
    if not raw_path:
        raise BadTarget("empty_target")
    if raw_path[:1] != b"/":
        raise BadTarget("asterisk_form" if raw_path == b"*" else "not_origin_form")
    _check_query(query_string)
    if _FAST_RE.fullmatch(raw_path) and b"/." not in raw_path:
        return CanonicalTarget(raw_path.decode("ascii"), raw_path, query_string)

    if not _PATH_RE.fullmatch(raw_path):
        raise BadTarget(_classify(raw_path))
    raw_segments = raw_path[1:].split(b"/")
    last = len(raw_segments) - 1
    kept_text: list[str] = []
    kept_raw: list[bytes] = []
    trailing_slash = False
    normalized = False
    for index, raw in enumerate(raw_segments):
        is_last = index == last
        if raw == b"":
            if is_last:
                trailing_slash = True
            else:
                normalized = True  # '//' merged
            continue
        if raw == b".":
            normalized = True
            trailing_slash = is_last
            continue
        if raw == b"..":
            if not kept_text:
                raise BadTarget("dot_segment_escapes_root")
            kept_text.pop()
            kept_raw.pop()
            normalized = True
            trailing_slash = is_last
            continue
        kept_text.append(_decode_segment(raw))
        kept_raw.append(raw)

    if not kept_text:
        return CanonicalTarget("/", b"/", query_string, normalized)
    path = "/" + "/".join(kept_text)
    out_raw = b"/" + b"/".join(kept_raw)
    if trailing_slash:
        path += "/"
        out_raw += b"/"
    return CanonicalTarget(path, out_raw, query_string, normalized)
