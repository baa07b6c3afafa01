"""Fixtures for policy tests: a real gateway (uvicorn on loopback) and real upstreams."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.harness import GatewayHarness
from tests.gateway.servers import echo_server  # noqa: F401 - fixture re-exported for this package


@pytest.fixture
def gateway():
    harness = GatewayHarness(client_kind="aiohttp").start()
    yield harness
    harness.stop()


@pytest.fixture
def http():
    with httpx.Client(timeout=10, trust_env=False) as client:
        yield client
