"""One gateway worker's long-lived parts and their lifecycle (the ASGI ``lifespan``).

Each worker process owns: the upstream client (its connection pool), the
config watcher (current snapshot + reload triggers), the health registry
(target health that outlives snapshots) and the active health checker. They
start on ``lifespan.startup`` and stop on ``lifespan.shutdown``; nothing here
runs per request.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import socket
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from analytics.recorder import UsageRecorder
from apim.observability.tracing import shutdown_tracing
from apim.target_addresses import AddressGuard
from gateway import tracing
from gateway.config import GatewaySnapshot
from gateway.headers import TrustedProxies
from gateway.health import ActiveHealthChecker, HealthRegistry
from gateway.metrics import GatewayMetrics, runtime_gauges
from gateway.proxy import HttpProxy
from gateway.reload import ConfigWatcher
from gateway.reserved import serve_reserved
from gateway.upstream.base import Timeouts, UpstreamClient, create_upstream_client
from gateway.websocket import WebSocketProxy
from policies.runtime import PolicyServices

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def gc_threshold() -> int:
    """``settings.APIM_GATEWAY_GC_THRESHOLD``: the young generation's collection threshold."""
    from django.conf import settings

    return int(getattr(settings, "APIM_GATEWAY_GC_THRESHOLD", 20_000))


HEALTH_REPORT_INTERVAL = 5.0
# Threads for policy lookups on a cache miss (API keys, consumers): each may hold a database connection.
POLICY_IO_THREADS = 4


