"""Plain, frozen descriptions of what the gateway routes: the router's input.

The snapshot loader (the one module that reads the ORM) turns tenants, their
hosts, routable APIs and enabled routes into these objects; the router never
sees a model. Each spec normalises and re-checks its fields on construction,
with the same rules as ``apim.validators`` but without Django, so a spec that
exists is one the router can trust: base and route paths are canonical (the
form :func:`gateway.canonical.canonicalize` produces, restricted to
``[A-Za-z0-9._~-]`` segments), hosts are lowercase without a trailing dot or
port, methods are upper case. A violation raises ``ValueError``, which fails the
snapshot build, so the last good snapshot keeps serving.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

__all__ = [
    "HTTP_METHODS",
    "RESERVED_PATH_PREFIX",
    "ApiSpec",
    "RouteSpec",
    "TenantSpec",
    "check_path",
    "normalize_config_host",
]

RESERVED_PATH_PREFIX = "/__apim"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

_SEGMENT_RE = re.compile(r"[A-Za-z0-9._~-]+")
_LABEL_RE = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")


def check_path(value: str, *, allow_root: bool, what: str) -> None:
    """Raise ``ValueError`` unless ``value`` is a canonical path prefix.

    The router compares whole decoded segments, so a prefix with an empty or
    dot segment, a trailing slash or an escape could never match (or could
    match something unintended); refusing it here keeps that impossible.
    """
    if not value.startswith("/"):
        raise ValueError(f"{what} {value!r} must start with '/'")
    if value == "/":
        if allow_root:
            return
        raise ValueError(f"{what} cannot be '/'")
    if value.endswith("/"):
        raise ValueError(f"{what} {value!r} must not end with '/'")
    for segment in value[1:].split("/"):
        if segment in ("", ".", "..") or not _SEGMENT_RE.fullmatch(segment):
            raise ValueError(f"{what} {value!r} has an invalid segment {segment!r}")
    if value == RESERVED_PATH_PREFIX or value.startswith(RESERVED_PATH_PREFIX + "/"):
        raise ValueError(f"{what} {value!r} is under the reserved prefix {RESERVED_PATH_PREFIX}")


def normalize_config_host(value: str) -> str:
    """The comparison form of a configured host (tenant or API).

    Lowercase, no trailing dot; IP literals in their compressed form, IPv6 in
    brackets (``[::1]``), which is how :func:`gateway.router.normalize_request_host`
    renders a ``Host`` header. ``*.example.com`` wildcards are kept as written.
    """
    host = value.strip().lower().rstrip(".")
    if not host:
        raise ValueError("host cannot be empty")
    bare = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        pass
    else:
        return f"[{address.compressed}]" if address.version == 6 else address.compressed
    name = host[2:] if host.startswith("*.") else host
    if len(name) > 253 or not all(_LABEL_RE.fullmatch(label) for label in name.split(".")):
        raise ValueError(f"{value!r} is not a valid host (no port, no scheme; '*.' only as the first label)")
    return host


def _hosts(values: Iterable[str]) -> tuple[str, ...]:
    normalized = tuple(normalize_config_host(v) for v in values)
    if len(set(normalized)) != len(normalized):
        raise ValueError(f"hosts list the same host twice: {normalized!r}")
    return normalized


@dataclass(frozen=True, slots=True)
class TenantSpec:
    """A tenant as routing sees it: the hosts that select it.

    ``is_default``: this tenant serves hosts no tenant lists (at most one
    tenant may; the router refuses two).
    """

    tenant_id: Hashable
    hosts: tuple[str, ...] = ()
    is_default: bool = False

    def __post_init__(self) -> None:
        object.__setattr__(self, "hosts", _hosts(self.hosts))


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One route of an API: a path relative to the API's base path.

    ``path`` ``"/"`` covers the whole API. ``methods`` empty means any method;
    a route allowing ``GET`` also allows ``HEAD`` (RFC 9110 section 9.3.2: HEAD is
    GET without the body), added here so the router and ``Allow`` agree.
    Disabled routes are dropped by the router, not by the loader, so an API
    whose routes are all disabled serves nothing instead of everything.
    """

    route_id: Hashable
    path: str = "/"
    methods: frozenset[str] = frozenset()
    enabled: bool = True

    def __post_init__(self) -> None:
        check_path(self.path, allow_root=True, what="route path")
        methods = frozenset(m.upper() for m in self.methods)
        unknown = methods - HTTP_METHODS
        if unknown:
            raise ValueError(f"route {self.route_id!r}: unsupported methods {sorted(unknown)}")
        if "GET" in methods:
            methods |= {"HEAD"}
        object.__setattr__(self, "methods", methods)


@dataclass(frozen=True, slots=True)
class ApiSpec:
    """A routable API (published or deprecated; the loader leaves the rest out,
    and ``routable=False`` is dropped by the router as a second guard).

    ``hosts`` empty: every host of the tenant. ``routes`` empty: the API serves
    every path and method under ``base_path``. ``strip_base_path``: forward
    ``/orders/1`` as ``/1`` (``/orders`` alone as ``/``) instead of as is.
    ``upstream_id`` and ``extra`` are carried through untouched for the proxy
    (upstream selection, compiled policy chains, labels).
    """

    api_id: Hashable
    tenant_id: Hashable
    base_path: str
    hosts: tuple[str, ...] = ()
    strip_base_path: bool = True
    routes: tuple[RouteSpec, ...] = ()
    upstream_id: Hashable | None = None
    routable: bool = True
    extra: object = field(default=None, compare=False)

    def __post_init__(self) -> None:
        check_path(self.base_path, allow_root=False, what="base path")
        object.__setattr__(self, "hosts", _hosts(self.hosts))
        object.__setattr__(self, "routes", tuple(self.routes))
