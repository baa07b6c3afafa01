"""Shared helpers for limit tests: a stub authenticator, Redis limiters with unique prefixes,
a settable clock, and a private redis-server a test may kill."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import redis

from policies.base import CompileEnv, Denial, Handler, Policy
from policies.context import Identity, RequestContext, Subscription
from policies.limits.store import RedisLimiter

SHARED_REDIS = "redis://127.0.0.1:6379/15"
STUB_AUTH = "tests.policies.rate_limit.support.StubAuthPolicy"


class StubAuthHandler(Handler):
    """Identity from test headers (x-consumer, x-app, x-key, x-sub, x-plan); none → anonymous."""

    async def request(self, ctx: RequestContext) -> Denial | None:
        consumer = ctx.header(b"x-consumer")
        if consumer is None:
            return None
        sub, plan = ctx.header(b"x-sub"), ctx.header(b"x-plan")
        app, key = ctx.header(b"x-app"), ctx.header(b"x-key")
        ctx.identity = Identity(
            consumer_id=consumer.decode(),
            consumer_name=consumer.decode(),
            credential="key-auth",
            application_id=app.decode() if app else None,
            key_prefix=key.decode() if key else None,
            subscription=Subscription(sub.decode(), plan.decode()) if sub and plan else None,
        )
        return None


class StubAuthPolicy(Policy):
    """A test-only authentication policy (priority in the authentication band)."""

    name = "test-auth"
    priority = 1500
    schema: Mapping[str, Any] = {"type": "object", "additionalProperties": False, "properties": {}}

    @classmethod
    def compile(cls, parsed: Any, env: CompileEnv) -> Handler:
        return StubAuthHandler()


class FakeClock:
    """A settable wall clock (seconds since the epoch)."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def unique_prefix() -> str:
    return f"apim-test:rl:{uuid.uuid4().hex}:"


def redis_limiter(url: str = SHARED_REDIS, **kwargs: Any) -> RedisLimiter:
    kwargs.setdefault("prefix", unique_prefix())
    return RedisLimiter(url, **kwargs)


def delete_prefix(prefix: str, url: str = SHARED_REDIS) -> None:
    """Remove one test's keys (never FLUSHDB: the Redis is shared)."""
    client = redis.Redis.from_url(url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PrivateRedis:
    """A redis-server of this test's own on a free port: the only Redis a test may stop.

    ``extra``: more server options (``--requirepass``, ``--enable-debug-command``...);
    ``password``: what the readiness probe authenticates with.
    """

    def __init__(self, *extra: str, password: str | None = None) -> None:
        self.port = free_port()
        self.extra = extra
        self.password = password
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        client = redis.Redis(port=self.port, password=self.password, socket_timeout=1)
        deadline = time.monotonic() + 10
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline:
                    raise RuntimeError("private redis-server did not start") from None
                time.sleep(0.05)
            finally:
                client.close()
        return self

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)


@contextlib.contextmanager
def private_redis(*extra: str, password: str | None = None) -> Iterator[PrivateRedis]:
    server = PrivateRedis(*extra, password=password).start()
    try:
        yield server
    finally:
        server.stop()
