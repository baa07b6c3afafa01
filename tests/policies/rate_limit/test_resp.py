"""The lean Redis client of the limiter's hot path (``policies.limits.resp``) and the limiter on it.

Pipelining must match replies to callers in order (an error reply stays in its slot), a flushed
script cache must be reloaded transparently, a restarted server must be reconnected to, a
password URL must authenticate (and the password never reach a log), and a frozen server must
time out, not hang. Servers that a test restarts, freezes or protects with a password are private
``redis-server`` processes; the shared one (db 15) only sees keys under a unique prefix.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import time
import uuid

import hiredis
import pytest
import redis

from policies.limits.resp import Address, ReplyError, RespClient, RespConnectionError, UnsupportedURL, pack, parse_url
from policies.limits.rules import Check
from policies.limits.store import SCRIPT_SHA, RedisLimiter, _encode, _evalsha
from tests.policies.rate_limit.support import SHARED_REDIS, delete_prefix, private_redis, redis_limiter


def _check(key: str, limit: int = 5) -> Check:
    return Check(
        key=key,
        prev_key=f"{key}:prev",
        limit=limit,
        weight=0.25,
        ttl_ms=120_000,
        reset_ms=60_000,
        period_ms=60_000,
        window="minute",
        quota=False,
        headers=True,
        fail_closed=False,
    )


def _poll(fn, *, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while True:
        result = fn()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.05)


# --- URLs and encoding ---------------------------------------------------------------------------


def test_urls_as_redis_py_reads_them_and_the_password_stays_out_of_repr():
    assert parse_url("redis://127.0.0.1:6379/15") == Address(host="127.0.0.1", port=6379, db=15)
    assert parse_url("redis://localhost") == Address(host="localhost", port=6379, db=0)
    secret = parse_url("redis://:s3cr%40t@redis.internal:6380/2")
    assert (secret.host, secret.port, secret.db, secret.username, secret.password) == (
        "redis.internal",
        6380,
        2,
        None,
        "s3cr@t",
    )
    assert "s3cr" not in repr(secret)
    assert "s3cr" not in repr(RespClient(secret))
    acl = parse_url("redis://app:pw@h/1")
    assert (acl.username, acl.password) == ("app", "pw")
    assert parse_url("redis://h/0?db=4").db == 4
    assert parse_url("unix:///run/redis.sock?db=3") == Address(unix_path="/run/redis.sock", db=3)


@pytest.mark.parametrize(
    "url", ["rediss://:pw@h:6380/0", "redis://h/0?socket_timeout=3", "redis+sentinel://h/0", "unix://"]
)
def test_what_the_lean_client_does_not_speak_is_refused_without_credentials(url):
    with pytest.raises(UnsupportedURL) as refused:
        parse_url(url)
    assert "pw" not in str(refused.value)


def test_a_tls_url_falls_back_to_redis_py_and_says_so(caplog):
    with caplog.at_level(logging.INFO, logger="policies.limits.store"):
        limiter = RedisLimiter("rediss://:topsecret@127.0.0.1:6380/0")
    assert limiter.driver == "redis-py"
    assert "rediss://" in caplog.text and "redis-py" in caplog.text
    assert "topsecret" not in caplog.text
    assert RedisLimiter(SHARED_REDIS).driver == "lean"
    assert RedisLimiter(SHARED_REDIS, driver="redis-py").driver == "redis-py"


@pytest.mark.parametrize("key", ["pr:t1:sub-1:m:123", "r:t1:att:consumer:zoë:m:1", "r:t1:att:ip:2001:db8::1:s:9"])
def test_the_hot_path_encoder_matches_hiredis(key):
    checks = [_check(key), _check(key + "x", 1000)]
    keys, args = _encode(checks, "apim:rl:")
    assert _evalsha(checks, "apim:rl:") == hiredis.pack_command((b"EVALSHA", SCRIPT_SHA, len(keys), *keys, *args))


# --- the client against Redis -------------------------------------------------------------------


def test_pipelined_replies_reach_their_callers_in_order(prefix):
    async def go() -> None:
        client = RespClient(parse_url(SHARED_REDIS))
        try:
            # One write of many commands, an error reply among them, stays in its slot.
            key = f"{prefix}n"
            batch = [pack(b"INCR", key), pack(b"NOSUCHCOMMAND"), pack(b"INCRBY", key, 10), pack(b"GET", key)]
            replies = await client.send(b"".join(batch), len(batch))
            assert replies[0] == 1 and isinstance(replies[1], ReplyError) and replies[2:] == [11, b"11"]

            # Many concurrent batches of different sizes on the one connection: each gets its own.
            async def one(i: int) -> None:
                words = [f"{i}:{j}".encode() for j in range(i % 5 + 1)]
                got = await client.send(b"".join(pack(b"ECHO", w) for w in words), len(words))
                assert got == words

            await asyncio.gather(*(one(i) for i in range(200)))
            assert client.connects == 1
        finally:
            await client.aclose()

    asyncio.run(go())


def test_a_cancelled_caller_leaves_the_connection_in_step():
    with private_redis("--enable-debug-command", "yes") as server:

        async def go() -> None:
            client = RespClient(parse_url(server.url))
            try:
                slow = asyncio.ensure_future(client.send(pack(b"DEBUG", b"SLEEP", b"0.3") + pack(b"ECHO", b"a"), 2))
                await asyncio.sleep(0.05)
                slow.cancel()
                assert await client.send(pack(b"ECHO", b"b"), 1) == [b"b"]  # not the cancelled "OK" / "a"
                assert client.connects == 1
            finally:
                await client.aclose()

        asyncio.run(go())


def test_a_frozen_server_times_out_and_a_dead_one_refuses():
    with private_redis() as server:
        assert server.process is not None

        async def go() -> None:
            # A handshake command, as the limiter has (its SCRIPT LOAD).
            client = RespClient(parse_url(server.url), connect_timeout=0.3, on_connect=((b"PING",),))
            try:
                assert await client.send(pack(b"PING"), 1) == [b"PONG"]
                server.process.send_signal(signal.SIGSTOP)
                try:
                    started = time.monotonic()
                    with pytest.raises(TimeoutError):
                        await client.send(pack(b"PING"), 1, timeout=0.3)
                    client.reset()
                    # A new connection: the kernel accepts it, the handshake gets no answer.
                    with pytest.raises(RespConnectionError, match="timed out"):
                        await client.send(pack(b"PING"), 1, timeout=0.3)
                    assert time.monotonic() - started < 3
                finally:
                    server.process.send_signal(signal.SIGCONT)
                server.stop()
                with pytest.raises(RespConnectionError, match=r"cannot connect|lost|closed"):
                    await client.send(pack(b"PING"), 1, timeout=0.3)
            finally:
                await client.aclose()

        asyncio.run(go())


# --- the limiter on the lean client -------------------------------------------------------------


def test_a_flushed_script_cache_is_reloaded_transparently():
    with private_redis() as server:
        admin = redis.Redis.from_url(server.url)

        async def go() -> None:
            limiter = redis_limiter(url=server.url)
            await limiter.start()
            assert limiter.driver == "lean"
            assert (await limiter.check([_check("a")]))[:2] == [1, 1]  # type: ignore[index]
            admin.script_flush()  # as after a failover or an operator's SCRIPT FLUSH
            assert admin.script_exists(SCRIPT_SHA) == [False]
            results = await asyncio.gather(*(limiter.check([_check("a")]) for _ in range(6)))
            assert [r[0] for r in results] == [1, 1, 1, 1, 0, 0]  # type: ignore[index]
            assert admin.script_exists(SCRIPT_SHA) == [True]
            assert limiter.available  # NOSCRIPT is not a store failure
            await limiter.stop()

        try:
            asyncio.run(go())
        finally:
            admin.close()


def test_reconnects_after_the_server_restarts():
    with private_redis() as server:

        async def go() -> None:
            limiter = redis_limiter(url=server.url, retry_after_failure=0.05, round_trip_timeout=0.5)
            await limiter.start()
            assert (await limiter.check([_check("r", 100)]))[:2] == [1, 1]  # type: ignore[index]
            server.stop()
            assert await limiter.check([_check("r", 100)]) is None
            server.start()  # empty (no persistence) and without the script

            async def admitted() -> list[int] | None:
                deadline = time.monotonic() + 10
                while time.monotonic() < deadline:
                    result = await limiter.check([_check("r", 100)])
                    if result is not None:
                        return result
                    await asyncio.sleep(0.05)
                return None

            result = await admitted()
            assert result is not None and result[:2] == [1, 1]  # counted afresh on the new server
            assert limiter._lean is not None and limiter._lean.connects >= 2
            await limiter.stop()

        asyncio.run(go())


def test_a_password_url_authenticates_and_selects_the_database(caplog):
    password = f"pw-{uuid.uuid4().hex}"
    with private_redis("--requirepass", password, password=password) as server:
        admin = redis.Redis(port=server.port, password=password, db=3)

        async def go() -> None:
            for url in (
                f"redis://:{password}@127.0.0.1:{server.port}/3",
                f"redis://default:{password}@127.0.0.1:{server.port}/3",
            ):
                limiter = redis_limiter(url=url)
                await limiter.start()
                assert limiter.driver == "lean" and limiter.available
                assert (await limiter.check([_check("auth")]))[0] == 1  # type: ignore[index]
                await limiter.stop()
                assert int(admin.get(f"{limiter.prefix}auth") or 0) == 1  # in db 3, where the URL says

            wrong = redis_limiter(url=f"redis://:not-{password}@127.0.0.1:{server.port}/3")
            assert await wrong.check([_check("auth")]) is None  # refused: the fail mode applies
            assert not wrong.available
            await wrong.stop()
            none = redis_limiter(url=f"redis://127.0.0.1:{server.port}/3")
            assert await none.check([_check("auth")]) is None
            await none.stop()

        with caplog.at_level(logging.DEBUG):
            try:
                asyncio.run(go())
            finally:
                admin.close()
        assert "unreachable" in caplog.text  # the refusals were logged...
        assert password not in caplog.text  # ...without the password


def test_the_redis_py_driver_still_works(prefix):
    async def go() -> list[int]:
        limiter = redis_limiter(prefix=prefix, driver="redis-py")
        await limiter.start()
        results = await asyncio.gather(*(limiter.check([_check("p", 3)]) for _ in range(5)))
        await limiter.stop()
        return [r[0] for r in results]  # type: ignore[index]

    try:
        assert asyncio.run(go()) == [1, 1, 1, 0, 0]
    finally:
        delete_prefix(prefix)


def test_the_client_can_be_switched_back_to_redis_py(settings):
    from policies.limits.store import create_limiter

    settings.APIM_RATELIMIT_REDIS_URL = SHARED_REDIS
    assert create_limiter().driver == "lean"  # type: ignore[union-attr]
    settings.APIM_RATELIMIT_CLIENT = "redis-py"
    assert create_limiter().driver == "redis-py"  # type: ignore[union-attr]
    settings.APIM_RATELIMIT_CLIENT = "lean"
    assert create_limiter().driver == "lean"  # type: ignore[union-attr]
    settings.APIM_RATELIMIT_CLIENT = "hiredis"
    with pytest.raises(ValueError, match="APIM_RATELIMIT_CLIENT"):
        create_limiter()
