"""Per-request state the policy chain reads and edits, and the response head it may edit.

One :class:`RequestContext` is built per request that has a policy chain
(requests to APIs without policies never build one). Policies communicate
through it: authentication sets ``identity``; limits and CORS add
``response_headers`` that go out on every answer, including the gateway's own
errors (a browser cannot read a 429 without its CORS headers); transformers
edit ``headers`` and ``query`` in place, which is what the proxy forwards.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Headers = list[tuple[bytes, bytes]]

# Largest request or response body a policy may ask to buffer (JSON edits,
# validation) when no request-size-limit says otherwise.
DEFAULT_MAX_BUFFERED_BODY = 8 * 1024 * 1024


class BodyTooLarge(Exception):
    """The request body passed the limit in force; the gateway answers 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes")
        self.limit = limit


class ClientGone(Exception):
    """The client disconnected while a policy was reading the request body."""


class Subscription:
    """An application's active subscription to the routed API, as the key store resolved it."""

    __slots__ = ("plan_id", "subscription_id")

    def __init__(self, subscription_id: str, plan_id: str) -> None:
        self.subscription_id = subscription_id
        self.plan_id = plan_id


class Identity:
    """Who is calling, once an authentication policy has decided.

    ``key_prefix`` is the display prefix (never the key). ``scopes`` come from
    the key or the token; ``groups`` from the consumer.
    """

    __slots__ = (
        "application_id",
        "consumer_id",
        "consumer_name",
        "credential",
        "groups",
        "key_prefix",
        "scopes",
        "subscription",
    )

    def __init__(
        self,
        *,
        consumer_id: str,
        consumer_name: str,
        credential: str,
        application_id: str | None = None,
        key_prefix: str | None = None,
        scopes: frozenset[str] = frozenset(),
        groups: frozenset[str] = frozenset(),
        subscription: Subscription | None = None,
    ) -> None:
        self.consumer_id = consumer_id
        self.consumer_name = consumer_name
        self.credential = credential
        self.application_id = application_id
        self.key_prefix = key_prefix
        self.scopes = scopes
        self.groups = groups
        self.subscription = subscription


class RequestContext:
    __slots__ = (
        "api_id",
        "body",
        "client_ip",
        "content_length",
        "deny_reason",
        "drop_headers",
        "has_body",
        "headers",
        "host",
        "identity",
        "max_body",
        "method",
        "path",
        "query",
        "receive",
        "request_id",
        "response_headers",
        "route_pattern",
        "scope",
        "state",
        "tenant_id",
        "upstream_headers",
    )

    def __init__(
        self,
        *,
        scope: MutableMapping[str, Any],
        receive: Receive,
        method: str,
        path: str,
        query: bytes,
        headers: Headers,
        host: bytes,
        client_ip: str,
        request_id: bytes,
        tenant_id: str,
        api_id: str,
        route_pattern: str,
        content_length: int | None,
        has_body: bool,
    ) -> None:
        self.scope = scope
        self.receive = receive
        self.method = method
        self.path = path  # canonical, decoded: what routing matched
        self.query = query  # raw bytes, forwarded as is unless a transformer edits it
        self.headers = headers  # the client's headers; transformers edit a copy
        self.host = host
        self.client_ip = client_ip
        self.request_id = request_id
        self.tenant_id = tenant_id
        self.api_id = api_id
        self.route_pattern = route_pattern
        self.content_length = content_length
        self.has_body = has_body
        self.identity: Identity | None = None
        self.response_headers: Headers = []  # added to whatever answer the client gets
        self.upstream_headers: Headers = []  # added to the forwarded request (identity headers)
        # Request header names (lowercase) not to forward, e.g. the credential key-auth consumed;
        # cheaper than copying the header list, the proxy filters in its single pass.
        self.drop_headers: frozenset[bytes] = frozenset()
        self.deny_reason: str | None = None
        self.body: bytes | None = None  # set once a policy buffered the request body
        self.max_body: int | None = None  # set by request-size-limit
        self.state: dict[str, Any] = {}

    def header(self, name: bytes) -> bytes | None:
        """The first value of a request header (``name`` lowercase)."""
        for key, value in self.headers:
            if key == name:
                return value
        return None

    def edit_headers(self) -> Headers:
        """The request headers as a list this request owns (copied on first edit)."""
        if self.headers is self.scope["headers"]:
            self.headers = list(self.headers)
        return self.headers

    async def read_body(self) -> bytes:
        """The whole request body, buffered once and bounded.

        The bound is the request-size-limit in force, else
        ``DEFAULT_MAX_BUFFERED_BODY``; passing it raises :class:`BodyTooLarge`
        as soon as the counted bytes exceed it, without reading the rest.
        """
        if self.body is not None:
            return self.body
        limit = self.max_body if self.max_body is not None else DEFAULT_MAX_BUFFERED_BODY
        if self.content_length is not None and self.content_length > limit:
            raise BodyTooLarge(limit)
        if not self.has_body:
            self.body = b""
            return self.body
        parts: list[bytes] = []
        size = 0
        more = True
        while more:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                raise ClientGone
            chunk = message.get("body", b"")
            more = message.get("more_body", False)
            if chunk:
                size += len(chunk)
                if size > limit:
                    raise BodyTooLarge(limit)
                parts.append(chunk)
        self.body = b"".join(parts)
        return self.body


class ResponseHead:
    """The upstream's response as the response phase sees it, before it is sent.

    ``headers`` have lowercase names. A policy that must rewrite the body sets
    ``body_filter``; the proxy then buffers the body (bounded by
    ``DEFAULT_MAX_BUFFERED_BODY``; a larger body is relayed unchanged), applies
    the filters in order and re-frames the result with a new Content-Length.
    """

    __slots__ = ("body_filters", "headers", "status")

    def __init__(self, status: int, headers: Headers) -> None:
        self.status = status
        self.headers = headers
        self.body_filters: list[Callable[[bytes, ResponseHead], bytes]] = []

    def header(self, name: bytes) -> bytes | None:
        for key, value in self.headers:
            if key == name:
                return value
        return None
