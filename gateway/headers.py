"""Header rules of an HTTP intermediary (RFC 9110 §7.6, RFC 9112, RFC 7239).

Pure functions over ASGI header lists (``list[tuple[bytes, bytes]]``, names
lowercase as ASGI servers deliver them). The proxy calls
``upstream_request_headers`` once per request and ``downstream_response_headers``
once per response; both remove hop-by-hop headers — the fixed set and every
name listed in ``Connection`` — before the gateway adds its own, so a client
can never smuggle a gateway header past the filter by naming it in Connection.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# RFC 9110 §7.6.1 plus the de-facto ones (Keep-Alive, Proxy-Connection).
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"keep-alive",
        b"proxy-connection",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authenticate",
        b"proxy-authorization",
    }
)
# Set by the gateway itself, never copied from the client.
_REQUEST_REPLACED = frozenset(
    {
        b"host",
        b"expect",
        b"x-request-id",
        b"x-forwarded-for",
        b"x-forwarded-proto",
        b"x-forwarded-host",
        b"x-forwarded-port",
        b"forwarded",
        b"x-real-ip",
        # Identity headers: only an authentication policy of the gateway may set them.
        b"x-consumer-id",
        b"x-consumer-username",
        b"x-consumer-groups",
        b"x-application-id",
        b"x-credential-identifier",
        b"x-anonymous-consumer",
    }
)
_RESPONSE_REPLACED = frozenset({b"x-request-id", b"x-apim-proxy-latency", b"x-apim-upstream-latency"})
# What the single passes drop (or collect) instead of copying.
_REQUEST_DROP = HOP_BY_HOP | _REQUEST_REPLACED | {b"via"}
_RESPONSE_DROP = HOP_BY_HOP | _RESPONSE_REPLACED | {b"via"}

_REQUEST_ID_RE = re.compile(rb"^[A-Za-z0-9._:\-]{1,128}$")
_TOKEN_SPLIT_RE = re.compile(rb"[,\s]+")

VIA_PSEUDONYM = b"apim"
_VIA_BY_VERSION = {version: f"{version} ".encode() + VIA_PSEUDONYM for version in ("1.0", "1.1", "2", "3")}


class FramingError(ValueError):
    """The request's message framing is ambiguous (RFC 9112 §6.3): it must not be forwarded."""


def connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> frozenset[bytes]:
    """Header names listed in every ``Connection`` header, lowercased."""
    tokens: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            tokens.update(token.lower() for token in _TOKEN_SPLIT_RE.split(value) if token)
    return frozenset(tokens)


def strip_hop_by_hop(headers: Iterable[tuple[bytes, bytes]], extra: frozenset[bytes] = frozenset()) -> Headers:
    headers = list(headers)
    drop = HOP_BY_HOP | connection_tokens(headers) | extra
    return [(name, value) for name, value in headers if name not in drop]


def check_request_framing(headers: Sequence[tuple[bytes, bytes]]) -> int | None:
    """The request body length from Content-Length, or None when absent (chunked or no body).

    Refuses what RFC 9112 calls ambiguous (see ``framing_length``).
    """
    lengths = [value for name, value in headers if name == b"content-length"]
    return framing_length(lengths, any(name == b"transfer-encoding" for name, _ in headers))


def framing_length(lengths: Sequence[bytes], has_transfer_encoding: bool) -> int | None:
    """Content-Length from its header values; refuses Content-Length together with
    Transfer-Encoding, several differing values, or a value that is not a plain
    decimal number."""
    if not lengths:
        return None
    if has_transfer_encoding:
        raise FramingError("Content-Length and Transfer-Encoding together")
    if len(lengths) == 1 and lengths[0].isdigit() and len(lengths[0]) <= 18:
        return int(lengths[0])
    values = {part.strip() for value in lengths for part in value.split(b",")}
    if len(values) != 1:
        raise FramingError("conflicting Content-Length values")
    value = values.pop()
    if not value.isdigit() or len(value) > 18:
        raise FramingError("invalid Content-Length")
    return int(value)


# RFC 9110 §7.2 / RFC 3986 §3.2.2: uri-host [ ":" port ]; an IP literal in brackets or a reg-name
# (unreserved, pct-encoded, sub-delims). An empty value is allowed (a target without authority).
_HOST_RE = re.compile(rb"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::[0-9]{0,5})?")
host_ok = _HOST_RE.fullmatch


