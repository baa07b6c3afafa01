"""The route table: (host, method, canonical path) -> API route, in O(path segments).

Built once per snapshot from :mod:`gateway.snapshot` specs (off the request
path) and never mutated, so a reload swaps the whole table in one assignment
and in-flight requests keep the one they started with.

Semantics, in the order :meth:`RouteTable.lookup` applies them:

1. **Host -> tenant.** The ``Host`` value is compared case-insensitively, with a
   trailing dot and any port removed (tenant hosts cannot carry ports; the
   gateway sits behind one listener, so ``example.com:8443`` is the same site as
   ``example.com``), IPv6 literals in compressed bracketed form. An exact tenant
   host wins, then the most specific wildcard (``*.example.com`` matches any
   name ending in ``.example.com`` at any depth, as in nginx and Envoy, but not
   ``example.com`` itself), then the default tenant, else no match. A host
   selects one tenant and only that tenant's APIs are considered, so one
   tenant's host can never reach another tenant's API.
2. **Host -> APIs of the tenant.** An API with no hosts serves every host of its
   tenant; otherwise only hosts it lists (exact or wildcard).
3. **Longest base path** wins, on whole segments (``/orders`` covers
   ``/orders``, ``/orders/`` and ``/orders/1``, never ``/ordersx``). The API
   owns everything under its base path: if none of its routes matches, the
   answer is 404, never a shorter base path of another API. Two candidate APIs
   with the same base path (the control plane forbids it) resolve to the more
   specific host binding (exact, then longer wildcard, then none), then the
   first given.
4. **Route**: the longest route path prefix under the base path that allows the
   method (an API without routes serves everything). Among routes on the same
   path, one listing the method beats one allowing any method. If routes match
   the path but none allows the method the answer is :class:`MethodNotAllowed`
   carrying the ``Allow`` value (RFC 9110 section 15.5.6), not 404. Method names are
   case-sensitive (RFC 9110 section 9.1): ``get`` is not ``GET``.

Cost: host normalisation and one dict probe (plus one probe per label only
when a tenant uses wildcard hosts), then one dict probe per path segment for the
base path and one per segment for the route. Nothing depends on the number of
APIs or routes. Per-method answers, ``Allow`` values and route patterns are
precomputed; a lookup allocates the split path, the upstream path and the
:class:`Match` tuple.

Per tenant there is one base-path trie per distinct API host key (plus one for
"any host"), each also holding the tenant's host-less APIs; memory is
O(host keys x host-less APIs) per tenant in exchange for a single trie walk.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import NamedTuple, TypeVar

from gateway.snapshot import HTTP_METHODS, ApiSpec, RouteSpec, TenantSpec

__all__ = ["Match", "MethodNotAllowed", "RouteEntry", "RouteTable", "normalize_request_host"]

# Host binding specificity, used only to break base-path ties (see module doc).
_EXACT_SCORE = 1_000
_ANY_SCORE = 0

_T = TypeVar("_T")

# Distinct raw ``Host`` values remembered per table; cleared wholesale when full,
# so a client sending random hosts costs memory bounded by this and nothing more.
HOST_CACHE_SIZE = 4096
_CACHEABLE_HOST_LENGTH = 260  # a DNS name (253) plus a port


def normalize_request_host(host: str | bytes) -> str:
    """The comparison form of a ``Host`` header (or ``:authority``) value.

    Lowercase, port removed, trailing dot removed; ``[::1]:8081`` -> ``[::1]``,
    IPv6 compressed so it equals :func:`gateway.snapshot.normalize_config_host`.
    Malformed values are not rejected here: they simply match no tenant host and
    fall to the default tenant, exactly like any other unknown host.
    """
    if isinstance(host, bytes):
        host = host.decode("latin-1")
    if host.startswith("["):
        end = host.find("]")
        if end < 0:
            return host.lower()
        bare = host[1:end]
        try:
            return f"[{ipaddress.IPv6Address(bare).compressed}]"
        except ValueError:
            return host[: end + 1].lower()
    colon = host.find(":")
    if colon >= 0:
        if host.find(":", colon + 1) >= 0:  # an unbracketed IPv6 literal (invalid, but seen)
            try:
                return f"[{ipaddress.IPv6Address(host).compressed}]"
            except ValueError:
                return host.lower()
        host = host[:colon]
    host = host.lower()
    if host.endswith("."):
        host = host[:-1]
    return host


@dataclass(frozen=True, slots=True, eq=False)
class RouteEntry:
    """What a match resolves to, precomputed once per (API, route).

    ``route`` is ``None`` for an API without routes. ``strip_segments`` is how
    many leading segments to drop from the forwarded path (0 when the API keeps
    its base path): pass it to ``CanonicalTarget.raw_upstream``. ``pattern`` is
    the matched template (base path + route path), a bounded label for
    metrics and usage records, unlike the request path.
    """

    api: ApiSpec
    route: RouteSpec | None
    strip_segments: int
    pattern: str

    @property
    def tenant_id(self) -> Hashable:
        return self.api.tenant_id

    @property
    def api_id(self) -> Hashable:
        return self.api.api_id

    @property
    def route_id(self) -> Hashable | None:
        return None if self.route is None else self.route.route_id

    @property
    def upstream_id(self) -> Hashable | None:
        return self.api.upstream_id


class Match(NamedTuple):
    """A routed request: the precomputed entry plus this request's upstream path.

    ``upstream_path`` is the canonical path as forwarded (base path stripped or
    kept); the bytes to forward are ``target.raw_upstream(entry.strip_segments)``.
    A NamedTuple because it is built on every request and tuples are the
    cheapest immutable object CPython makes.
    """

    entry: RouteEntry
    upstream_path: str


@dataclass(frozen=True, slots=True, eq=False)
class MethodNotAllowed:
    """Routes match the path but none allows the method: answer 405 with ``Allow``.

    One instance per route-trie node, shared by every lookup that ends there.
    """

    allow: tuple[str, ...]
    allow_header: bytes


class _RouteNode:
    """A route-trie node. ``methods`` is ``None`` on nodes no route ends at;
    otherwise it maps every known method to the deepest route on the way here
    that allows it (ancestors included), and ``other`` is the deepest
    any-method route, used for methods outside ``HTTP_METHODS``."""

    __slots__ = ("children", "methods", "not_allowed", "other", "own")

    def __init__(self) -> None:
        self.children: dict[str, _RouteNode] = {}
        self.own: list[RouteSpec] = []
        self.methods: dict[str, RouteEntry] | None = None
        self.other: RouteEntry | None = None
        self.not_allowed: MethodNotAllowed | None = None


class _ApiNode:
    __slots__ = ("base_len", "routes", "spec", "strip")

    def __init__(self, spec: ApiSpec, routes: _RouteNode) -> None:
        self.spec = spec
        self.routes = routes
        self.base_len = len(spec.base_path)
        self.strip = spec.strip_base_path


class _PathNode:
    __slots__ = ("api", "children")

    def __init__(self) -> None:
        self.children: dict[str, _PathNode] = {}
        self.api: _ApiNode | None = None


def _build_routes(spec: ApiSpec) -> _RouteNode:
    """The route trie of one API with every per-method answer resolved."""
    root = _RouteNode()
    base_segments = spec.base_path.count("/")
    strip = base_segments if spec.strip_base_path else 0
    # No routes configured: the whole API, any method (``None`` stands for it).
    routes: list[RouteSpec | None] = [r for r in spec.routes if r.enabled] if spec.routes else [None]
    for route in routes:
        node = root
        path = "/" if route is None else route.path
        if path != "/":
            for segment in path[1:].split("/"):
                node = node.children.setdefault(segment, _RouteNode())
        node.own.append(route if route is not None else RouteSpec(route_id=None))
    implicit = not spec.routes

    def resolve(
        node: _RouteNode,
        inherited: dict[str, RouteEntry],
        other: RouteEntry | None,
        allow: frozenset[str],
        pattern: str,
    ) -> None:
        if node.own:
            methods = dict(inherited)
            any_route: RouteEntry | None = None
            listed: dict[str, RouteEntry] = {}
            for route in node.own:
                entry = RouteEntry(spec, None if implicit else route, strip, pattern)
                if not route.methods:
                    if any_route is None:
                        any_route = entry
                else:
                    for method in route.methods:
                        listed.setdefault(method, entry)
                    allow = allow | route.methods
            if any_route is not None:
                other = any_route
                for method in HTTP_METHODS:
                    methods[method] = any_route
            methods.update(listed)
            node.methods = methods
            node.other = other
            names = tuple(sorted(allow))
            node.not_allowed = MethodNotAllowed(names, ", ".join(names).encode("ascii"))
            inherited = methods
        for segment, child in node.children.items():
            child_pattern = f"{pattern.rstrip('/')}/{segment}"
            resolve(child, inherited, other, allow, child_pattern)

    resolve(root, {}, None, frozenset(), spec.base_path)
    return root


@dataclass(slots=True)
class _Tenant:
    """One tenant's tables: per exact host, per wildcard suffix, and for any host."""

    tenant_id: Hashable
    exact: dict[str, _PathNode] = field(default_factory=dict)
    wildcard: dict[str, _PathNode] = field(default_factory=dict)
    any_host: _PathNode = field(default_factory=_PathNode)

    def table_for(self, host: str) -> _PathNode:
        table = self.exact.get(host)
        if table is not None:
            return table
        if self.wildcard:
            table = _by_suffix(self.wildcard, host)
            if table is not None:
                return table
        return self.any_host


