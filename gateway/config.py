"""The immutable snapshot one gateway worker serves from.

Built off the request path by ``gateway.loader`` and swapped in whole by
``gateway.reload``. Requests read it once at their start; nothing in it
changes afterwards (balancers mutate only the health registry they point to).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.balancer import Balancer
from gateway.router import RouteTable
from gateway.upstream.base import Timeouts
from gateway.upstream_spec import UpstreamSpec


@dataclass(frozen=True, slots=True)
class UpstreamRuntime:
    spec: UpstreamSpec
    balancer: Balancer
    timeouts: Timeouts


@dataclass(frozen=True, slots=True)
class GatewaySnapshot:
    router: RouteTable
    upstreams: dict[str, UpstreamRuntime]
    # Each tenant's config version when the snapshot was built: in-process caches
    # (API keys) compare against it, so a change to a tenant invalidates its entries.
    tenant_versions: Mapping[str, int] = field(default_factory=dict)

    @property
    def route_count(self) -> int:
        return self.router.route_count

    def upstream_specs(self) -> list[UpstreamSpec]:
        return [runtime.spec for runtime in self.upstreams.values()]
