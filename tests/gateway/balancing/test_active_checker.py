"""gateway.health.ActiveHealthChecker: threshold transitions, lifecycle, reconciliation, a real probe."""

import asyncio
import time

import httpx

from gateway.balancer import build_balancer
from gateway.health import ActiveHealthChecker, HealthRegistry, probe_url
from gateway.upstream_spec import TargetSpec, UpstreamSpec
from tests.gateway.balancing.helpers import FakeClock, name_of, picks, spec, target

HC = {"healthcheck_enabled": True, "healthy_threshold": 2, "unhealthy_threshold": 3, "healthcheck_path": "/healthz"}


class FakeProbe:
    def __init__(self) -> None:
        self.status: dict[str, int | Exception | None] = {}
        self.calls: list[tuple[str, float]] = []

    async def __call__(self, probe_url: str, timeout: float) -> int | None:
        self.calls.append((probe_url, timeout))
        result = self.status.get(probe_url, 200)
        if isinstance(result, Exception):
            raise result
        return result

    def set(self, name: str, result: int | Exception | None) -> None:
        self.status[f"http://{name}.test:80/healthz"] = result


async def wait_until(predicate, timeout: float = 3.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached in time"
        await asyncio.sleep(0.005)


def test_probe_url_uses_the_target_origin():
    assert probe_url("http://a:8000/base/", "/health") == "http://a:8000/health"
    assert probe_url("https://b", "status") == "https://b/status"


def test_thresholds_drive_transitions():
    registry = HealthRegistry(clock=FakeClock())
    upstream = spec("round_robin", ["a", "b"], healthcheck_timeout=0.7, **HC)
    balancer = build_balancer(upstream, registry)
    probe = FakeProbe()
    checker = ActiveHealthChecker(registry, probe)
    checker.update([upstream])  # not started: no tasks, rounds driven by hand
    assert checker.checked_upstreams == frozenset()
    a = target(registry, "a")

    async def rounds(n: int) -> None:
        for _ in range(n):
            await checker.check_once("u1")

    probe.set("a", 500)
    asyncio.run(rounds(2))
    assert a.active_healthy
    probe.set("a", None)  # connection error
    asyncio.run(rounds(1))
    assert not a.active_healthy and set(picks(balancer, 4)) == {"b"}
    probe.set("a", 301)
    asyncio.run(rounds(1))
    assert not a.active_healthy
    probe.set("a", 404)
    asyncio.run(rounds(1))  # a failure in between restarts the count
    probe.set("a", 204)
    asyncio.run(rounds(1))
    assert not a.active_healthy
    asyncio.run(rounds(1))
    assert a.active_healthy and set(picks(balancer, 4)) == {"a", "b"}
    assert ("http://a.test:80/healthz", 0.7) in probe.calls


def test_probe_errors_and_hangs_are_failures():
    registry = HealthRegistry(clock=FakeClock())
    upstream = spec("round_robin", ["a", "b"], healthcheck_timeout=0.02, **{**HC, "unhealthy_threshold": 1})
    registry.upstream(upstream)

    async def probe(probe_url: str, timeout: float) -> int | None:
        if "a.test" in probe_url:
            raise OSError("boom")
        await asyncio.sleep(10)  # ignores its timeout
        return 200

    checker = ActiveHealthChecker(registry, probe)
    checker.update([upstream])
    asyncio.run(checker.check_once("u1"))
    assert not target(registry, "a").active_healthy
    assert not target(registry, "b").active_healthy


def test_tasks_start_reconcile_and_stop_cleanly():
    registry = HealthRegistry(clock=FakeClock())
    probe = FakeProbe()
    checker = ActiveHealthChecker(registry, probe)
    one = spec("round_robin", ["a", "b"], uid="u1", healthcheck_interval=0.01, **{**HC, "unhealthy_threshold": 1})
    two = spec("round_robin", ["x"], uid="u2", healthcheck_interval=0.01, **HC)
    off = spec("round_robin", ["y"], uid="u3")

    def probed(name: str) -> int:
        return sum(1 for u, _ in probe.calls if name_of(u.removesuffix("/healthz")) == name)

    async def main():
        checker.start([one, two, off])
        assert checker.checked_upstreams == {"u1", "u2"}
        tasks = set(checker._tasks.values())
        await wait_until(lambda: probed("a") >= 2 and probed("x") >= 2)
        assert probed("y") == 0
        # New snapshot: u1 loses b and gains c, u2 turns checks off.
        one_v2 = spec(
            "round_robin", ["a", "c"], uid="u1", healthcheck_interval=0.01, **{**HC, "unhealthy_threshold": 1}
        )
        two_v2 = spec("round_robin", ["x"], uid="u2")
        checker.update([one_v2, two_v2])
        b_count = probed("b")
        probe.set("c", 503)
        await wait_until(lambda: not target(registry, "c").active_healthy)
        await asyncio.sleep(0.05)
        assert probed("b") == b_count
        assert checker.checked_upstreams == {"u1"}
        await checker.stop()
        assert all(task.done() for task in tasks)
        assert checker.checked_upstreams == frozenset()
        assert not [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]

    asyncio.run(main())


def test_interval_change_restarts_the_task():
    registry = HealthRegistry(clock=FakeClock())
    probe = FakeProbe()
    checker = ActiveHealthChecker(registry, probe)

    async def main():
        checker.start([spec("round_robin", ["a"], healthcheck_interval=3600, **HC)])
        await wait_until(lambda: len(probe.calls) == 1)
        checker.update([spec("round_robin", ["a"], healthcheck_interval=0.01, **HC)])
        await wait_until(lambda: len(probe.calls) >= 3)
        await checker.stop()

    asyncio.run(main())


async def _health_server(state: dict[str, int]) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            request = await reader.readuntil(b"\r\n\r\n")
            path = request.split(b" ", 2)[1]
            status = state["status"] if path == b"/healthz" else 404
            writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".encode())
            await writer.drain()
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


def test_real_probe_against_a_real_server():
    async def main():
        flaky_state, steady_state = {"status": 200}, {"status": 200}
        flaky_server, steady_server = await _health_server(flaky_state), await _health_server(steady_state)
        flaky = f"http://127.0.0.1:{flaky_server.sockets[0].getsockname()[1]}/prefix"
        steady = f"http://127.0.0.1:{steady_server.sockets[0].getsockname()[1]}"
        upstream = UpstreamSpec(
            id="real",
            targets=(TargetSpec(flaky), TargetSpec(steady)),
            healthcheck_enabled=True,
            healthcheck_path="/healthz",
            healthcheck_interval=0.02,
            healthcheck_timeout=1.0,
            healthy_threshold=2,
            unhealthy_threshold=2,
        )
        registry = HealthRegistry()
        balancer = build_balancer(upstream, registry)
        flaky_health = registry.get("real", flaky)

        def picked() -> set[str]:
            urls = set()
            for _ in range(4):
                with balancer.pick() as lease:
                    urls.add(lease.url)
            return urls

        async with httpx.AsyncClient(trust_env=False) as client:

            async def probe(probe_url: str, timeout: float) -> int | None:
                try:
                    response = await client.get(probe_url, timeout=timeout)
                except httpx.HTTPError:
                    return None
                return response.status_code

            checker = ActiveHealthChecker(registry, probe)
            checker.start([upstream])
            await wait_until(lambda: flaky_health.active_successes >= 2)
            assert flaky_health.active_healthy and picked() == {flaky, steady}
            flaky_state["status"] = 503
            await wait_until(lambda: not flaky_health.active_healthy)
            assert picked() == {steady}
            flaky_state["status"] = 200
            await wait_until(lambda: flaky_health.active_healthy)
            assert picked() == {flaky, steady}
            flaky_server.close()
            await flaky_server.wait_closed()
            await wait_until(lambda: not flaky_health.active_healthy)  # connection refused counts too
            assert picked() == {steady}
            await checker.stop()
        steady_server.close()
        await steady_server.wait_closed()

    asyncio.run(main())


def test_start_without_specs_uses_those_given_before():
    registry = HealthRegistry(clock=FakeClock())
    probe = FakeProbe()
    checker = ActiveHealthChecker(registry, probe)
    checker.update([spec("round_robin", ["a"], healthcheck_interval=0.01, **HC)])

    async def main():
        checker.start()
        assert checker.checked_upstreams == {"u1"}
        await wait_until(lambda: len(probe.calls) >= 1)
        await checker.stop()

    asyncio.run(main())