def _by_suffix(table: dict[str, _T], host: str) -> _T | None:
    """Most specific wildcard first: ``a.b.c`` tries ``.b.c`` then ``.c``."""
    dot = host.find(".", 1)
    while dot > 0:
        found = table.get(host[dot:])
        if found is not None:
            return found
        dot = host.find(".", dot + 1)
    return None


def _wildcard_suffix(host: str) -> str | None:
    return host[1:] if host.startswith("*.") else None


def _host_score(api_hosts: tuple[str, ...], key: str | None) -> int | None:
    """How specifically an API's hosts cover a table key (``None``: not at all).

    ``key`` is an exact host, a wildcard suffix (``.example.com``) or ``None``
    for the any-host table. A wildcard covers an exact host or a narrower
    wildcard that ends with its suffix.
    """
    if not api_hosts:
        return _ANY_SCORE
    if key is None:
        return None
    best: int | None = None
    is_suffix_key = key.startswith(".")
    for host in api_hosts:
        suffix = _wildcard_suffix(host)
        if suffix is None:
            score = _EXACT_SCORE if (not is_suffix_key and host == key) else None
        elif key == suffix or (key.endswith(suffix) and len(key) > len(suffix)):
            score = suffix.count(".")
        else:
            score = None
        if score is not None and (best is None or score > best):
            best = score
    return best


