"""Property-style checks with a seeded generator (hypothesis is not installed).

1. No reading of a tricky target reaches another route: for every target
   ``canonicalize`` accepts, every way a server downstream might read the raw
   bytes (RFC 3986 order, decode-first, double decode, ``;``/backslash
   folding, NFKC) gives the canonical path, so it routes the same.
2. The trie router agrees with the brute-force reference on a 10,000-route
   table for random requests.
"""

from __future__ import annotations

import random
import unicodedata
from collections.abc import Callable
from urllib.parse import unquote, unquote_to_bytes

import pytest

from gateway.canonical import BadTarget, canonicalize
from gateway.router import Match, MethodNotAllowed, RouteTable
from gateway.snapshot import ApiSpec, RouteSpec, TenantSpec
from tests.gateway.routing.reference import RefMatch, RefNotAllowed, ref_lookup

SEED = 20261126

BENIGN_PIECES: list[bytes] = [
    b"orders",
    b"admin",
    b"public",
    b"a",
    b"",
    b".",
    b"..",
    b"...",
    b"%41",
    b"%6frders",
    b"%61dmin",
    b"~",
    b"%7E",
    b"%C3%A9",
    b"%20",
    b"%2C",
    b"%40",
    b"x.json",
    b"%2ejson",
]
TRICKY_PIECES: list[bytes] = [
    b"orders",
    b"admin",
    b"public",
    b"a",
    b"",
    b".",
    b"..",
    b"...",
    b"%2e",
    b"%2E",
    b".%2e",
    b"%2e.",
    b"%2e%2e",
    b"%2f",
    b"%2F",
    b"%5c",
    b"%5C",
    b"\\",
    b";x=1",
    b";",
    b"%00",
    b"\x00",
    b"%41",
    b"%6frders",
    b"%61dmin",
    b"%252e",
    b"%252f",
    b"%25",
    b"%zz",
    b"%c0%ae",
    b"%ef%bc%8e",
    b"%EF%BD%81",
    b"%C3%A9",
    b"\xc3\xa9",
    b"/",
    b"//",
    b" ",
    b"#",
    b"%20",
    b"%3b",
    b"%3B",
    b"~",
    b"%7E",
    b"..;",
    b"admin;",
    b"%2e%2e%2f",
    b"%u002e",
    b"%",
    b"%0a",
    b"%09",
    b"?",
    b"%3F",
    b"%23",
    b"%3f.",
    b"%2C",
    b"%40",
]


def _remove_dot_segments(segments: list[str]) -> list[str] | None:
    """RFC 3986 5.2.4 over a segment list with empty segments merged; ``None``
    when ``..`` climbs above the root (treated as unreachable)."""
    out: list[str] = []
    trailing = False
    for index, segment in enumerate(segments):
        last = index == len(segments) - 1
        if segment in ("", "."):
            trailing = last
            continue
        if segment == "..":
            if not out:
                return None
            out.pop()
            trailing = last
            continue
        out.append(segment)
        trailing = False
    return out + ([""] if trailing and out else [])


def _join(segments: list[str] | None) -> str | None:
    if segments is None:
        return None
    return "/" + "/".join(segments) if segments else "/"


def rfc_reading(raw: bytes) -> str | None:
    """Resolve dots and merge slashes on the raw bytes, then decode each segment."""
    segments = _remove_dot_segments(raw.decode("latin-1")[1:].split("/"))
    if segments is None:
        return None
    return _join([unquote_to_bytes(s).decode("utf-8") for s in segments])


def decode_first_reading(raw: bytes, decode: Callable[[str], str] = unquote) -> str | None:
    """Decode everything first (Apache/IIS-style), fold backslashes to '/', drop
    ``;params`` (Tomcat), then resolve dots and merge slashes."""
    text = decode(raw.decode("utf-8"))
    text = text.replace("\\", "/")
    segments = [s.split(";", 1)[0] for s in text[1:].split("/")]
    return _join(_remove_dot_segments(segments))


def reparse_reading(raw: bytes) -> str | None:
    """Decode, then parse the result as a URL again (a proxy that forwards the
    decoded path): anything after a decoded '?' or '#' leaves the path."""
    text = unquote(raw.decode("utf-8"))
    for delimiter in "?#":
        text = text.split(delimiter, 1)[0]
    return decode_first_reading(text.encode("utf-8"), lambda s: s)


def double_decode_reading(raw: bytes) -> str | None:
    return decode_first_reading(raw, lambda s: unquote(unquote(s)))


def nfkc_reading(raw: bytes) -> str | None:
    return decode_first_reading(raw, lambda s: unicodedata.normalize("NFKC", unquote(s)))


READINGS = [rfc_reading, decode_first_reading, reparse_reading, double_decode_reading, nfkc_reading]


def _random_target(rng: random.Random) -> bytes:
    parts = []
    for _ in range(rng.randint(1, 6)):
        pool = TRICKY_PIECES if rng.random() < 0.25 else BENIGN_PIECES
        piece = rng.choice(pool)
        if rng.random() < 0.3:
            piece += rng.choice(pool)
        parts.append(piece)
    return b"/" + b"/".join(parts) + (b"/" if rng.random() < 0.2 else b"")


def _outcome(result: Match | MethodNotAllowed | None) -> object:
    if isinstance(result, Match):
        return ("match", result.entry.api_id, result.entry.route_id, result.upstream_path)
    if isinstance(result, MethodNotAllowed):
        return ("405", result.allow)
    return None


