"""The gateway's own endpoints under ``/__apim`` (no API can claim that prefix).

* ``/__apim/health`` — liveness: the worker answers.
* ``/__apim/ready`` — readiness: a snapshot is loaded; 503 before the first
  load. A stale snapshot (the database unreachable since) still serves traffic
  and reports ``"stale": true`` with the error, so operators see it without the
  gateway being pulled out of rotation for a control-plane outage.
* ``/__apim/metrics`` — Prometheus exposition: with several workers, the sum of
  all of them whichever worker answers (``gateway.metrics``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST

from gateway import metrics_multiprocess

RESERVED_PREFIX = b"/__apim"

Scope = MutableMapping[str, Any]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def is_reserved(raw_path: bytes) -> bool:
    return raw_path == RESERVED_PREFIX or raw_path.startswith(RESERVED_PREFIX + b"/")


async def _respond(send: Send, status: int, body: bytes, content_type: bytes, head: bool) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", content_type),
                (b"content-length", str(len(body)).encode()),
                (b"cache-control", b"no-store"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b"" if head else body})


async def serve_reserved(
    scope: Scope,
    send: Send,
    *,
    status: Callable[[], dict[str, Any]],
    metrics: Callable[[], bytes] = metrics_multiprocess.render,
) -> None:
    path = scope["raw_path"]
    head = scope["method"] == "HEAD"
    if scope["method"] not in ("GET", "HEAD"):
        await _respond(send, 405, b'{"success":false,"error":{"code":"method_not_allowed"}}', b"application/json", head)
        return
    if path == RESERVED_PREFIX + b"/health":
        await _respond(send, 200, b'{"status":"ok"}', b"application/json", head)
    elif path == RESERVED_PREFIX + b"/ready":
        state = status()
        ready = bool(state.get("loaded"))
        body = json.dumps({"status": "ready" if ready else "not_ready", **state}).encode()
        await _respond(send, 200 if ready else 503, body, b"application/json", head)
    elif path == RESERVED_PREFIX + b"/metrics":
        await _respond(send, 200, metrics(), CONTENT_TYPE_LATEST.encode(), head)
    else:
        await _respond(send, 404, b'{"success":false,"error":{"code":"not_found"}}', b"application/json", head)