def _build_table(apis: list[tuple[_ApiNode, tuple[str, ...]]], key: str | None) -> _PathNode:
    root = _PathNode()
    scores: dict[int, int] = {}
    for api, hosts in apis:
        score = _host_score(hosts, key)
        if score is None:
            continue
        node = root
        for segment in api.spec.base_path[1:].split("/"):
            node = node.children.setdefault(segment, _PathNode())
        held = node.api
        if held is None or score > scores[id(node)]:
            node.api = api
            scores[id(node)] = score
    return root


class RouteTable:
    """The immutable route table of one snapshot. Build it off the request path."""

    __slots__ = (
        "_default",
        "_direct",
        "_exact_tenants",
        "_host_cache",
        "_no_tenant",
        "_route_count",
        "_tenants",
        "_wild_tenants",
    )

    def __init__(self, tenants: Iterable[TenantSpec], apis: Iterable[ApiSpec]) -> None:
        """Index ``tenants`` and the routable ``apis``; ``ValueError`` on a
        contradiction (a host claimed by two tenants, two default tenants, an API
        of an unknown tenant) so a bad snapshot is refused as a whole."""
        self._tenants: dict[Hashable, _Tenant] = {}
        self._exact_tenants: dict[str, _Tenant] = {}
        self._wild_tenants: dict[str, _Tenant] = {}
        self._default: _Tenant | None = None
        for spec in tenants:
            if spec.tenant_id in self._tenants:
                raise ValueError(f"tenant {spec.tenant_id!r} given twice")
            tenant = _Tenant(spec.tenant_id)
            self._tenants[spec.tenant_id] = tenant
            if spec.is_default:
                if self._default is not None:
                    raise ValueError("more than one default tenant")
                self._default = tenant
            for host in spec.hosts:
                suffix = _wildcard_suffix(host)
                index = self._exact_tenants if suffix is None else self._wild_tenants
                key = host if suffix is None else suffix
                if key in index:
                    raise ValueError(f"host {host!r} is claimed by two tenants")
                index[key] = tenant

        per_tenant: dict[Hashable, list[tuple[_ApiNode, tuple[str, ...]]]] = {}
        route_count = 0
        for api in apis:
            if not api.routable:
                continue
            if api.tenant_id not in self._tenants:
                raise ValueError(f"API {api.api_id!r} belongs to unknown tenant {api.tenant_id!r}")
            per_tenant.setdefault(api.tenant_id, []).append((_ApiNode(api, _build_routes(api)), api.hosts))
            route_count += sum(1 for r in api.routes if r.enabled) if api.routes else 1
        self._route_count = route_count

        for tenant_id, tenant_apis in per_tenant.items():
            tenant = self._tenants[tenant_id]
            exact_keys: set[str] = set()
            wild_keys: set[str] = set()
            for _, hosts in tenant_apis:
                for host in hosts:
                    suffix = _wildcard_suffix(host)
                    if suffix is None:
                        exact_keys.add(host)
                    else:
                        wild_keys.add(suffix)
            tenant.any_host = _build_table(tenant_apis, None)
            tenant.exact = {key: _build_table(tenant_apis, key) for key in exact_keys}
            tenant.wildcard = {key: _build_table(tenant_apis, key) for key in wild_keys}

        self._no_tenant = _PathNode()  # an empty trie: hosts no tenant takes route nowhere
        self._host_cache: dict[str | bytes, _PathNode] = {}
        # Host values whose table is known at build time skip tenant resolution.
        self._direct: dict[str, _PathNode] = {}
        candidates = set(self._exact_tenants)
        for tenant in self._tenants.values():
            candidates.update(tenant.exact)
        for host in candidates:
            owner = self._tenant_for(host)
            if owner is not None:
                self._direct[host] = owner.table_for(host)

    @property
    def route_count(self) -> int:
        """Routes indexed (an API without routes counts as one)."""
        return self._route_count

    def _tenant_for(self, host: str) -> _Tenant | None:
        tenant = self._exact_tenants.get(host)
        if tenant is not None:
            return tenant
        if self._wild_tenants:
            tenant = _by_suffix(self._wild_tenants, host)
            if tenant is not None:
                return tenant
        return self._default

    def tenant_for_host(self, host: str | bytes) -> Hashable | None:
        """The tenant a ``Host`` value selects (for requests that match no route:
        the usage record and tenant-level policies still need it)."""
        tenant = self._tenant_for(normalize_request_host(host))
        return None if tenant is None else tenant.tenant_id

    def _table_for_host(self, host: str | bytes) -> _PathNode:
        key = normalize_request_host(host)
        node = self._direct.get(key)
        if node is not None:
            return node
        tenant = self._tenant_for(key)
        return self._no_tenant if tenant is None else tenant.table_for(key)

    def lookup(self, host: str | bytes, method: str, path: str) -> Match | MethodNotAllowed | None:
        """Route a request. ``path`` must be a canonical path
        (``CanonicalTarget.path``); ``None`` means 404.

        The raw ``host`` value is memoised (a bounded dict of a pure function
        of this immutable table), so the usual few distinct ``Host`` headers
        cost one dict probe instead of normalisation and tenant resolution.
        """
        cache = self._host_cache
        node = cache.get(host)
        if node is None:
            node = self._table_for_host(host)
            if len(host) <= _CACHEABLE_HOST_LENGTH:
                if len(cache) >= HOST_CACHE_SIZE:
                    cache.clear()
                cache[host] = node

        segments = path.split("/")
        count = len(segments)
        api: _ApiNode | None = None
        depth = 0
        children = node.children
        index = 1
        while index < count and children:
            child = children.get(segments[index])
            if child is None:
                break
            if child.api is not None:
                api = child.api
                depth = index
            children = child.children
            index += 1
        if api is None:
            return None

        rnode = api.routes
        last = rnode if rnode.methods is not None else None
        index = depth + 1
        while index < count and rnode.children:
            found = rnode.children.get(segments[index])
            if found is None:
                break
            rnode = found
            if rnode.methods is not None:
                last = rnode
            index += 1
        if last is None:
            return None
        methods = last.methods
        if methods is None:  # unreachable: ``last`` is only set on nodes with methods
            return None
        entry = methods.get(method, last.other)
        if entry is None:
            return last.not_allowed
        if api.strip:
            return Match(entry, path[api.base_len :] or "/")
        return Match(entry, path)
