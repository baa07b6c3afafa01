"""Helpers for the usage pipeline tests: records, Redis streams of a test's own,
a private redis-server a test may kill, and a throwaway PostgreSQL cluster a
test may stop (never the shared servers)."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path

import psycopg
import redis
from django.db import connection
from prometheus_client import REGISTRY

from analytics.records import RecordIds, unpack_batch

IDS = RecordIds()


def make_record(*, at: datetime | None = None, tenant_id: str | None = None, status: int = 200, **overrides):
    """A wire record (tuple) as the gateway's recorder builds it."""
    moment = at.timestamp() if at is not None else time.time()
    values = {
        "record_id": IDS.next(),
        "timestamp_us": round(moment * 1_000_000),
        "request_id": uuid.uuid4().hex,
        "tenant_id": tenant_id or str(uuid.uuid4()),
        "api_id": str(uuid.uuid4()),
        "api_version": "v1",
        "route": "/orders/{id}",
        "consumer_id": str(uuid.uuid4()),
        "application_id": str(uuid.uuid4()),
        "key_prefix": "apim_abc123def456",
        "method": "GET",
        "path": "/orders/7",
        "status": status,
        "deny_reason": "",
        "latency_us": 1200,
        "upstream_latency_us": 900,
        "gateway_latency_us": 300,
        "bytes_in": 10,
        "bytes_out": 120,
        "client_ip": "203.0.113.9",
        "user_agent": "pytest",
        "upstream_target": "http://127.0.0.1:9/",
    }
    values.update(overrides)
    return tuple(values.values())


def record_kwargs(**overrides) -> dict:
    """Keyword arguments for ``UsageRecorder.record`` (what the gateway passes)."""
    values = {
        "request_id": uuid.uuid4().hex,
        "tenant_id": str(uuid.uuid4()),
        "api_id": str(uuid.uuid4()),
        "route": "/orders/{id}",
        "method": "GET",
        "path": "/orders/7",
        "status": 200,
        "latency_us": 1000,
        "upstream_latency_us": 800,
        "gateway_latency_us": 200,
        "bytes_in": 0,
        "bytes_out": 42,
        "client_ip": "127.0.0.1",
        "user_agent": "pytest",
        "upstream_target": "http://127.0.0.1:9/",
    }
    values.update(overrides)
    return values


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def is_postgresql() -> bool:
    return connection.vendor == "postgresql"


def wait_until(predicate: Callable[[], bool], *, timeout: float = 20.0, what: str = "condition") -> None:
    """Poll for an outcome (not a timing assertion: the timeout only bounds a hung test)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)


def stream_records(client: redis.Redis, stream: str) -> list[tuple]:
    records = []
    for _entry_id, fields in client.xrange(stream):
        records.extend(unpack_batch(fields[b"b"]))
    return records


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own; it can be killed and restarted on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, socket_timeout=1)

        def up() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        try:
            wait_until(up, timeout=10, what="private redis-server")
        finally:
            client.close()
        return self

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    if shutil.which("redis-server") is None:
        import pytest

        pytest.skip("redis-server is not installed")
    server = PrivateRedis().start()
    try:
        yield server
    finally:
        server.kill()


class ThrowawayPostgres:
    """A PostgreSQL cluster under a temporary folder on a free port: the only PostgreSQL a test may stop."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="apim-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self._as_postgres = os.geteuid() == 0  # initdb refuses to run as root

    def _run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        command = list(args)
        if self._as_postgres:
            command = ["runuser", "-u", "postgres", "--", *command]
        return subprocess.run(command, check=check, capture_output=True, timeout=120)

    def init(self) -> ThrowawayPostgres:
        os.chmod(self.root, 0o755)
        if self._as_postgres:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")
        return self

    def start(self) -> None:
        options = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.root / "log"), "-w", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", check=False)

    def url(self, database: str = "postgres") -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database: str = "postgres") -> psycopg.Connection:
        return psycopg.connect(self.url(database), autocommit=True, connect_timeout=5)

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)


def throwaway_postgres_available() -> bool:
    return shutil.which("initdb") is not None and shutil.which("pg_ctl") is not None
