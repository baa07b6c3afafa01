"""response-transformer: edit the upstream's response — headers and top-level JSON fields.

Operations and their fixed order (remove → rename → replace → add) are those
of :mod:`policies.plugins.transform_ops`. Header edits apply to every
upstream response; JSON edits only to a ``Content-Type`` of JSON without
``Content-Encoding``, and never to HEAD requests or 204/304 answers (there is
no body to edit). The proxy buffers such a response (up to 8 MiB; a larger one
is relayed unchanged), applies the edit and re-frames it with a new
``Content-Length``. A body that is not a JSON object (or has duplicate keys)
is relayed unchanged.

The gateway's own answers (401, 429, ...) are not upstream responses and are
not transformed; the headers the gateway adds (request id, latencies, rate
limit state, CORS) are added after this policy ran and cannot be removed by it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.base import CompileEnv, Handler, Policy
from policies.context import RequestContext, ResponseHead
from policies.plugins.transform_ops import (
    OPS,
    RESPONSE_FORBIDDEN,
    HeaderOps,
    JsonOps,
    apply_header_ops,
    apply_json_ops,
    is_json_media_type,
    ops_schema,
    parse_header_ops,
    parse_json_ops,
)

_NO_BODY = frozenset({204, 304})


@dataclass(frozen=True, slots=True)
class ResponseTransform:
    headers: HeaderOps
    json: JsonOps


class ResponseTransformerHandler(Handler):
    def __init__(self, transform: ResponseTransform) -> None:
        self._headers = transform.headers if transform.headers else None
        json_ops = transform.json if transform.json else None
        self._json = json_ops

        def edit(body: bytes, head: ResponseHead) -> bytes:
            assert json_ops is not None
            edited = apply_json_ops(body, json_ops)
            return body if edited is None else edited

        self._filter = edit

    def response(self, ctx: RequestContext, head: ResponseHead) -> None:
        if self._headers is not None:
            head.headers = apply_header_ops(head.headers, self._headers)
        if (
            self._json is not None
            and ctx.method != "HEAD"
            and head.status not in _NO_BODY
            and head.status >= 200
            and is_json_media_type(head.header(b"content-type"))
            and head.header(b"content-encoding") is None
        ):
            head.body_filters.append(self._filter)


class ResponseTransformerPolicy(Policy):
    name = "response-transformer"
    title = "Response transformer"
    priority = 800
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": ops_schema(query=False, what="Response"),
        "anyOf": [{"required": [op]} for op in OPS],
        "description": "Operations run in the order remove, rename, replace, add.",
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> ResponseTransform:
        return ResponseTransform(headers=parse_header_ops(config, RESPONSE_FORBIDDEN), json=parse_json_ops(config))

    @classmethod
    def compile(cls, parsed: ResponseTransform, env: CompileEnv) -> ResponseTransformerHandler:
        return ResponseTransformerHandler(parsed)
