"""The key store on its own: cache freshness by version, cached misses, coalescing, bounds, failing closed."""

from __future__ import annotations

import asyncio
import threading

import pytest

from policies.keystore import FailureThrottle, KeyRecord, KeyStore, KeyStoreUnavailable


def record(key_id: str = "k1", version: int = 1, **fields) -> KeyRecord:
    values = {
        "key_id": key_id,
        "digest": "0" * 64,
        "pepper_id": "1",
        "tenant_id": "t1",
        "consumer_id": "c1",
        "consumer_name": "acme",
        "consumer_active": True,
        "application_id": "app1",
        "scopes": frozenset(),
        "allowed_api_ids": frozenset(),
        "expires_at": None,
        "active": True,
        "subscriptions": {},
        "groups": frozenset(),
        "version": version,
    } | fields
    return KeyRecord(**values)


class FakeDb:
    """Stands in for the ORM lookup: counts calls, can block, fail, and change what it returns."""

    def __init__(self) -> None:
        self.rows: dict[str, KeyRecord] = {}
        self.calls: list[str] = []
        self.gate: threading.Event | None = None
        self.failing = False

    def __call__(self, key_id: str) -> KeyRecord | None:
        self.calls.append(key_id)
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        if self.failing:
            raise ConnectionError("server closed the connection unexpectedly")
        return self.rows.get(key_id)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def run(coro):
    return asyncio.run(coro)


def test_hits_are_served_from_memory_while_their_version_is_current():
    db = FakeDb()
    db.rows["k1"] = record(version=3)
    store = KeyStore(lookup=db)

    async def scenario():
        first = await store.lookup("k1", 3)
        again = await store.lookup("k1", 2)  # an older snapshot is happy with a newer record
        return first, again

    first, again = run(scenario())
    assert first is again
    assert db.calls == ["k1"]
    assert store.lookups == 1


def test_a_newer_snapshot_version_forces_a_re_read():
    db = FakeDb()
    db.rows["k1"] = record(version=3)
    store = KeyStore(lookup=db)

    async def scenario():
        await store.lookup("k1", 3)
        db.rows["k1"] = record(version=4, active=False)
        return await store.lookup("k1", 4)

    assert run(scenario()).active is False
    assert len(db.calls) == 2


def test_misses_are_cached_for_a_short_ttl():
    db = FakeDb()
    clock = Clock()
    store = KeyStore(lookup=db, miss_ttl=5.0, clock=clock)

    async def scenario():
        assert await store.lookup("nope", 1) is None
        clock.now += 4.9
        assert await store.lookup("nope", 99) is None  # a miss has no tenant: only its age counts
        assert len(db.calls) == 1
        clock.now += 0.2
        db.rows["nope"] = record("nope", version=2)
        return await store.lookup("nope", 1)

    assert run(scenario()).key_id == "nope"
    assert len(db.calls) == 2


def test_concurrent_misses_for_one_key_share_one_query():
    db = FakeDb()
    db.rows["k1"] = record()
    db.gate = threading.Event()
    store = KeyStore(lookup=db)

    async def scenario():
        waiters = [asyncio.create_task(store.lookup("k1", 1)) for _ in range(20)]
        other = asyncio.create_task(store.lookup("k2", 1))
        for _ in range(200):
            if len(db.calls) == 2:
                break
            await asyncio.sleep(0.01)
        db.gate.set()
        results = await asyncio.gather(*waiters)
        return results, await other

    results, other = run(scenario())
    assert {id(r) for r in results} == {id(results[0])}
    assert other is None
    assert sorted(db.calls) == ["k1", "k2"]


def test_a_cancelled_waiter_does_not_fail_the_others():
    db = FakeDb()
    db.rows["k1"] = record()
    db.gate = threading.Event()
    store = KeyStore(lookup=db)

    async def scenario():
        leader = asyncio.create_task(store.lookup("k1", 1))
        follower = asyncio.create_task(store.lookup("k1", 1))
        for _ in range(200):
            if db.calls:
                break
            await asyncio.sleep(0.01)
        leader.cancel()
        db.gate.set()
        with pytest.raises(asyncio.CancelledError):
            await leader
        return await follower

    assert run(scenario()).key_id == "k1"
    assert db.calls == ["k1"]


