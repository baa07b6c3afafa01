"""A brute-force router written straight from the routing rules, for comparison.

Linear scans everywhere, no tries and no precomputation, so it is slow but
easy to check by reading. ``gateway.router.RouteTable`` must agree with it on
every request.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

from gateway.snapshot import HTTP_METHODS, ApiSpec, RouteSpec, TenantSpec


@dataclass(frozen=True)
class RefMatch:
    api_id: Hashable
    route_id: Hashable | None
    upstream_path: str


@dataclass(frozen=True)
class RefNotAllowed:
    allow: tuple[str, ...]


def ref_host(host: str) -> str:
    host = host.lower()
    if host.startswith("["):
        return host[: host.index("]") + 1]
    host = host.split(":", 1)[0]
    return host.removesuffix(".")


def _wild_covers(pattern: str, host: str) -> int | None:
    """Specificity of ``pattern`` for ``host`` (None: no match)."""
    if pattern.startswith("*."):
        suffix = pattern[1:]
        if host.endswith(suffix) and len(host) > len(suffix):
            return suffix.count(".")
        return None
    return 1_000 if pattern == host else None


def _under(path: str, prefix: str) -> bool:
    return prefix == "/" or path == prefix or path.startswith(prefix + "/")


def ref_lookup(
    tenants: Sequence[TenantSpec], apis: Sequence[ApiSpec], host: str, method: str, path: str
) -> RefMatch | RefNotAllowed | None:
    name = ref_host(host)
    tenant = next((t for t in tenants if name in t.hosts), None)
    if tenant is None:
        best: tuple[int, TenantSpec] | None = None
        for t in tenants:
            for pattern in t.hosts:
                if pattern.startswith("*."):
                    score = _wild_covers(pattern, name)
                    if score is not None and (best is None or score > best[0]):
                        best = (score, t)
        tenant = best[1] if best else next((t for t in tenants if t.is_default), None)
    if tenant is None:
        return None

    chosen: tuple[int, int, int, ApiSpec] | None = None
    for order, api in enumerate(apis):
        if api.tenant_id != tenant.tenant_id or not api.routable or not _under(path, api.base_path):
            continue
        if api.hosts:
            scores = [s for s in (_wild_covers(p, name) for p in api.hosts) if s is not None]
            if not scores:
                continue
            score = max(scores)
        else:
            score = 0
        key = (api.base_path.count("/"), score, -order)
        if chosen is None or key > chosen[:3]:
            chosen = (*key, api)
    if chosen is None:
        return None
    api = chosen[3]
    relative = path[len(api.base_path) :] or "/"
    routes: list[RouteSpec | None]
    routes = [r for r in api.routes if r.enabled] if api.routes else [None]
    matching = [r for r in routes if r is None or _under(relative, r.path)]
    if not matching:
        return None

    def allows(route: RouteSpec | None) -> bool:
        if route is None or not route.methods:
            return method in HTTP_METHODS or True
        return method in route.methods

    allowing = [(i, r) for i, r in enumerate(matching) if allows(r)]
    if not allowing:
        allow: set[str] = set()
        for r in matching:
            assert r is not None
            allow |= r.methods
        return RefNotAllowed(tuple(sorted(allow)))

    def rank(item: tuple[int, RouteSpec | None]) -> tuple[int, int, int]:
        index, route = item
        depth = 0 if route is None or route.path == "/" else route.path.count("/")
        explicit = 1 if route is not None and route.methods else 0
        return (depth, explicit, -index)

    _, route = max(allowing, key=rank)
    upstream = relative if api.strip_base_path else path
    return RefMatch(api.api_id, None if route is None else route.route_id, upstream)
