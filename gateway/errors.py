"""Responses the gateway generates itself, in the uniform error envelope.

``{"success": false, "error": {"code", "message", "details"}, "request_id"}``
with ``Content-Type: application/json`` and ``Cache-Control: no-store``. The
bodies are small and built per call; the common ones could be cached but an
error path is not the hot path.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from email.utils import formatdate
from typing import Any

from gateway.usage import UsageTrace

Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

# code -> (status, message). Messages never echo client input.
ERRORS: dict[str, tuple[int, str]] = {
    "bad_request": (400, "The request target is not acceptable."),
    "ambiguous_framing": (400, "The request has ambiguous message framing."),
    "uri_too_long": (414, "The request target is too long."),
    "header_fields_too_large": (431, "The request's header fields are too large."),
    "not_found": (404, "No API matches this host and path."),
    "method_not_allowed": (405, "The API does not accept this method on this path."),
    "upstream_unreachable": (502, "The upstream could not be reached."),
    "upstream_error": (502, "The upstream sent an invalid response."),
    "upstream_forbidden": (502, "The upstream's address is not one the gateway may connect to."),
    "no_healthy_target": (503, "No healthy upstream target is available."),
    "not_ready": (503, "The gateway has no configuration loaded yet."),
    "upstream_timeout": (504, "The upstream did not answer in time."),
}


def envelope(
    code: str,
    request_id: bytes,
    *,
    message: str | None = None,
    details: dict[str, Any] | None = None,
    status: int | None = None,
) -> tuple[int, bytes]:
    """The status and JSON body for ``code``; policies pass their own ``status`` and ``message``."""
    known_status, default_message = ERRORS.get(code, (500, "The gateway could not handle the request."))
    status = status or known_status
    body = {
        "success": False,
        "error": {"code": code, "message": message or default_message, "details": details or {}},
        "request_id": request_id.decode("latin-1"),
    }
    return status, json.dumps(body, separators=(",", ":")).encode()


async def send_error(
    send: Send,
    code: str,
    request_id: bytes,
    *,
    extra_headers: list[tuple[bytes, bytes]] | None = None,
    message: str | None = None,
    details: dict[str, Any] | None = None,
    head: bool = False,
    status: int | None = None,
) -> int:
    """Send a complete error response; returns its status."""
    status, body = envelope(code, request_id, message=message, details=details, status=status)
    if type(send) is UsageTrace:
        send.error_code = code  # the usage record's deny_reason when no policy set a finer one
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"date", formatdate(usegmt=True).encode()),
        (b"x-request-id", request_id),
    ]
    if extra_headers:
        headers.extend(extra_headers)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})
    return status
