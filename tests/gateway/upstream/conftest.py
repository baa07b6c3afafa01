"""Fixtures for the upstream-client conformance suite.

``upstream_client`` is parametrised over both implementations. Clients bind to
the loop they first run on, and these tests use plain ``asyncio.run`` (no
pytest-asyncio), so the fixture hands out a runner that builds a fresh client
inside the test's loop, runs a scenario with an overall deadline (a hang fails
instead of blocking the suite) and closes the client.

``APIM_TEST_LOOP=uvloop`` runs the scenarios on uvloop (what the gateway is
served with) instead of the default asyncio loop.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TypeVar

import pytest

from gateway.upstream import UpstreamClient, create_upstream_client
from tests.gateway.servers import (  # noqa: F401 - fixtures re-exported for this package
    echo_server,
    refused_port,
    reset_server,
    slow_server,
)

T = TypeVar("T")


class ClientRunner:
    def __init__(self, kind: str) -> None:
        self.kind = kind

    def run(
        self,
        scenario: Callable[[UpstreamClient], Awaitable[T]],
        *,
        deadline: float = 20.0,
        max_connections: int = 1024,
        max_keepalive: int = 256,
    ) -> T:
        async def main() -> T:
            client = create_upstream_client(self.kind, max_connections=max_connections, max_keepalive=max_keepalive)
            assert client.name == self.kind
            try:
                return await asyncio.wait_for(scenario(client), deadline)
            finally:
                await client.aclose()

        if os.environ.get("APIM_TEST_LOOP") == "uvloop":
            import uvloop

            return uvloop.run(main())
        return asyncio.run(main())


@pytest.fixture(params=["aiohttp", "httpx"])
def upstream_client(request: pytest.FixtureRequest) -> ClientRunner:
    return ClientRunner(request.param)
