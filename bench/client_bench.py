"""Upstream-client throughput: aiohttp vs httpx behind ``gateway.upstream`` (not a test).

Starts a minimal keep-alive HTTP/1.1 server in a child process (uvloop when
available) that answers every request with a small fixed body, then drives
each client with C concurrent tasks for N seconds in this process and prints
requests/s side by side with the ratio. Each request goes through the full
interface (request, iter_body, aclose), as the proxy will use it.

    .venv/bin/python bench/client_bench.py --seconds 5 --concurrency 64
    .venv/bin/python bench/client_bench.py --loop asyncio --reference   # + plain httpx.AsyncClient
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BODY = b'{"ok":true}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (len(BODY), BODY)


class _FixedBodyProtocol(asyncio.Protocol):
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        count = self.buffer.count(b"\r\n\r\n")  # bodiless GETs only
        if count:
            self.buffer = self.buffer[self.buffer.rfind(b"\r\n\r\n") + 4 :]
            self.transport.write(RESPONSE * count)


def serve() -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:
        pass

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_FixedBodyProtocol, "127.0.0.1", 0, backlog=1024)
        print(server.sockets[0].getsockname()[1], flush=True)
        await server.serve_forever()

    asyncio.run(main())


async def drive(send: Callable[[], Awaitable[None]], *, seconds: float, concurrency: int) -> float:
    done = 0
    stop_at = 0.0

    async def worker() -> None:
        nonlocal done
        while time.monotonic() < stop_at:
            await send()
            done += 1

    stop_at = time.monotonic() + min(1.0, seconds / 3)  # warm-up: open the pool
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    done = 0
    started = time.monotonic()
    stop_at = started + seconds
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return done / (time.monotonic() - started)


async def bench_interface(kind: str, origin: str, seconds: float, concurrency: int) -> float:
    from gateway.upstream import Timeouts, create_upstream_client

    client = create_upstream_client(kind)
    timeouts = Timeouts(connect=5.0, read=10.0, write=10.0)
    headers = [(b"Host", b"bench.local"), (b"X-Request-ID", b"bench")]

    async def send() -> None:
        resp = await client.request(
            method="GET", origin=origin, target=b"/fixed?x=%2F", headers=headers, body=None, timeouts=timeouts
        )
        async for _ in resp.iter_body():
            pass
        await resp.aclose()

    try:
        return await drive(send, seconds=seconds, concurrency=concurrency)
    finally:
        await client.aclose()


async def bench_async_client(origin: str, seconds: float, concurrency: int) -> float:
    import httpx

    limits = httpx.Limits(max_connections=1024, max_keepalive_connections=256)
    async with httpx.AsyncClient(limits=limits, trust_env=False, timeout=10.0) as client:

        async def send() -> None:
            response = await client.get(origin + "/fixed")
            await response.aread()

        return await drive(send, seconds=seconds, concurrency=concurrency)


def run(coro_factory: Callable[[], Awaitable[float]], loop_kind: str) -> float:
    if loop_kind == "uvloop":
        import uvloop

        return uvloop.run(coro_factory())  # type: ignore[arg-type]
    return asyncio.run(coro_factory())  # type: ignore[arg-type]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--loop", choices=["uvloop", "asyncio"], default="uvloop")
    parser.add_argument("--reference", action="store_true", help="also measure a plain httpx.AsyncClient")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve:
        serve()
        return

    server = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve"], stdout=subprocess.PIPE, text=True)  # noqa: S603
    try:
        assert server.stdout is not None
        origin = f"http://127.0.0.1:{int(server.stdout.readline())}"
        results: dict[str, float] = {}
        for kind in ("aiohttp", "httpx"):
            results[kind] = run(lambda k=kind: bench_interface(k, origin, args.seconds, args.concurrency), args.loop)
        if args.reference:
            results["httpx.AsyncClient (reference)"] = run(
                lambda: bench_async_client(origin, args.seconds, args.concurrency), args.loop
            )
    finally:
        server.terminate()
        server.wait(5)

    print(
        f"upstream clients, {args.concurrency} concurrent tasks, {args.seconds:g} s each, loop={args.loop}, "
        f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs"
    )
    for name, rps in results.items():
        print(f"  {name:<32} {rps:>10,.0f} req/s")
    print(f"  aiohttp / httpx ratio: {results['aiohttp'] / results['httpx']:.2f}")


if __name__ == "__main__":
    main()
