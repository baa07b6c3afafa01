"""The long-lived services policy handlers use, one set per gateway worker.

Handlers are compiled per snapshot, but what they lean on must outlive a
snapshot: the API-key cache, the rate-limit store connection and its request
coalescer, the JWKS cache. The gateway runtime builds one ``PolicyServices``
at start-up, hands ``mapping()`` to every snapshot build (handlers pick what
they need through ``CompileEnv.service``), and starts and stops the services
with the worker's lifespan.

Each entry of ``SERVICE_FACTORIES`` names a callable taking this object and
returning the service; a service may define ``async start()`` / ``async stop()``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from django.utils.module_loading import import_string

logger = logging.getLogger(__name__)

SERVICE_FACTORIES: dict[str, str] = {
    "consumers": "policies.consumer_directory.ConsumerDirectory",
    "jwks": "policies.jwks.JwksCache",
    "keys": "policies.keystore.create_key_store",
    "limiter": "policies.limits.store.create_limiter",
}


class PolicyServices:
    def __init__(
        self,
        *,
        run_in_thread: Callable[[Callable[[], Any]], Awaitable[Any]] | None = None,
        factories: dict[str, str] | None = None,
    ) -> None:
        # Runs blocking work (database lookups on a cache miss) off the event loop.
        self.run_in_thread = run_in_thread
        self._services: dict[str, Any] = {}
        for name, path in (SERVICE_FACTORIES if factories is None else factories).items():
            self._services[name] = import_string(path)(self)

    def mapping(self) -> dict[str, Any]:
        return dict(self._services)

    def get(self, name: str) -> Any:
        return self._services[name]

    async def start(self) -> None:
        for service in self._services.values():
            start = getattr(service, "start", None)
            if start is not None:
                await start()

    async def stop(self) -> None:
        for name, service in self._services.items():
            stop = getattr(service, "stop", None)
            if stop is not None:
                with contextlib.suppress(Exception):
                    await stop()
                logger.debug("policy service %s stopped", name)
