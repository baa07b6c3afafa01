"""Fixtures for gateway integration tests: a real gateway and real upstreams on loopback."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.harness import GatewayHarness
from tests.gateway.servers import (  # noqa: F401 - fixtures re-exported for this package
    echo_server,
    echo_servers,
    refused_port,
    reset_server,
    slow_server,
)


@pytest.fixture(params=["aiohttp", "httpx"])
def gateway(request):
    harness = GatewayHarness(client_kind=request.param).start()
    yield harness
    harness.stop()


@pytest.fixture
def http():
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client
