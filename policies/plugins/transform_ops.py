"""The edit operations request-transformer and response-transformer share: headers, query, JSON body.

Operations run in a fixed order, whatever order the config lists them in:
**remove → rename → replace → add** (Kong's order, minus ``append``):

* ``remove``: every occurrence goes;
* ``rename``: every occurrence moves to the new name, replacing what the new
  name held (query parameters keep their raw, still-encoded value bytes);
* ``replace``: only if present — all occurrences become one with the new value
  (a query parameter keeps the position of its first occurrence);
* ``add``: only if absent (so a client's own value is never overwritten; use
  ``replace`` for that, or both for "set").

Header names are compared case-insensitively; names must be HTTP tokens and
values printable ASCII (no CR, LF or NUL: no header injection), checked at
config time with the field's path. Headers that carry framing or connection
state, or that the gateway itself sets, are refused at config time instead of
being silently dropped later.

The query is edited as raw bytes: untouched parameters (and their order) are
forwarded byte-for-byte — ``a=%2F&b=1+2&c=`` stays exactly that — and only
parameters an operation touches are rewritten, percent-encoded (RFC 3986
unreserved characters kept). Names in the config are matched against the
decoded parameter names (``+`` as space, percent-decoding).

JSON edits apply only to a ``Content-Type`` of ``application/json`` or
``*/*+json`` without ``Content-Encoding``, and only to a body that is a JSON
object without duplicate keys (re-serialising would silently resolve them
and hide them from request-validator); anything else passes unchanged. The
edited document is serialised compactly as UTF-8; numbers go through Python's
``json`` (integers exact; ``1.10`` becomes ``1.1``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote_plus

from policies.base import ConfigError

Headers = list[tuple[bytes, bytes]]

_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VALUE_RE = re.compile(r"^[\x20-\x7e\t]*$")
MAX_VALUE = 8192

# Never editable by a transformer: framing, connection state, and what the gateway sets itself.
_HOP_AND_FRAMING = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-connection",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "proxy-authenticate",
        "proxy-authorization",
        "content-length",
        "via",
        "x-request-id",
    }
)
REQUEST_FORBIDDEN = _HOP_AND_FRAMING | {
    "host",
    "expect",
    "forwarded",
    "x-forwarded-for",
    "x-forwarded-proto",
    "x-forwarded-host",
    "x-forwarded-port",
    "x-real-ip",
    "x-consumer-id",
    "x-consumer-username",
    "x-consumer-groups",
    "x-application-id",
    "x-credential-identifier",
    "x-anonymous-consumer",
}
RESPONSE_FORBIDDEN = _HOP_AND_FRAMING | {"x-apim-proxy-latency", "x-apim-upstream-latency"}

OPS = ("remove", "rename", "replace", "add")


def _string_map(description: str, value_schema: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {
        "type": "object",
        "maxProperties": 100,
        "propertyNames": {"minLength": 1, "maxLength": 256},
        "additionalProperties": dict(value_schema)
        if value_schema is not None
        else {"type": "string", "maxLength": MAX_VALUE},
        "description": description,
    }


_NAME_LIST = {"type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1, "maxLength": 256}}


def ops_schema(*, query: bool, what: str) -> dict[str, Any]:
    """The JSON Schema of the ``remove``/``rename``/``replace``/``add`` blocks (query only for requests)."""

    def block(op: str) -> dict[str, Any]:
        props: dict[str, Any] = {}
        if op == "remove":
            props["headers"] = {**_NAME_LIST, "description": f"{what} header names to remove."}
            if query:
                props["query"] = {**_NAME_LIST, "description": "Query parameter names to remove."}
            props["json"] = {**_NAME_LIST, "description": "Top-level JSON body fields to remove."}
        elif op == "rename":
            props["headers"] = _string_map(f"{what} headers to rename: old name -> new name.")
            if query:
                props["query"] = _string_map("Query parameters to rename: old name -> new name.")
            props["json"] = _string_map("Top-level JSON body fields to rename: old name -> new name.")
        else:
            verb = "set only if present" if op == "replace" else "set only if absent"
            props["headers"] = _string_map(f"{what} headers to {op} ({verb}): name -> value.")
            if query:
                props["query"] = _string_map(f"Query parameters to {op} ({verb}): name -> value.")
            props["json"] = _string_map(
                f"Top-level JSON body fields to {op} ({verb}): name -> any JSON value.", value_schema={}
            )
        return {
            "type": "object",
            "additionalProperties": False,
            "properties": props,
            "description": f"{op}: applied in the order remove, rename, replace, add.",
        }

    return {op: block(op) for op in OPS}


@dataclass(frozen=True, slots=True)
class HeaderOps:
    remove: frozenset[bytes] = frozenset()
    rename: tuple[tuple[bytes, bytes], ...] = ()
    replace: tuple[tuple[bytes, bytes], ...] = ()
    add: tuple[tuple[bytes, bytes], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.remove or self.rename or self.replace or self.add)


@dataclass(frozen=True, slots=True)
class QueryOps:
    remove: frozenset[str] = frozenset()
    rename: tuple[tuple[str, bytes], ...] = ()  # decoded old name -> encoded new name
    replace: tuple[tuple[str, bytes], ...] = ()  # decoded name -> encoded "name=value"
    add: tuple[tuple[str, bytes], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.remove or self.rename or self.replace or self.add)


@dataclass(frozen=True, slots=True)
class JsonOps:
    remove: tuple[str, ...] = ()
    rename: tuple[tuple[str, str], ...] = ()
    replace: tuple[tuple[str, Any], ...] = ()
    add: tuple[tuple[str, Any], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.remove or self.rename or self.replace or self.add)


def _header_name(name: str, path: str, forbidden: frozenset[str]) -> bytes:
    if not _TOKEN_RE.match(name):
        raise ConfigError(path, f"{name!r} is not a valid header name")
    lower = name.lower()
    if lower in forbidden:
        raise ConfigError(path, f"{name!r} cannot be changed by a transformer: the gateway manages it")
    return lower.encode("ascii")


def _header_value(value: str, path: str) -> bytes:
    if not _VALUE_RE.match(value):
        raise ConfigError(path, "header values may contain only printable ASCII characters, spaces and tabs")
    return value.strip(" \t").encode("ascii")


def parse_header_ops(config: Mapping[str, Any], forbidden: frozenset[str]) -> HeaderOps:
    def names(op: str) -> list[str]:
        return list(config.get(op, {}).get("headers", []))

    def pairs(op: str, *, value_is_name: bool) -> tuple[tuple[bytes, bytes], ...]:
        out = []
        for key, value in config.get(op, {}).get("headers", {}).items():
            where = f"{op}.headers.{key}"
            name = _header_name(key, where, forbidden)
            out.append((name, _header_name(value, where, forbidden) if value_is_name else _header_value(value, where)))
        return tuple(out)

    remove = frozenset(_header_name(n, f"remove.headers[{i}]", forbidden) for i, n in enumerate(names("remove")))
    return HeaderOps(
        remove=remove,
        rename=pairs("rename", value_is_name=True),
        replace=pairs("replace", value_is_name=False),
        add=pairs("add", value_is_name=False),
    )


def _encode(text: str) -> bytes:
    return quote(text, safe="-._~").encode("ascii")


def parse_query_ops(config: Mapping[str, Any]) -> QueryOps:
    def block(op: str) -> Any:
        return config.get(op, {}).get("query", {} if op != "remove" else [])

    return QueryOps(
        remove=frozenset(block("remove")),
        rename=tuple((old, _encode(new)) for old, new in block("rename").items()),
        replace=tuple((name, _encode(name) + b"=" + _encode(value)) for name, value in block("replace").items()),
        add=tuple((name, _encode(name) + b"=" + _encode(value)) for name, value in block("add").items()),
    )


def parse_json_ops(config: Mapping[str, Any]) -> JsonOps:
    def block(op: str) -> Any:
        return config.get(op, {}).get("json", {} if op != "remove" else [])

    return JsonOps(
        remove=tuple(block("remove")),
        rename=tuple(block("rename").items()),
        replace=tuple(block("replace").items()),
        add=tuple(block("add").items()),
    )


def apply_header_ops(headers: Headers, ops: HeaderOps) -> Headers:
    """A new header list with ``ops`` applied in order (names lowercase, as ASGI delivers them)."""
    out = [item for item in headers if item[0] not in ops.remove] if ops.remove else list(headers)
    for old, new in ops.rename:
        values = [v for n, v in out if n == old]
        if values:
            out = [item for item in out if item[0] != old and item[0] != new]
            out.extend((new, v) for v in values)
    for name, value in ops.replace:
        replaced: Headers = []
        done = False
        for item in out:
            if item[0] != name:
                replaced.append(item)
            elif not done:
                replaced.append((name, value))
                done = True
        out = replaced
    for name, value in ops.add:
        if not any(n == name for n, _ in out):
            out.append((name, value))
    return out


def _param_name(part: bytes) -> str:
    name = part.split(b"=", 1)[0]
    return unquote_plus(name.decode("latin-1"), encoding="utf-8", errors="replace")


def apply_query_ops(query: bytes, ops: QueryOps) -> bytes:
    """The raw query with ``ops`` applied; parameters no operation names are kept byte-for-byte."""
    parts: list[tuple[str | None, bytes]] = (
        [(_param_name(part) if part else None, part) for part in query.split(b"&")] if query else []
    )
    if ops.remove:
        parts = [(n, p) for n, p in parts if n not in ops.remove]
    for old, new in ops.rename:
        renamed: list[tuple[str | None, bytes]] = []
        new_name = _param_name(new)
        present = any(n == old for n, _ in parts)
        for name, part in parts:
            if name == old:
                _, eq, value = part.partition(b"=")
                renamed.append((new_name, new + eq + value))
            elif name == new_name and present:
                continue  # the renamed parameter replaces what the new name held
            else:
                renamed.append((name, part))
        parts = renamed
    for name, encoded in ops.replace:
        if any(n == name for n, _ in parts):
            replaced: list[tuple[str | None, bytes]] = []
            done = False
            for n, part in parts:
                if n != name:
                    replaced.append((n, part))
                elif not done:
                    replaced.append((n, encoded))
                    done = True
            parts = replaced
    for name, encoded in ops.add:
        if not any(n == name for n, _ in parts):
            parts.append((name, encoded))
    return b"&".join(part for _, part in parts)


class _Duplicate(ValueError):
    pass


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result = dict(pairs)
    if len(result) != len(pairs):
        raise _Duplicate
    return result


def is_json_media_type(content_type: bytes | None) -> bool:
    if not content_type:
        return False
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.endswith(b"+json") and b"/" in media)


def apply_json_ops(body: bytes, ops: JsonOps) -> bytes | None:
    """The edited document, or None when ``body`` is not a JSON object this edit may touch."""
    try:
        document = json.loads(body, object_pairs_hook=_no_duplicates)
    except (ValueError, RecursionError):
        return None
    if not isinstance(document, dict):
        return None
    for key in ops.remove:
        document.pop(key, None)
    for old, new in ops.rename:
        if old in document:
            document[new] = document.pop(old)
    for key, value in ops.replace:
        if key in document:
            document[key] = value
    for key, value in ops.add:
        if key not in document:
            document[key] = value
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
