"""A real gateway server for tests: uvicorn in a background thread on a free loopback port.

``GatewayHarness`` serves ``gateway.proxy.HttpProxy`` with a snapshot the test
builds from plain specs (no database), so each test states exactly the
routes and upstreams it needs and can swap the snapshot mid-traffic, as a
reload does. Database-backed reloads use ``GatewayRuntime`` instead (see
``test_config_reload.py``).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import uvicorn

from gateway.balancer import build_balancers
from gateway.config import GatewaySnapshot, UpstreamRuntime
from gateway.headers import TrustedProxies
from gateway.health import HealthRegistry
from gateway.http_protocol import GatewayHttpProtocol
from gateway.proxy import HttpProxy
from gateway.reserved import serve_reserved
from gateway.router import RouteTable
from gateway.snapshot import ApiSpec, RouteSpec, TenantSpec
from gateway.upstream.base import Timeouts, UpstreamClient, create_upstream_client
from gateway.upstream_spec import TargetSpec, UpstreamSpec
from policies.base import ApiInfo
from policies.engine import AttachmentSpec, PlanSpec, compile_chains


@dataclass
class Api:
    """One API for a test snapshot: a base path served by some target URLs."""

    base_path: str
    targets: list[str]
    strip: bool = True
    routes: list[tuple[str, frozenset[str]]] = field(default_factory=list)
    read_timeout: float = 5.0
    connect_timeout: float = 2.0
    retries: int = 1
    passive_failure_threshold: int = 5
    load_balancing: str = "round_robin"
    hosts: tuple[str, ...] = ()
    tenant: str = "t1"
    # API-scoped policies: (policy type, config) pairs, or full AttachmentSpecs.
    policies: list[tuple[str, dict[str, Any]] | AttachmentSpec] = field(default_factory=list)
    api_id: str | None = None
    openapi: dict[str, Any] | None = None


def build_snapshot(
    apis: Iterable[Api],
    registry: HealthRegistry,
    tenants: Iterable[TenantSpec] | None = None,
    *,
    attachments: Iterable[AttachmentSpec] = (),
    services: Mapping[str, Any] | None = None,
    plans: Mapping[str, PlanSpec] | None = None,
    tenant_versions: Mapping[str, int] | None = None,
) -> GatewaySnapshot:
    """A snapshot from plain specs. ``attachments`` adds tenant-wide or consumer-scoped policies."""
    apis = list(apis)
    specs = list(attachments)
    infos = []
    tenant_specs = list(tenants) if tenants is not None else [TenantSpec(tenant_id="t1", hosts=(), is_default=True)]
    upstream_specs = []
    api_specs = []
    for index, api in enumerate(apis):
        upstream_id = f"u{index}"
        upstream_specs.append(
            UpstreamSpec(
                id=upstream_id,
                name=upstream_id,
                load_balancing=api.load_balancing,
                targets=tuple(TargetSpec(url=url) for url in api.targets),
                connect_timeout=api.connect_timeout,
                read_timeout=api.read_timeout,
                write_timeout=5.0,
                retries=api.retries,
                passive_failure_threshold=api.passive_failure_threshold,
            )
        )
        api_id = api.api_id or f"a{index}"
        for n, policy in enumerate(api.policies):
            if isinstance(policy, AttachmentSpec):
                specs.append(policy)
            else:
                specs.append(
                    AttachmentSpec(
                        id=f"{api_id}-p{n}", policy=policy[0], config=policy[1], tenant_id=api.tenant, api_id=api_id
                    )
                )
        infos.append(
            ApiInfo(
                api_id=api_id,
                tenant_id=api.tenant,
                name=api_id,
                base_path=api.base_path,
                openapi=api.openapi,
                route_patterns=tuple((p, frozenset(m)) for p, m in api.routes),
            )
        )
        api_specs.append(
            ApiSpec(
                api_id=api_id,
                tenant_id=api.tenant,
                base_path=api.base_path,
                hosts=api.hosts,
                strip_base_path=api.strip,
                upstream_id=upstream_id,
                routes=tuple(
                    RouteSpec(route_id=f"r{index}-{n}", path=p, methods=m) for n, (p, m) in enumerate(api.routes)
                ),
            )
        )
    versions = dict(tenant_versions or {})
    for api in apis:
        versions.setdefault(api.tenant, 1)
    extra = {"plans": dict(plans or {}), "tenant_versions": versions}
    chains = compile_chains(infos, specs, services=services or {}, extra=extra)
    api_specs = [
        ApiSpec(
            api_id=a.api_id,
            tenant_id=a.tenant_id,
            base_path=a.base_path,
            hosts=a.hosts,
            strip_base_path=a.strip_base_path,
            upstream_id=a.upstream_id,
            routes=a.routes,
            extra=chains.get(str(a.api_id)),
        )
        for a in api_specs
    ]
    registry.sync(upstream_specs)
    balancers = build_balancers(upstream_specs, registry)
    upstreams = {
        spec.id: UpstreamRuntime(
            spec=spec,
            balancer=balancers[spec.id],
            timeouts=Timeouts(connect=spec.connect_timeout, read=spec.read_timeout, write=spec.write_timeout),
        )
        for spec in upstream_specs
    }
    return GatewaySnapshot(router=RouteTable(tenant_specs, api_specs), upstreams=upstreams, tenant_versions=versions)


class GatewayHarness:
    def __init__(self, *, client_kind: str = "aiohttp", trusted: TrustedProxies | None = None) -> None:
        self.registry = HealthRegistry()
        self.snapshot: GatewaySnapshot | None = None
        self._client: UpstreamClient | None = None
        self.client_kind = client_kind
        self.services: Mapping[str, Any] = {}  # policy runtime services (key store, limiter) for configure()
        self.proxy = HttpProxy(
            snapshot=lambda: self.snapshot,
            client=self._get_client,
            trusted_proxies=trusted or TrustedProxies(),
            reserved=lambda scope, send: serve_reserved(
                scope, send, status=lambda: {"loaded": self.snapshot is not None}
            ),
        )
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port = 0

    def _get_client(self) -> UpstreamClient:
        if self._client is None:
            self._client = create_upstream_client(self.client_kind)
        return self._client

    def configure(
        self,
        *apis: Api,
        tenants: Iterable[TenantSpec] | None = None,
        attachments: Iterable[AttachmentSpec] = (),
        services: Mapping[str, Any] | None = None,
        plans: Mapping[str, PlanSpec] | None = None,
        tenant_versions: Mapping[str, int] | None = None,
    ) -> GatewaySnapshot:
        self.snapshot = build_snapshot(
            apis,
            self.registry,
            tenants,
            attachments=attachments,
            services=services if services is not None else self.services,
            plans=plans,
            tenant_versions=tenant_versions,
        )
        return self.snapshot

    async def _app(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await self.proxy(scope, receive, send)

    def start(self) -> GatewayHarness:
        config = uvicorn.Config(
            self._app,
            host="127.0.0.1",
            port=0,
            loop="asyncio",
            http=GatewayHttpProtocol,  # what `manage.py gateway` serves with
            lifespan="off",
            interface="asgi3",
            proxy_headers=False,
            access_log=False,
            log_level="error",
            server_header=False,
            date_header=False,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("gateway test server did not start")
            time.sleep(0.01)
        self.port = self._server.servers[0].sockets[0].getsockname()[1]
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