def host_problem(hosts: int, host: bytes, http_version: str) -> str | None:
    """Why the request's Host fields are refused (RFC 9112 §3.2: 400), or None.

    HTTP/1.1 needs exactly one Host field, HTTP/1.0 at most one, and its value
    must be a valid authority: anything else is ambiguous about which tenant the
    request is for, and an intermediary that picked one of two Hosts could be
    made to disagree with the proxy in front of it.
    """
    if hosts > 1:
        return "duplicate_host"
    if hosts == 0:
        return None if http_version == "1.0" else "missing_host"
    return None if host_ok(host) else "invalid_host"


def safe_request_id(value: bytes | None) -> bytes | None:
    """The client's X-Request-ID when it is a safe token."""
    return value if value is not None and _REQUEST_ID_RE.match(value) else None


@dataclass(frozen=True, slots=True)
class TrustedProxies:
    """Networks whose X-Forwarded-For / Forwarded headers the gateway believes."""

    networks: tuple[IPNetwork, ...] = ()
    _memo: dict[str, bool] = field(default_factory=dict, compare=False, hash=False, repr=False)

    @classmethod
    def parse(cls, cidrs: Iterable[str]) -> TrustedProxies:
        return cls(tuple(ipaddress.ip_network(cidr.strip(), strict=False) for cidr in cidrs if cidr.strip()))

    def trusts(self, address: str) -> bool:
        if not self.networks:
            return False
        memo = self._memo
        known = memo.get(address)
        if known is None:
            known = self._trusts(address)
            if len(memo) >= _TRUST_MEMO_SIZE:
                memo.clear()
            memo[address] = known
        return known

    def _trusts(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in network for network in self.networks)


# Addresses remembered per TrustedProxies: a request asks about its socket peer once or
# twice and parsing an address costs microseconds; peers repeat (load balancers, NAT,
# keep-alive), and a memo that fills up (a flood of distinct addresses) simply starts over.
_TRUST_MEMO_SIZE = 4096


def _forwarded_for_chain(headers: Sequence[tuple[bytes, bytes]]) -> list[str]:
    hops: list[str] = []
    for name, value in headers:
        if name == b"x-forwarded-for":
            hops.extend(part.strip() for part in value.decode("latin-1").split(",") if part.strip())
    return hops


def client_address(peer: str, headers: Sequence[tuple[bytes, bytes]], trusted: TrustedProxies) -> str:
    """The real client: the socket peer, or behind trusted proxies the right-most untrusted hop.

    Never the left-most X-Forwarded-For entry, which any client can write.
    """
    if not trusted.trusts(peer):
        return peer
    for hop in reversed(_forwarded_for_chain(headers)):
        if not trusted.trusts(hop):
            return hop
    return peer


def request_id(headers: Sequence[tuple[bytes, bytes]], generate: Callable[[], bytes]) -> bytes:
    """The client's X-Request-ID when it is a safe token, else a fresh one."""
    for name, value in headers:
        if name == b"x-request-id" and _REQUEST_ID_RE.match(value):
            return value
    return generate()


def _forwarded_node(address: str) -> str:
    return f'"[{address}]"' if ":" in address else address


class Seen:
    """What the gateway saw of the incoming request, for the X-Forwarded-* family and Via.

    A plain slotted class, not a frozen dataclass: one is built per request, and
    a frozen dataclass's ``__init__`` costs several times more.
    """

    __slots__ = ("host", "http_version", "peer", "port", "request_id", "scheme")

    def __init__(
        self, *, peer: str, scheme: str, host: bytes, port: int | None, http_version: str, request_id: bytes
    ) -> None:
        self.peer = peer
        self.scheme = scheme  # http or https as the client reached the gateway
        self.host = host  # the Host header as received (may carry a port)
        self.port = port
        self.http_version = http_version  # "1.0", "1.1", "2"
        self.request_id = request_id


# Request headers the single pass below looks at; everything else is copied or dropped by set lookup.
_FORWARDING = frozenset(
    {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"forwarded"}
)


_DROP_SETS: dict[frozenset[bytes], frozenset[bytes]] = {}


