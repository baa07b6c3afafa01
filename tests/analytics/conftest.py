"""Fixtures of the usage pipeline tests."""

from __future__ import annotations

import os
import uuid

import pytest
import redis

from analytics.ingest import forget_partitions


@pytest.fixture(autouse=True)
def _fresh_partition_cache():
    """Each test's partitions roll back with its transaction: forget what the ingest cached."""
    forget_partitions()
    yield
    forget_partitions()


@pytest.fixture
def redis_client():
    """The shared Redis (REDIS_URL, else the local one on db 15); skipped when there is none."""
    url = os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        client.ping()
    except redis.RedisError:
        pytest.skip("no Redis reachable")
    client.apim_url = url
    yield client
    client.close()


@pytest.fixture
def usage_stream(redis_client, settings):
    """A stream name of this test's own, wired into the settings; deleted afterwards (only its keys)."""
    stream = f"apim-test:usage:{uuid.uuid4().hex}"
    settings.APIM_USAGE_REDIS_URL = redis_client.apim_url
    settings.APIM_USAGE_STREAM = stream
    settings.APIM_USAGE_STREAM_GROUP = "ingest"
    yield stream
    redis_client.delete(stream, f"{stream}:dead")
