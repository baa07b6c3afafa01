"""request-size-limit: refuse request bodies larger than ``max_bytes`` with 413, without buffering them.

Two cases, both answered before the upstream sees a complete oversized body:

* a declared ``Content-Length`` over the limit is refused at once, before a
  single body byte is read. The client's body is never read, so an
  ``Expect: 100-continue`` client never gets its ``100 Continue`` (the server
  sends it only when the application first reads) and does not upload at all.
  The answer carries ``Connection: close`` so the unread body cannot be taken
  for the next request on the connection.
* a body without a length (chunked) is counted while it streams to the
  upstream (``ctx.max_body`` makes the proxy wrap the body in
  ``gateway.bodies.limited``); when the count passes the limit the upstream
  request is abandoned mid-body and the client gets 413, as long as the
  upstream has not answered yet.

The same bound applies to policies that buffer the body (transformers,
request-validator): ``ctx.read_body()`` stops at it with 413.

Runs before authentication (priority 2000), so it can only be attached to the
tenant or an API: an oversized upload is refused before any key lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.base import PRE_AUTH_SCOPES, CompileEnv, Denial, Handler, Policy
from policies.context import RequestContext

MAX_CONFIGURABLE_BYTES = 1 << 40  # 1 TiB: anything larger is a typo, not a limit


@dataclass(frozen=True, slots=True)
class SizeLimit:
    max_bytes: int


class RequestSizeLimitHandler(Handler):
    def __init__(self, limit: SizeLimit) -> None:
        self.max_bytes = limit.max_bytes
        # Precomputed: the declared-length refusal is the same object for every request.
        self._denial = Denial(
            status=413,
            code="body_too_large",
            message="The request body is larger than this API accepts.",
            details={"limit_bytes": limit.max_bytes},
            headers=((b"connection", b"close"),),
        )

    async def request(self, ctx: RequestContext) -> Denial | None:
        # Set before anything else can read the body: every later reader (the proxy's
        # streaming forward, a transformer's read_body) is bounded by it.
        ctx.max_body = self.max_bytes
        if ctx.content_length is not None and ctx.content_length > self.max_bytes:
            return self._denial
        return None


class RequestSizeLimitPolicy(Policy):
    name = "request-size-limit"
    title = "Request size limit"
    priority = 2000
    scopes = PRE_AUTH_SCOPES
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["max_bytes"],
        "properties": {
            "max_bytes": {
                "type": "integer",
                "minimum": 1,
                "maximum": MAX_CONFIGURABLE_BYTES,
                "description": "Largest request body accepted, in bytes (e.g. 1048576 for 1 MiB). "
                "Larger bodies get 413, whether declared by Content-Length or counted while streaming.",
            },
        },
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> SizeLimit:
        return SizeLimit(max_bytes=int(config["max_bytes"]))

    @classmethod
    def compile(cls, parsed: SizeLimit, env: CompileEnv) -> RequestSizeLimitHandler:
        return RequestSizeLimitHandler(parsed)
