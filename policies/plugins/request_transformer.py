"""request-transformer: edit the request the upstream receives — headers, query parameters, top-level JSON fields.

The operations and their fixed order (remove → rename → replace → add) are
described in :mod:`policies.plugins.transform_ops`. It runs after
authentication and limits (priority 810), so it cannot help a client past
them, and before request-validator (700), which therefore validates the
request *as forwarded*.

JSON edits need the whole body: it is buffered through ``ctx.read_body()``,
bounded by the request-size-limit in force (else 8 MiB), and a larger body is
answered 413. Only requests whose (edited) ``Content-Type`` is JSON are
buffered; other bodies keep streaming untouched. The proxy frames the edited
body with a new ``Content-Length``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.base import CompileEnv, Denial, Handler, Policy
from policies.context import RequestContext
from policies.plugins.transform_ops import (
    OPS,
    REQUEST_FORBIDDEN,
    HeaderOps,
    JsonOps,
    QueryOps,
    apply_header_ops,
    apply_json_ops,
    apply_query_ops,
    is_json_media_type,
    ops_schema,
    parse_header_ops,
    parse_json_ops,
    parse_query_ops,
)

# Bodies above this are parsed off the event loop so one large JSON edit does not stall other requests.
_OFFLOAD_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class RequestTransform:
    headers: HeaderOps
    query: QueryOps
    json: JsonOps


class RequestTransformerHandler(Handler):
    def __init__(self, transform: RequestTransform) -> None:
        self._headers = transform.headers if transform.headers else None
        self._query = transform.query if transform.query else None
        self._json = transform.json if transform.json else None

    async def request(self, ctx: RequestContext) -> Denial | None:
        if self._headers is not None:
            headers = ctx.headers
            if ctx.drop_headers:
                # A consumed credential must not come back under another name (rename/copy).
                headers = [item for item in headers if item[0] not in ctx.drop_headers]
            ctx.headers = apply_header_ops(headers, self._headers)
        if self._query is not None:
            ctx.query = apply_query_ops(ctx.query, self._query)
        if (
            self._json is not None
            and ctx.has_body
            and is_json_media_type(ctx.header(b"content-type"))
            and ctx.header(b"content-encoding") is None
        ):
            body = await ctx.read_body()
            if len(body) > _OFFLOAD_BYTES:
                edited = await asyncio.to_thread(apply_json_ops, body, self._json)
            else:
                edited = apply_json_ops(body, self._json)
            if edited is not None:
                ctx.body = edited
        return None


class RequestTransformerPolicy(Policy):
    name = "request-transformer"
    title = "Request transformer"
    priority = 810
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": ops_schema(query=True, what="Request"),
        "anyOf": [{"required": [op]} for op in OPS],
        "description": "Operations run in the order remove, rename, replace, add.",
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> RequestTransform:
        return RequestTransform(
            headers=parse_header_ops(config, REQUEST_FORBIDDEN),
            query=parse_query_ops(config),
            json=parse_json_ops(config),
        )

    @classmethod
    def compile(cls, parsed: RequestTransform, env: CompileEnv) -> RequestTransformerHandler:
        return RequestTransformerHandler(parsed)
