"""Upstream HTTP clients behind one interface; see ``gateway.upstream.base``."""

from gateway.upstream.base import (
    Timeouts,
    UpstreamClient,
    UpstreamConnectError,
    UpstreamError,
    UpstreamForbidden,
    UpstreamProtocolError,
    UpstreamResponse,
    UpstreamTimeout,
    create_upstream_client,
)

__all__ = [
    "Timeouts",
    "UpstreamClient",
    "UpstreamConnectError",
    "UpstreamError",
    "UpstreamForbidden",
    "UpstreamProtocolError",
    "UpstreamResponse",
    "UpstreamTimeout",
    "create_upstream_client",
]
