"""cors: answer CORS preflights at the gateway and label actual responses for allowed origins.

Decisions operators rely on:

* **Origins** are exact (``https://app.example.com``, scheme + host + port,
  default ports dropped), ``*`` (any origin), or a subdomain wildcard
  (``https://*.example.com``: any name ending in ``.example.com``, at any
  depth, same scheme and port — not ``example.com`` itself). No regexes: a
  regex that forgets an anchor or a dot escape silently opens the API to
  ``example.com.evil.net``. The ``null`` origin (sandboxed frames, ``file:``
  pages) is allowed only when listed literally, never by a wildcard.
* **Credentials with ``*`` are refused at config time.** Kong echoes any
  origin in that case, which lets every site on the web make credentialed
  calls; an operator who wants that must say which origins. An allowed origin
  is echoed (never ``*``) whenever credentials are on or the list is not ``*``.
* A **preflight** (``OPTIONS`` with ``Origin`` and
  ``Access-Control-Request-Method``) is answered here with 204 and never
  forwarded, also on routes that do not list OPTIONS (the proxy routes it with
  the requested method). A disallowed origin still gets a 204, without any
  ``Access-Control-*`` header: the browser then blocks the real request.
  ``preflight_continue: true`` forwards preflights to the upstream instead.
* **Actual requests** from an allowed origin get ``Access-Control-Allow-Origin``
  (+ ``-Allow-Credentials``, ``-Expose-Headers``) through
  ``ctx.response_headers``, so the gateway's own 401/403/429 carry them too
  and a browser app can read why it was refused.
* ``Vary: Origin`` is on every answer whose CORS headers depend on the origin
  (all but the pure ``*`` configuration), including answers to requests
  without ``Origin``, so a shared cache never serves one origin's answer to another.
* The policy owns CORS for its API: ``Access-Control-*`` headers the upstream
  sends are removed, so a browser never sees two conflicting
  ``Access-Control-Allow-Origin`` values or an origin the policy refuses.
* ``headers`` absent or containing ``*``: the requested headers
  (``Access-Control-Request-Headers``, if they are valid header names) are
  allowed, as Kong does.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.base import PRE_AUTH_SCOPES, CompileEnv, ConfigError, Denial, Handler, Policy
from policies.context import RequestContext, ResponseHead
from policies.engine import Reply

DEFAULT_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE")
_TOKEN_RE = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_TOKEN_LIST_RE = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*,[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+)*$")
_HOST = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*|\[[0-9a-f:.]+\])"
_ORIGIN_RE = re.compile(rf"^(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<host>{_HOST})(?::(?P<port>[0-9]{{1,5}}))?$")
_WILDCARD_RE = re.compile(
    r"^(?P<scheme>[a-z][a-z0-9+.-]*)://\*\.(?P<host>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+)(?::(?P<port>[0-9]{1,5}))?$"
)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_MANAGED_PREFIX = b"access-control-"

_TOKEN_ARRAY = {"type": "array", "maxItems": 100, "items": {"type": "string", "minLength": 1, "maxLength": 100}}


def _normalize_port(scheme: str, port: str | None) -> str:
    if port is None or _DEFAULT_PORTS.get(scheme) == port.lstrip("0"):
        return ""
    return str(int(port))


@dataclass(frozen=True, slots=True)
class CorsConfig:
    any_origin: bool
    origins: frozenset[str]  # normalized exact origins, incl. "null" if listed
    wildcards: tuple[tuple[str, str, str], ...]  # (scheme, ".suffix", port)
    methods: tuple[str, ...]
    headers: tuple[str, ...] | None  # None: allow what the preflight asks for
    exposed_headers: tuple[str, ...]
    credentials: bool
    max_age: int | None
    preflight_continue: bool


def _tokens(values: list[str], field: str) -> tuple[str, ...]:
    for index, value in enumerate(values):
        if not _TOKEN_RE.match(value):
            raise ConfigError(f"{field}[{index}]", f"{value!r} is not a valid header or method name")
    return tuple(values)


def _origin_key(value: str) -> str | None:
    """The comparison form of an origin (lowercase, default port dropped), or None if it is not one."""
    match = _ORIGIN_RE.match(value.lower())
    if match is None:
        return None
    scheme, host, port = match["scheme"], match["host"], _normalize_port(match["scheme"], match["port"])
    return f"{scheme}://{host}:{port}" if port else f"{scheme}://{host}"


class CorsHandler(Handler):
    """Both hooks: preflight answers (``answers_preflight``) and labels on actual answers."""

    answers_preflight = True

    def __init__(self, config: CorsConfig) -> None:
        self._config = config
        self._echo = not config.any_origin or config.credentials
        self._vary = (b"vary", b"Origin") if self._echo else None
        self._preflight_vary = (
            b"vary",
            b"Origin, Access-Control-Request-Method, Access-Control-Request-Headers"
            if self._echo
            else b"Access-Control-Request-Method, Access-Control-Request-Headers",
        )
        self._methods = ", ".join(config.methods).encode()
        self._allowed_methods = frozenset(config.methods)
        self._headers = None if config.headers is None else ", ".join(config.headers).encode()
        self._exposed = ", ".join(config.exposed_headers).encode() if config.exposed_headers else None
        self._max_age = str(config.max_age).encode() if config.max_age is not None else None
        self._no_cors_reply = Reply(status=204, headers=(self._preflight_vary,), reason="cors_origin_denied")

    def allowed_origin(self, origin: bytes) -> bytes | None:
        """The value for Access-Control-Allow-Origin, or None when the origin is not allowed."""
        config = self._config
        if config.any_origin and not config.credentials:
            return b"*"
        try:
            text = origin.decode("ascii")
        except UnicodeDecodeError:
            return None
        if text == "null":
            return origin if "null" in config.origins else None
        key = _origin_key(text)
        if key is None:
            return None
        if config.any_origin or key in config.origins:
            return origin
        if config.wildcards:
            match = _ORIGIN_RE.match(key)
            assert match is not None
            scheme, host, port = match["scheme"], match["host"], match["port"] or ""
            for w_scheme, suffix, w_port in config.wildcards:
                if scheme == w_scheme and port == w_port and host.endswith(suffix) and len(host) > len(suffix):
                    return origin
        return None

    def _origin(self, ctx: RequestContext) -> bytes | None:
        origin = None
        for name, value in ctx.headers:
            if name == b"origin":
                if origin is not None:
                    return None  # two Origin headers: ambiguous, treat as not allowed
                origin = value
        return origin

    def _preflight(self, ctx: RequestContext, origin: bytes) -> Reply:
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return self._no_cors_reply
        headers: list[tuple[bytes, bytes]] = [
            (b"access-control-allow-origin", allowed),
            (b"access-control-allow-methods", self._methods),
        ]
        if self._headers is not None:
            headers.append((b"access-control-allow-headers", self._headers))
        else:
            requested = ctx.header(b"access-control-request-headers")
            if requested and _TOKEN_LIST_RE.match(requested.strip()):
                headers.append((b"access-control-allow-headers", requested.strip()))
        if self._config.credentials:
            headers.append((b"access-control-allow-credentials", b"true"))
        if self._max_age is not None:
            headers.append((b"access-control-max-age", self._max_age))
        headers.append(self._preflight_vary)
        return Reply(status=204, headers=tuple(headers), reason="cors_preflight")

    async def request(self, ctx: RequestContext) -> Denial | Reply | None:  # type: ignore[override]
        origin = self._origin(ctx)
        if ctx.method == "OPTIONS" and origin is not None and ctx.header(b"access-control-request-method"):
            if self._config.preflight_continue:
                ctx.state["cors_passthrough"] = True
                return None
            return self._preflight(ctx, origin)
        if self._vary is not None:
            ctx.response_headers.append(self._vary)
        if origin is None:
            return None
        allowed = self.allowed_origin(origin)
        if allowed is None:
            return None
        ctx.response_headers.append((b"access-control-allow-origin", allowed))
        if self._config.credentials:
            ctx.response_headers.append((b"access-control-allow-credentials", b"true"))
        if self._exposed is not None:
            ctx.response_headers.append((b"access-control-expose-headers", self._exposed))
        return None

    def response(self, ctx: RequestContext, head: ResponseHead) -> None:
        if ctx.state and ctx.state.get("cors_passthrough"):
            return
        if any(name.startswith(_MANAGED_PREFIX) for name, _ in head.headers):
            head.headers = [(n, v) for n, v in head.headers if not n.startswith(_MANAGED_PREFIX)]


class CorsPolicy(Policy):
    name = "cors"
    title = "CORS"
    priority = 2100
    scopes = PRE_AUTH_SCOPES
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["origins"],
        "properties": {
            "origins": {
                "type": "array",
                "minItems": 1,
                "maxItems": 1000,
                "items": {"type": "string", "minLength": 1, "maxLength": 300},
                "description": 'Allowed origins: exact ("https://app.example.com"), "*" for any, '
                '"https://*.example.com" for subdomains, or "null" (only when listed).',
            },
            "methods": {
                **_TOKEN_ARRAY,
                "minItems": 1,
                "description": "Methods allowed cross-origin (Access-Control-Allow-Methods); "
                "default GET, HEAD, POST, PUT, PATCH, DELETE.",
            },
            "headers": {
                **_TOKEN_ARRAY,
                "description": "Request headers allowed cross-origin (Access-Control-Allow-Headers). "
                'Absent or containing "*": whatever the preflight asks for.',
            },
            "exposed_headers": {
                **_TOKEN_ARRAY,
                "description": "Response headers a browser script may read (Access-Control-Expose-Headers).",
            },
            "credentials": {
                "type": "boolean",
                "description": "Allow cookies and HTTP authentication (Access-Control-Allow-Credentials: true). "
                'Not allowed with origins "*".',
            },
            "max_age": {
                "type": "integer",
                "minimum": 0,
                "maximum": 86400,
                "description": "Seconds a browser may cache a preflight answer (Access-Control-Max-Age).",
            },
            "preflight_continue": {
                "type": "boolean",
                "description": "Forward preflights to the upstream instead of answering them at the gateway.",
            },
        },
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> CorsConfig:
        any_origin = False
        exact: set[str] = set()
        wildcards: list[tuple[str, str, str]] = []
        for index, raw in enumerate(config["origins"]):
            value = raw.strip().lower()
            if value == "*":
                any_origin = True
                continue
            if value == "null":
                exact.add("null")
                continue
            wildcard = _WILDCARD_RE.match(value)
            if wildcard is not None:
                port = _normalize_port(wildcard["scheme"], wildcard["port"])
                wildcards.append((wildcard["scheme"], "." + wildcard["host"], port))
                continue
            key = _origin_key(value)
            if key is None:
                raise ConfigError(
                    f"origins[{index}]",
                    f"{raw!r} is not an origin: use scheme://host[:port] without a path or trailing slash, "
                    '"https://*.example.com" for subdomains, or "*"',
                )
            exact.add(key)
        credentials = bool(config.get("credentials", False))
        if credentials and any_origin:
            raise ConfigError(
                "credentials",
                'cannot be true when origins contains "*": any website could then make credentialed '
                "requests; list the allowed origins instead",
            )
        headers = config.get("headers")
        header_tokens = None if headers is None else _tokens(headers, "headers")
        if header_tokens is not None and "*" in header_tokens:
            header_tokens = None
        methods = _tokens(config.get("methods") or list(DEFAULT_METHODS), "methods")
        return CorsConfig(
            any_origin=any_origin,
            origins=frozenset(exact),
            wildcards=tuple(wildcards),
            methods=tuple(dict.fromkeys(m.upper() for m in methods)),
            headers=header_tokens,
            exposed_headers=_tokens(config.get("exposed_headers", []), "exposed_headers"),
            credentials=credentials,
            max_age=config.get("max_age"),
            preflight_continue=bool(config.get("preflight_continue", False)),
        )

    @classmethod
    def compile(cls, parsed: CorsConfig, env: CompileEnv) -> CorsHandler:
        return CorsHandler(parsed)
