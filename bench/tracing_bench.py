"""Micro-benchmark: what tracing costs the proxy path per request, in process.

A real ``HttpProxy`` (canonicalise, route, balance, build the upstream headers,
relay) with an in-memory upstream client that answers at once, so the number
is the gateway's own Python per request. Three runs:

* ``off``: tracing off, as shipped (the proxy's added work is one contextvar
  set and one flag read, also timed alone as ``added-when-off``);
* ``before`` (``--before HEAD``): the proxy as committed at that revision;
* ``on``: a real SDK tracer provider with a batch processor whose exporter
  drops the spans (the export itself runs on the processor's thread).

    .venv/bin/python bench/tracing_bench.py [--n 30000] [--before HEAD]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import time
import timeit
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "apim.settings.test")

import django

django.setup()

from apim.observability.context import REQUEST_ID  # noqa: E402, F401 - used by the timeit statement
from gateway import tracing  # noqa: E402
from gateway.headers import TrustedProxies  # noqa: E402
from gateway.health import HealthRegistry  # noqa: E402
from gateway.proxy import HttpProxy  # noqa: E402
from tests.gateway.harness import Api, build_snapshot  # noqa: E402


class _Response:
    status = 200
    http_version = "1.1"

    def __init__(self) -> None:
        self.headers = [(b"content-type", b"text/plain"), (b"content-length", b"2")]

    async def iter_body(self):  # type: ignore[no-untyped-def]
        yield b"ok"

    async def aclose(self) -> None:
        pass


class _Client:
    name = "memory"

    async def request(self, **_: object) -> _Response:
        return _Response()

    async def aclose(self) -> None:
        pass


SCOPE = {
    "type": "http",
    "method": "GET",
    "path": "/bench/items/42",
    "raw_path": b"/bench/items/42",
    "query_string": b"page=2",
    "scheme": "http",
    "http_version": "1.1",
    "server": ("127.0.0.1", 8081),
    "client": ("127.0.0.1", 50000),
    "headers": [(b"host", b"localhost"), (b"user-agent", b"bench"), (b"accept", b"*/*")],
}


async def _receive() -> dict:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: dict) -> None:
    pass


def _proxy_at(revision: str) -> type:
    """``HttpProxy`` from ``gateway/proxy.py`` at a git revision, beside today's other modules."""
    import importlib.util
    import subprocess
    import tempfile

    source = subprocess.run(  # noqa: S603
        ["git", "show", f"{revision}:gateway/proxy.py"],  # noqa: S607
        check=True,
        capture_output=True,
        cwd=Path(__file__).parent,
    ).stdout
    path = Path(tempfile.mkdtemp()) / "proxy_before.py"
    path.write_bytes(source)
    spec = importlib.util.spec_from_file_location("proxy_before", path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module.HttpProxy


def build(traced: bool, proxy_class: type = HttpProxy):  # type: ignore[no-untyped-def]
    snapshot = build_snapshot([Api(base_path="/bench", targets=["http://127.0.0.1:9"])], HealthRegistry())
    client = _Client()
    factory = (lambda: client) if not traced else tracing.wrap_client_factory(lambda: client)
    proxy = proxy_class(
        snapshot=lambda: snapshot,
        client=factory,
        trusted_proxies=TrustedProxies(),
        reserved=lambda scope, send: _send({}),
    )
    return tracing.wrap_app(proxy) if traced else proxy


async def run(app, n: int) -> float:  # type: ignore[no-untyped-def]
    for _ in range(2000):
        await app(dict(SCOPE), _receive, _send)
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for _ in range(n):
            await app(dict(SCOPE), _receive, _send)
        best = min(best, (time.perf_counter() - start) / n)
    return best * 1e6


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=30_000)
    parser.add_argument("--before", default="", help="a git revision: also time its gateway/proxy.py (e.g. HEAD)")
    args = parser.parse_args()
    off_app = build(False)
    before_app = build(False, proxy_class=_proxy_at(args.before)) if args.before else None
    # Alternate the two (best of each) so a noisy neighbour on a shared machine hits both alike.
    off, before = float("inf"), float("inf")
    for _ in range(3):
        off = min(off, asyncio.run(run(off_app, args.n)))
        if before_app is not None:
            before = min(before, asyncio.run(run(before_app, args.n)))
    added = min(timeit.repeat("REQUEST_ID.set(b'r'); tracing.ENABLED", globals=globals(), number=1_000_000, repeat=5))
    print(f"off             {off:8.2f} µs/request")
    print(f"added-when-off  {added:8.3f} µs/request (one ContextVar.set + one flag read, timed alone)")
    if before_app is not None:
        print(f"before ({args.before}) {before:8.2f} µs/request (gateway/proxy.py as committed there)")

    from opentelemetry import trace
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

    class Drop(SpanExporter):
        def export(self, spans):  # type: ignore[no-untyped-def]
            return SpanExportResult.SUCCESS

    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(Drop(), max_queue_size=100_000))
    trace.set_tracer_provider(provider)
    from gateway.traced import install

    install()
    on = asyncio.run(run(build(True), args.n))
    provider.shutdown()
    print(f"on              {on:8.2f} µs/request (4 spans, trace headers injected)")


if __name__ == "__main__":
    main()
