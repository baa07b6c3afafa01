"""The Python floor for the gateway benchmark: the least an ASGI proxy can do.

One upstream (``RAW_PROXY_UPSTREAM``, e.g. http://127.0.0.1:8090), one shared
aiohttp session, bodies streamed both ways, no routing, no policies, no header
rules beyond dropping Host and hop-by-hop framing. Served by uvicorn with the
same worker count as the gateway:

    RAW_PROXY_UPSTREAM=http://127.0.0.1:8090 uvicorn bench.raw_proxy:app --port 8082 --loop uvloop --http httptools

With ``RAW_PROXY_GC_THRESHOLD=N`` it also runs with the gateway's garbage-collector
settings (import-time objects frozen, young-generation threshold N), so the
benchmark can show the gateway against a floor tuned the same way.
"""

from __future__ import annotations

import gc
import os
from typing import Any

import aiohttp
from yarl import URL

UPSTREAM = os.environ.get("RAW_PROXY_UPSTREAM", "http://127.0.0.1:8090")
_DROP = {b"host", b"connection", b"keep-alive", b"transfer-encoding", b"upgrade", b"te", b"trailer"}
_session: aiohttp.ClientSession | None = None

if os.environ.get("RAW_PROXY_GC_THRESHOLD"):
    gc.freeze()
    gc.set_threshold(int(os.environ["RAW_PROXY_GC_THRESHOLD"]), *gc.get_threshold()[1:])


def _get_session() -> aiohttp.ClientSession:
    global _session
    if _session is None:
        _session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(limit=1024, keepalive_timeout=60),
            auto_decompress=False,
            cookie_jar=aiohttp.DummyCookieJar(),
            skip_auto_headers=("User-Agent", "Accept", "Accept-Encoding"),
        )
    return _session


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if _session is not None:
                    await _session.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
    session = _get_session()
    target = scope["raw_path"] + (b"?" + scope["query_string"] if scope["query_string"] else b"")
    headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in scope["headers"] if k not in _DROP]

    async def body():
        while True:
            message = await receive()
            chunk = message.get("body", b"")
            if chunk:
                yield chunk
            if not message.get("more_body"):
                return

    has_body = any(k in (b"content-length", b"transfer-encoding") for k, _ in scope["headers"])
    url = URL(UPSTREAM + target.decode("latin-1"), encoded=True)
    async with session.request(scope["method"], url, headers=headers, data=body() if has_body else None) as response:
        out = [(k, v) for k, v in response.raw_headers if k.lower() not in _DROP]
        await send({"type": "http.response.start", "status": response.status, "headers": out})
        async for chunk in response.content.iter_any():
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
