"""The request id of the request being served, for log lines.

A contextvar: each ASGI request runs in its own task with its own copy, so a
value set by the gateway (``gateway.proxy``) or by the Django middleware never
leaks into another request. Stored as the gateway has it (``bytes``) or as
Django has it (``str``); the log formatter decodes when it formats a line,
so setting it costs the request path one ``ContextVar.set``.
"""

from __future__ import annotations

from contextvars import ContextVar

REQUEST_ID: ContextVar[bytes | str | None] = ContextVar("apim_request_id", default=None)


def current_request_id() -> str | None:
    value = REQUEST_ID.get()
    if value is None:
        return None
    return value.decode("latin-1") if isinstance(value, bytes) else value