@pytest.fixture(scope="module")
def tricky_table() -> RouteTable:
    routes = (
        RouteSpec("public", "/public"),
        RouteSpec("admin", "/admin", frozenset({"GET"})),
        RouteSpec("orders", "/orders"),
    )
    apis = [
        ApiSpec("root-a", "t", "/a", routes=routes),
        ApiSpec("admin", "t", "/admin"),
        ApiSpec("orders", "t", "/orders"),
        ApiSpec("public", "t", "/public", routes=(RouteSpec("p", "/"),)),
    ]
    return RouteTable([TenantSpec("t", is_default=True)], apis)


def test_no_reading_of_an_accepted_target_routes_elsewhere(tricky_table: RouteTable) -> None:
    rng = random.Random(SEED)
    accepted = rejected = 0
    for _ in range(20_000):
        raw = _random_target(rng)
        try:
            target = canonicalize(raw)
        except BadTarget:
            rejected += 1
            continue
        accepted += 1
        # what is forwarded decodes to exactly what was routed, and is a fixed point
        assert unquote_to_bytes(target.raw_path).decode("utf-8") == target.path, raw
        again = canonicalize(target.raw_path)
        assert (again.path, again.raw_path, again.normalized) == (target.path, target.raw_path, False), raw
        if not target.normalized:
            assert target.raw_path == raw
        for reading in READINGS:
            seen = reading(raw)
            assert seen == target.path, (raw, reading.__name__, seen, target.path)
            for method in ("GET", "POST"):
                assert _outcome(tricky_table.lookup("h", method, seen)) == _outcome(
                    tricky_table.lookup("h", method, target.path)
                )
    # the generator must exercise both sides meaningfully
    assert accepted > 2_000, accepted
    assert rejected > 2_000, rejected


def _big_config(rng: random.Random) -> tuple[list[TenantSpec], list[ApiSpec]]:
    vocab = ["a", "b", "c", "v1", "v2", "orders", "users", "x"]
    tenants: list[TenantSpec] = []
    for i in range(20):
        tenant_hosts = [f"t{i}.example.com"]
        if i % 3 == 0:
            tenant_hosts.append(f"*.t{i}.example.com")
        if i % 5 == 1:
            tenant_hosts.append(f"*.eu.t{i - 1}.example.com")  # a narrower wildcard owned by another tenant
        tenants.append(TenantSpec(f"t{i}", tuple(tenant_hosts), is_default=i == 0))
    apis: list[ApiSpec] = []
    methods = ["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]
    for i in range(20):
        for j in range(50):
            base = "/" + "/".join(rng.choice(vocab) for _ in range(rng.randint(1, 3)))
            roll = rng.random()
            if roll < 0.7:
                hosts: tuple[str, ...] = ()
            elif roll < 0.85:
                hosts = (rng.choice([f"api.t{i}.example.com", f"t{i}.example.com", f"x.eu.t{i}.example.com"]),)
            else:
                hosts = (rng.choice([f"*.t{i}.example.com", f"*.eu.t{i}.example.com"]),)
            routes = []
            for k in range(10):
                depth = rng.choice([0, 0, 1, 1, 2, 3])
                path = "/" + "/".join(rng.choice(vocab) for _ in range(depth))
                chosen = frozenset(rng.sample(methods, rng.randint(1, 3))) if rng.random() < 0.6 else frozenset()
                routes.append(RouteSpec(f"r{i}-{j}-{k}", path, chosen, enabled=rng.random() > 0.05))
            apis.append(
                ApiSpec(
                    f"api{i}-{j}",
                    f"t{i}",
                    base,
                    hosts=hosts,
                    strip_base_path=rng.random() < 0.5,
                    routes=tuple(routes),
                    routable=rng.random() > 0.03,
                )
            )
    return tenants, apis


def _random_host(rng: random.Random) -> str:
    i = rng.randrange(20)
    host = rng.choice(
        [
            f"t{i}.example.com",
            f"api.t{i}.example.com",
            f"x.eu.t{i}.example.com",
            f"deep.x.t{i}.example.com",
            f"eu.t{i}.example.com",
            "unknown.test",
            f"t{i}.example.org",
        ]
    )
    if rng.random() < 0.2:
        host = host.upper()
    if rng.random() < 0.2:
        host += "."
    if rng.random() < 0.2:
        host += rng.choice([":443", ":80", ":8081"])
    return host


def _normalise_ref(result: RefMatch | RefNotAllowed | None) -> object:
    if isinstance(result, RefMatch):
        return ("match", result.api_id, result.route_id, result.upstream_path)
    if isinstance(result, RefNotAllowed):
        return ("405", result.allow)
    return None


def test_router_agrees_with_brute_force_on_10000_routes() -> None:
    rng = random.Random(SEED)
    tenants, apis = _big_config(rng)
    assert sum(len(a.routes) for a in apis) == 10_000
    table = RouteTable(tenants, apis)
    vocab = ["a", "b", "c", "v1", "v2", "orders", "users", "x", "zz"]
    kinds: dict[str, int] = {"match": 0, "405": 0, "none": 0}
    for _ in range(6_000):
        host = _random_host(rng)
        method = rng.choice(["GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "PROPFIND", "get"])
        path = "/" + "/".join(rng.choice(vocab) for _ in range(rng.randint(0, 6)))
        if len(path) > 1 and rng.random() < 0.2:
            path += "/"
        got = _outcome(table.lookup(host, method, path))
        expected = _normalise_ref(ref_lookup(tenants, apis, host, method, path))
        assert got == expected, (host, method, path)
        kinds["none" if got is None else got[0]] += 1  # type: ignore[index]
    assert min(kinds.values()) > 200, kinds