class GatewayRuntime:
    def __init__(
        self,
        *,
        client_kind: str,
        trusted_proxies: TrustedProxies,
        poll_interval: float,
        channel_layer: Any = None,
    ) -> None:
        from gateway import loader  # the only module that touches the ORM

        self.client_kind = client_kind
        self.gateway_id = f"{socket.gethostname()}:{os.getpid()}"
        self._loader = loader
        self._report_task: asyncio.Task[None] | None = None
        self.registry = HealthRegistry()
        self._client: UpstreamClient | None = None
        self.checker = ActiveHealthChecker(self.registry, self._probe)
        self._policy_io = ThreadPoolExecutor(max_workers=POLICY_IO_THREADS, thread_name_prefix="apim-policy-io")
        self.policy_services = PolicyServices(run_in_thread=self._run_policy_io)
        services = self.policy_services.mapping()
        self.watcher: ConfigWatcher[GatewaySnapshot] = ConfigWatcher(
            load=lambda: loader.load_snapshot(self.registry, services),
            fingerprint=loader.config_fingerprint,
            poll_interval=poll_interval,
            channel_layer=channel_layer,
            on_swap=self._on_swap,
            release=loader.release_connections,
        )
        # One usage record per request, buffered in memory and flushed off the request path.
        self.usage = UsageRecorder.from_settings()
        # Prometheus metrics: counted from each usage record, published once a second (gateway.metrics).
        self.metrics = GatewayMetrics(
            gauges=lambda: runtime_gauges(self.registry, self.watcher, self.usage),
            reloads=lambda: self.watcher.reloads,
        )
        record = self.metrics.counting(self.usage.record)
        self.http = HttpProxy(
            snapshot=lambda: self.watcher.current,
            # Traced (a span and trace headers per upstream call) only when tracing is on.
            client=tracing.wrap_client_factory(self.client) if tracing.ENABLED else self.client,
            trusted_proxies=trusted_proxies,
            reserved=lambda scope, send: serve_reserved(scope, send, status=self.status, metrics=self.metrics.render),
            usage=record,
        )
        self.websocket = WebSocketProxy(
            snapshot=lambda: self.watcher.current,
            trusted_proxies=trusted_proxies,
            usage=record,
            guard=AddressGuard.from_settings(),
        )

    async def _run_policy_io(self, fn: Callable[[], Any]) -> Any:
        """Blocking lookups for policies (a key-cache miss) on their own small pool.

        Not the loader's thread: a slow snapshot rebuild must not hold up the
        requests waiting on a key lookup, nor they the rebuild.
        """
        return await asyncio.get_running_loop().run_in_executor(self._policy_io, fn)

    async def _close_policy_io(self) -> None:
        """Close each policy thread's database connection in that thread, then end the pool.

        Django connections belong to the thread that opened them; the barrier
        makes every thread of the pool run exactly one of the release calls.
        """
        barrier = threading.Barrier(POLICY_IO_THREADS, timeout=5)

        def release() -> None:
            with contextlib.suppress(threading.BrokenBarrierError):
                barrier.wait()
            self._loader.release_connections()

        loop = asyncio.get_running_loop()
        with contextlib.suppress(Exception):
            await asyncio.gather(*(loop.run_in_executor(self._policy_io, release) for _ in range(POLICY_IO_THREADS)))
        self._policy_io.shutdown(wait=False)

    def client(self) -> UpstreamClient:
        if self._client is None:
            # The SSRF guard (None when APIM_ALLOW_PRIVATE_TARGETS): checked per new connection.
            self._client = create_upstream_client(self.client_kind, guard=AddressGuard.from_settings())
        return self._client

    def status(self) -> dict[str, Any]:
        snapshot = self.watcher.current
        return {
            **self.watcher.status(),
            "routes": snapshot.route_count if snapshot else 0,
            "client": self.client_kind,
            "usage": self.usage.status(),
            "upstreams": self.registry.describe(),
        }

    def _on_swap(self, snapshot: GatewaySnapshot) -> None:
        self.checker.update(snapshot.upstream_specs())

    async def _probe(self, url: str, timeout: float) -> int | None:
        """Active health probe through the same client (no cookies, no env proxies)."""
        origin, _, rest = url.partition("://")
        host, slash, path = rest.partition("/")
        try:
            response = await self.client().request(
                method="GET",
                origin=f"{origin}://{host}",
                target=(slash + path).encode() or b"/",
                headers=[(b"host", host.encode()), (b"user-agent", b"apim-healthcheck")],
                body=None,
                timeouts=Timeouts(connect=timeout, read=timeout, write=timeout),
            )
        except Exception:  # noqa: BLE001 - any failure is an unhealthy probe
            return None
        try:
            async for _ in response.iter_body():
                pass
        except Exception:  # noqa: BLE001
            return None
        finally:
            await response.aclose()
        return response.status

    async def report_health(self) -> None:
        """Write this worker's view of its targets for the admin console (off the request path)."""
        described = self.registry.describe()
        await self.watcher.run_in_thread(lambda: self._loader.report_health(self.gateway_id, described))

    async def _report_health_loop(self) -> None:
        while True:
            try:
                await self.report_health()
            except Exception:
                logger.warning("target health report failed", exc_info=True)
            await asyncio.sleep(HEALTH_REPORT_INTERVAL)

    async def lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    await self.policy_services.start()
                    await self.usage.start()
                    await self.watcher.start()
                    self.checker.start()
                    await self.metrics.start()
                except Exception as exc:
                    logger.exception("gateway start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                self._report_task = asyncio.create_task(self._report_health_loop(), name="apim-health-report")
                # Django's import-time objects never die: keep them out of every GC pass
                # (measured: halves the time the collector takes under load), and collect
                # the young generation less often (APIM_GATEWAY_GC_THRESHOLD).
                gc.freeze()
                gc.set_threshold(gc_threshold(), *gc.get_threshold()[1:])
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._report_task is not None:
                    self._report_task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await self._report_task
                with contextlib.suppress(Exception):
                    await self.watcher.run_in_thread(lambda: self._loader.clear_health(self.gateway_id))
                await self.watcher.stop()
                await self.checker.stop()
                await self.policy_services.stop()
                # Last: every request has finished, so its record is in the buffer (SIGTERM flushes).
                await self.usage.stop()
                await self.metrics.stop()
                await self._close_policy_io()
                if self._client is not None:
                    await self._client.aclose()
                await self.websocket.aclose()
                # Export the spans still queued (a no-op when tracing is off).
                await asyncio.to_thread(shutdown_tracing)
                await send({"type": "lifespan.shutdown.complete"})
                return
