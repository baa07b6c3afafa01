"""Gateway spans (imported only when tracing is on; see ``gateway.tracing``).

Per proxied request, one SERVER span, ``"{method} {route}"`` (``http.route`` is
the matched route template, a bounded label; the method alone when nothing
matched), with three kinds of child:

* ``apim.request_phase`` — canonicalisation, routing and the policies'
  request phase: from the start to the first upstream call, or to the
  gateway's own answer (a 401, 404, 429 ...);
* ``apim.upstream`` (CLIENT) — one per attempt, from sending the request to
  the response head; a retried connect failure shows as a failed attempt;
* ``apim.response_phase`` — response policies and relaying the body, to the
  last byte sent.

The client's W3C ``traceparent``/``tracestate`` (whatever ``OTEL_PROPAGATORS``
names) is the server span's parent. Towards the upstream those headers are
replaced by the upstream span's own, so the upstream sees the client's trace
id with the gateway as parent. The injection happens in ``TracedClient``, in
front of the one upstream-client interface, so both implementations (aiohttp
and httpx) carry it. Attributes never include the query string, API keys or
other headers; reserved ``/__apim`` endpoints are not traced.

Spans are ended on the request path and exported by the batch processor's
thread, never on it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import propagate, trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from apim.observability.context import current_request_id
from gateway import tracing
from gateway.upstream.base import RequestBody, Timeouts, UpstreamClient, UpstreamError, UpstreamResponse, split_origin

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_tracer: trace.Tracer = trace.get_tracer("apim.gateway")


class _RequestSpans:
    """The spans of the request being served (one per request, in a contextvar)."""

    __slots__ = ("context", "method", "phase", "response", "server", "status")

    def __init__(self, server: trace.Span, context: otel_context.Context, method: str) -> None:
        self.server = server
        self.context = context
        self.method = method
        self.phase: trace.Span | None = None
        self.response: trace.Span | None = None
        self.status: int | None = None

    def end_phase(self) -> None:
        if self.phase is not None:
            self.phase.end()
            self.phase = None

    def end_response(self) -> None:
        if self.response is not None:
            self.response.end()
            self.response = None


_CURRENT: ContextVar[_RequestSpans | None] = ContextVar("apim_gateway_spans", default=None)


def _propagation_fields() -> frozenset[bytes]:
    return frozenset(name.lower().encode("latin-1") for name in propagate.get_global_textmap().fields)


class TracedHttp:
    """Wraps the proxy's ASGI callable with the server span and the request-phase span."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]]) -> None:
        self._app = app
        self._fields = _propagation_fields()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("latin-1")
        if raw_path.startswith(b"/__apim"):
            await self._app(scope, receive, send)
            return
        carrier: dict[str, str] = {}
        for name, value in scope["headers"]:
            if name in self._fields:
                carrier[name.decode("latin-1")] = value.decode("latin-1")
        parent = propagate.extract(carrier) if carrier else otel_context.Context()
        method: str = scope["method"]
        server = _tracer.start_span(
            method,
            context=parent,
            kind=SpanKind.SERVER,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"],
                "url.scheme": scope.get("scheme", "http"),
                "network.protocol.version": scope.get("http_version", "1.1"),
                "client.address": (scope.get("client") or ("unknown", 0))[0],
            },
        )
        context = trace.set_span_in_context(server, parent)
        spans = _RequestSpans(server, context, method)
        spans.phase = _tracer.start_span("apim.request_phase", context=context)
        attached = otel_context.attach(context)
        current = _CURRENT.set(spans)

        async def traced_send(message: Message) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                spans.status = message["status"]
                spans.end_phase()
            elif kind == "http.response.body" and not message.get("more_body", False):
                await send(message)
                spans.end_response()
                return
            await send(message)

        try:
            await self._app(scope, receive, traced_send)
        except BaseException as exc:
            server.record_exception(exc)
            server.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise
        finally:
            spans.end_phase()
            spans.end_response()
            request_id = current_request_id()
            if request_id is not None:
                server.set_attribute("apim.request_id", request_id)
            if spans.status is not None:
                server.set_attribute("http.response.status_code", spans.status)
                if spans.status >= 500:
                    server.set_status(Status(StatusCode.ERROR))
            server.end()
            _CURRENT.reset(current)
            otel_context.detach(attached)


def on_route(match: Any) -> None:
    spans = _CURRENT.get()
    if spans is None:
        return
    entry = match.entry
    spans.server.update_name(f"{spans.method} {entry.pattern}")
    spans.server.set_attributes(
        {
            "http.route": entry.pattern,
            "apim.tenant_id": str(entry.tenant_id),
            "apim.api_id": str(entry.api_id),
        }
    )


class TracedClient:
    """The upstream client with an ``apim.upstream`` span per call and the trace headers injected."""

    def __init__(self, inner: UpstreamClient) -> None:
        self._inner = inner
        self.name = inner.name
        self._fields = _propagation_fields()

    async def request(
        self,
        *,
        method: str,
        origin: str,
        target: bytes,
        headers: list[tuple[bytes, bytes]],
        body: RequestBody,
        timeouts: Timeouts,
    ) -> UpstreamResponse:
        spans = _CURRENT.get()
        if spans is None:  # not inside a traced request (an active health probe): as is
            return await self._inner.request(
                method=method, origin=origin, target=target, headers=headers, body=body, timeouts=timeouts
            )
        spans.end_phase()
        scheme, host, port = split_origin(origin)
        span = _tracer.start_span(
            "apim.upstream",
            context=spans.context,
            kind=SpanKind.CLIENT,
            attributes={
                "http.request.method": method,
                "server.address": host,
                "server.port": port,
                "url.scheme": scheme,
                "url.path": target.split(b"?", 1)[0].decode("latin-1"),
            },
        )
        carrier: dict[str, str] = {}
        propagate.inject(carrier, context=trace.set_span_in_context(span, spans.context))
        fields = self._fields
        out = [(name, value) for name, value in headers if name.lower() not in fields]
        out.extend((name.encode("latin-1"), value.encode("latin-1")) for name, value in carrier.items())
        try:
            response = await self._inner.request(
                method=method, origin=origin, target=target, headers=out, body=body, timeouts=timeouts
            )
        except UpstreamError as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.record_exception(exc)
            span.set_status(Status(StatusCode.ERROR, str(exc)))
            span.end()
            raise
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.end()
            raise
        span.set_attribute("http.response.status_code", response.status)
        if response.status >= 500:
            span.set_status(Status(StatusCode.ERROR))
        span.end()
        spans.end_response()
        spans.response = _tracer.start_span("apim.response_phase", context=spans.context)
        return response

    async def aclose(self) -> None:
        await self._inner.aclose()


class TracedClientFactory:
    """Wraps the runtime's lazy client factory; the wrapper is built once, on first use."""

    def __init__(self, factory: Callable[[], UpstreamClient]) -> None:
        self._factory = factory
        self._client: TracedClient | None = None

    def __call__(self) -> UpstreamClient:
        if self._client is None:
            self._client = TracedClient(self._factory())
        return self._client


def install() -> None:
    """Turn the proxy's hooks on in this worker (after ``configure_tracing``)."""
    global _tracer
    _tracer = trace.get_tracer("apim.gateway")
    tracing.enable(on_route)