def test_an_in_flight_read_older_than_the_snapshot_is_not_trusted():
    db = FakeDb()
    db.rows["k1"] = record(version=1)
    db.gate = threading.Event()
    store = KeyStore(lookup=db)

    async def scenario():
        old_reader = asyncio.create_task(store.lookup("k1", 1))
        for _ in range(200):
            if db.calls:
                break
            await asyncio.sleep(0.01)
        # The key is revoked (version 2) and a request under the new snapshot joins the old read.
        new_reader = asyncio.create_task(store.lookup("k1", 2))
        await asyncio.sleep(0.05)
        db.gate.set()
        await old_reader
        return await new_reader

    db_rows_after_revoke = record(version=2, active=False)

    def swap_then_return(key_id):
        row = FakeDb.__call__(db, key_id)
        db.rows["k1"] = db_rows_after_revoke
        return row

    store._lookup = swap_then_return
    assert run(scenario()).active is False
    assert len(db.calls) == 2


def test_lookup_failure_fails_closed_and_is_not_cached():
    db = FakeDb()
    db.rows["cached"] = record("cached")
    store = KeyStore(lookup=db)

    async def scenario():
        await store.lookup("cached", 1)
        db.failing = True
        assert (await store.lookup("cached", 1)).key_id == "cached"  # a hit needs no database
        with pytest.raises(KeyStoreUnavailable):
            await store.lookup("unknown", 1)
        with pytest.raises(KeyStoreUnavailable):
            await store.lookup("cached", 2)  # stale and not re-readable: refused, not served stale
        db.failing = False
        db.rows["unknown"] = record("unknown")
        return await store.lookup("unknown", 1)

    assert run(scenario()).key_id == "unknown"


def test_concurrent_waiters_all_see_the_failure():
    db = FakeDb()
    db.gate = threading.Event()
    db.failing = True
    store = KeyStore(lookup=db)

    async def scenario():
        tasks = [asyncio.create_task(store.lookup("k1", 1)) for _ in range(5)]
        for _ in range(200):
            if db.calls:
                break
            await asyncio.sleep(0.01)
        db.gate.set()
        return await asyncio.gather(*tasks, return_exceptions=True)

    results = run(scenario())
    assert all(isinstance(r, KeyStoreUnavailable) for r in results)
    assert db.calls == ["k1"]


def test_the_cache_is_bounded():
    db = FakeDb()
    store = KeyStore(lookup=db, max_entries=100)

    async def scenario():
        for n in range(1000):
            await store.lookup(f"k{n}", 1)

    run(scenario())
    assert len(store) <= 100
    assert "k999" in store._entries


def test_the_record_repr_shows_no_digest():
    assert "0000" not in repr(record())


def test_throttle_counts_failures_per_tenant_and_client_within_a_window():
    clock = Clock()
    throttle = FailureThrottle(clock=clock)
    for _ in range(3):
        assert throttle.retry_after("t1", "1.2.3.4", limit=3, window=60) == 0
        throttle.failed("t1", "1.2.3.4", window=60)
    assert throttle.retry_after("t1", "1.2.3.4", limit=3, window=60) == 60
    assert throttle.retry_after("t1", "5.6.7.8", limit=3, window=60) == 0
    assert throttle.retry_after("t2", "1.2.3.4", limit=3, window=60) == 0
    clock.now += 59.5
    assert throttle.retry_after("t1", "1.2.3.4", limit=3, window=60) == 1
    clock.now += 0.5
    assert throttle.retry_after("t1", "1.2.3.4", limit=3, window=60) == 0


def test_throttle_window_restarts_after_quiet_time():
    clock = Clock()
    throttle = FailureThrottle(clock=clock)
    throttle.failed("t", "ip", window=10)
    throttle.failed("t", "ip", window=10)
    clock.now += 11
    throttle.failed("t", "ip", window=10)
    assert throttle.retry_after("t", "ip", limit=2, window=10) == 0


def test_throttle_memory_is_bounded():
    throttle = FailureThrottle(max_clients=50)
    for n in range(1000):
        throttle.failed("t", f"10.0.{n // 256}.{n % 256}", window=60)
    assert len(throttle) <= 50


def test_usage_flush_batches_ids_and_survives_a_failing_database():
    written: list[list[str]] = []
    state = {"fail": True}

    def touch(key_ids, when):
        if state["fail"]:
            raise ConnectionError("down")
        written.append(key_ids)

    store = KeyStore(lookup=FakeDb(), touch=touch)
    for key_id in ("b", "a", "b"):
        store.mark_used(key_id)
    assert run(store.flush_usage()) == 0  # failed: logged and dropped, not retried forever
    state["fail"] = False
    store.mark_used("c")
    assert run(store.flush_usage()) == 1
    assert written == [["c"]]


def test_stop_flushes_what_is_pending():
    written: list[list[str]] = []
    store = KeyStore(lookup=FakeDb(), touch=lambda ids, when: written.append(ids), flush_interval=3600)

    async def scenario():
        await store.start()
        store.mark_used("k1")
        await store.stop()

    run(scenario())
    assert written == [["k1"]]