def request_drop_set(extra: frozenset[bytes]) -> frozenset[bytes]:
    """The names never forwarded upstream plus ``extra``; one union per distinct ``extra``, then cached.

    ``extra`` comes from code (framing, a policy's credential header names), never
    from a client, so the cache stays as small as the configuration.
    """
    if not extra:
        return _REQUEST_DROP
    drop = _DROP_SETS.get(extra)
    if drop is None:
        if len(_DROP_SETS) > 1024:
            _DROP_SETS.clear()
        drop = _DROP_SETS[extra] = _REQUEST_DROP | extra
    return drop


def upstream_request_headers(
    incoming: Sequence[tuple[bytes, bytes]],
    *,
    seen: Seen,
    upstream_host: bytes,
    trusted: TrustedProxies,
    remove: frozenset[bytes] = frozenset(),
) -> Headers:
    """Headers to send upstream: hop-by-hop gone, gateway headers set from what it saw.

    From a trusted proxy the incoming X-Forwarded-* / Forwarded are kept and
    extended; from anyone else they are replaced, so a client cannot forge its
    address or scheme for the upstream. One pass over the incoming list (this
    runs on every request); names named in ``Connection`` are removed after it.
    """
    peer_trusted = trusted.trusts(seen.peer)
    drop = request_drop_set(remove)
    out: Headers = []
    named: list[bytes] | None = None
    forwarding: dict[bytes, list[bytes]] = {}
    vias: list[bytes] = []
    for item in incoming:
        name = item[0]
        if name not in drop:
            out.append(item)
        elif name == b"connection":
            named = (named or []) + [t.lower() for t in _TOKEN_SPLIT_RE.split(item[1]) if t]
        elif name == b"via":
            vias.append(item[1])
        elif name in _FORWARDING and peer_trusted:
            forwarding.setdefault(name, []).append(item[1])
    if named:
        tokens = frozenset(named)
        out = [item for item in out if item[0] not in tokens]
    out.append((b"host", upstream_host))

    peer = seen.peer.encode("latin-1")
    prior_xff = forwarding.get(b"x-forwarded-for")
    out.append((b"x-forwarded-for", b", ".join(prior_xff) + b", " + peer if prior_xff else peer))
    out.append((b"x-forwarded-proto", forwarding.get(b"x-forwarded-proto", (seen.scheme.encode(),))[0]))
    out.append((b"x-forwarded-host", forwarding.get(b"x-forwarded-host", (seen.host,))[0]))
    if seen.port is not None:
        out.append((b"x-forwarded-port", forwarding.get(b"x-forwarded-port", (str(seen.port).encode(),))[0]))

    element = f"for={_forwarded_node(seen.peer)};proto={seen.scheme}".encode("latin-1")
    if seen.host and b'"' not in seen.host and b";" not in seen.host and b"," not in seen.host:
        element += b';host="' + seen.host + b'"'
    prior_forwarded = forwarding.get(b"forwarded")
    out.append((b"forwarded", b", ".join(prior_forwarded) + b", " + element if prior_forwarded else element))

    via = _VIA_BY_VERSION.get(seen.http_version) or f"{seen.http_version} ".encode() + VIA_PSEUDONYM
    out.append((b"via", b", ".join(vias) + b", " + via if vias else via))
    out.append((b"x-request-id", seen.request_id))
    return out


def downstream_response_headers(
    upstream: Sequence[tuple[bytes, bytes]], *, http_version: str, extra: Headers
) -> Headers:
    """Headers to send the client: hop-by-hop gone, Via extended, the gateway's own added last.

    ``upstream`` names are lowercase (the upstream client's contract). One pass.
    """
    out: Headers = []
    named: list[bytes] | None = None
    vias: list[bytes] = []
    for item in upstream:
        name = item[0]
        if name not in _RESPONSE_DROP:
            out.append(item)
        elif name == b"connection":
            named = (named or []) + [t.lower() for t in _TOKEN_SPLIT_RE.split(item[1]) if t]
        elif name == b"via":
            vias.append(item[1])
    if named:
        tokens = frozenset(named)
        out = [item for item in out if item[0] not in tokens]
    via = _VIA_BY_VERSION.get(http_version) or f"{http_version} ".encode() + VIA_PSEUDONYM
    out.append((b"via", b", ".join(vias) + b", " + via if vias else via))
    out.extend(extra)
    return out
