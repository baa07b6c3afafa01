"""The gateway's tracing switch: one module-level flag the request path reads, nothing more.

``ENABLED`` is False unless ``gateway.asgi`` turned tracing on at start-up
(``apim.observability.tracing``: an OTLP endpoint or ``APIM_TRACING=otlp``).
While it is False the proxy pays one attribute read per request and imports
no OpenTelemetry code; client ``traceparent``/``tracestate`` headers are then
ordinary headers and pass through unchanged. The spans themselves live in
``gateway.traced``, imported only when tracing is on.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

ENABLED = False
_on_route: Callable[[Any], None] | None = None


def enable(on_route: Callable[[Any], None]) -> None:
    """Called once per worker by ``gateway.traced.install`` before the first request."""
    global ENABLED, _on_route
    _on_route = on_route
    ENABLED = True


def on_route(match: Any) -> None:
    """The proxy routed the request: name the server span after the route, add tenant and API."""
    if _on_route is not None:
        _on_route(match)


def wrap_client_factory(factory: Callable[[], Any]) -> Callable[[], Any]:
    """The proxy's upstream-client factory, traced (call only when ``ENABLED``)."""
    from gateway.traced import TracedClientFactory

    return TracedClientFactory(factory)


def wrap_app(app: Any) -> Any:
    """The proxy's ASGI callable inside a server span (call only when ``ENABLED``)."""
    from gateway.traced import TracedHttp

    return TracedHttp(app)
