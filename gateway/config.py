"""The immutable snapshot one gateway worker serves from.

Built off the request path by ``gateway.loader`` and swapped in whole by
``gateway.reload``. Requests read it once at their start; nothing in it
changes afterwards (balancers mutate only the health registry they point to).
"""

from __future__ import annotations

from dataclasses import dataclass

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

    @property
    def route_count(self) -> int:
        return self.router.route_count

    def upstream_specs(self) -> list[UpstreamSpec]:
        return [runtime.spec for runtime in self.upstreams.values()]
