"""The HTTP request path: route, balance, forward, relay. No ORM, no blocking I/O.

Per request, in order:

1. Reserved ``/__apim`` endpoints are answered locally.
2. The request target is canonicalised once (``gateway.canonical``); the
   canonical path is what routing, policies, the usage record and the
   upstream see. Ambiguous targets and ambiguous framing get 400.
3. The snapshot read once at the start (``watcher.current``) routes the
   request; a reload during the request cannot change its course.
3a. If the API has a policy chain, its request phase runs (``policies.engine``):
   it may answer instead of the upstream (401, 403, 429, 413, a CORS
   preflight), edit the headers and query forwarded, and buffer the body.
   APIs without policies never build a request context.
4. A target is picked (``snapshot.upstreams[...]``), the request is streamed
   to it; connect failures are retried on another target (idempotent methods,
   or nothing sent yet); the outcome feeds passive health.
5. The response is relayed as it arrives. If the upstream breaks mid-body the
   exception propagates so the server aborts the connection: the client sees a
   truncated response (short Content-Length or no final chunk), never a
   complete-looking one.

Gateway-generated answers use the error envelope and are never reported to
passive health: only what the upstream did counts against it.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from apim.observability.context import REQUEST_ID
from gateway import tracing
from gateway.bodies import ClientDisconnected, RequestBody, limited
from gateway.canonical import BadTarget, CanonicalTarget, canonicalize
from gateway.config import GatewaySnapshot
from gateway.errors import send_error
from gateway.headers import (
    FramingError,
    Seen,
    TrustedProxies,
    client_address,
    downstream_response_headers,
    framing_length,
    host_ok,
    host_problem,
    safe_request_id,
    upstream_request_headers,
)
from gateway.ids import new_request_id
from gateway.retry import may_retry
from gateway.router import Match, MethodNotAllowed
from gateway.upstream.base import (
    UpstreamClient,
    UpstreamConnectError,
    UpstreamError,
    UpstreamForbidden,
    UpstreamProtocolError,
    UpstreamTimeout,
)
from gateway.usage import Record, UsageTrace
from policies.base import Denial
from policies.context import DEFAULT_MAX_BUFFERED_BODY, BodyTooLarge, ClientGone, RequestContext, ResponseHead
from policies.engine import PolicyChain, Reply

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_NO_BODY_STATUSES = frozenset({204, 304})
# Framing is re-stated by the gateway: one validated Content-Length, or chunked.
_REPLACED_FRAMING = frozenset({b"content-length"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ALLOW_ALL = b"GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"


def _declared_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _ms(start_ns: int, end_ns: int) -> bytes:
    return str(max(0, (end_ns - start_ns) // 1_000_000)).encode()


class HttpProxy:
    """The ASGI callable for ``http`` scopes."""

    def __init__(
        self,
        *,
        snapshot: Callable[[], GatewaySnapshot | None],
        client: Callable[[], UpstreamClient],
        trusted_proxies: TrustedProxies,
        reserved: Callable[[Scope, Send], Awaitable[None]],
        usage: Record | None = None,
    ) -> None:
        self._snapshot = snapshot
        self._client = client
        self._trusted = trusted_proxies
        self._reserved = reserved
        self._usage = usage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request; with a usage recorder, also leave one usage record (reserved paths excepted)."""
        if self._usage is None:
            await self._handle(scope, receive, send, None)
            return
        trace = UsageTrace(send)
        try:
            await self._handle(scope, receive, trace, trace)
        finally:
            if not trace.reserved:
                trace.emit(self._usage, scope)

    async def _handle(self, scope: Scope, receive: Receive, send: Send, trace: UsageTrace | None) -> None:
        started = time.perf_counter_ns()
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        # One pass over the request headers for everything the gateway itself needs.
        host = b""
        hosts = 0
        lengths: list[bytes] = []
        chunked = False
        client_rid: bytes | None = None
        user_agent = b""
        for name, value in headers:
            if name == b"host":
                host = value
                hosts += 1
            elif name == b"content-length":
                lengths.append(value)
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"x-request-id":
                client_rid = value
            elif name == b"user-agent":
                user_agent = value
        rid = safe_request_id(client_rid) or new_request_id()
        method: str = scope["method"]
        head = method == "HEAD"
        raw_path: bytes = scope.get("raw_path") or scope["path"].encode("latin-1")

        if raw_path.startswith(b"/__apim"):
            if trace is not None:
                trace.reserved = True
            await self._reserved(scope, send)
            return
        REQUEST_ID.set(rid)  # for log lines; this task is this request's
        if trace is not None:
            trace.request_id = rid
            trace.user_agent = user_agent
            trace.path = raw_path.decode("latin-1")  # replaced by the canonical path once there is one
        if hosts != 1 or not host_ok(host):
            problem = host_problem(hosts, host, scope.get("http_version", "1.1"))
            if problem is not None:
                message = "The request must carry exactly one valid Host header."
                await send_error(send, "bad_request", rid, message=message, details={"reason": problem}, head=head)
                return
        try:
            target = canonicalize(raw_path, scope.get("query_string", b""))
        except BadTarget as exc:
            code = "uri_too_long" if exc.status == 414 else "bad_request"
            await send_error(send, code, rid, details={"reason": exc.reason}, head=head)
            return
        try:
            if chunked and scope.get("http_version") == "1.0":
                # RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
                raise FramingError("Transfer-Encoding in an HTTP/1.0 request")
            content_length = framing_length(lengths, chunked)
        except FramingError as exc:
            await send_error(
                send,
                "ambiguous_framing",
                rid,
                details={"reason": str(exc)},
                head=head,
                extra_headers=[(b"connection", b"close")],
            )
            return

        snapshot = self._snapshot()
        if snapshot is None:
            await send_error(send, "not_ready", rid, head=head)
            return
        if trace is not None:
            trace.path = target.path
        if method == "OPTIONS" and await self._preflight(scope, receive, send, snapshot, host, target, rid):
            return
        if method == "TRACE":  # never forwarded: it would echo the request, credentials and identity headers included
            await send_error(send, "method_not_allowed", rid, extra_headers=[(b"allow", _ALLOW_ALL)])
            return
        match = snapshot.router.lookup(host, method, target.path)
        if match is None:
            await send_error(send, "not_found", rid, head=head)
            return
        if isinstance(match, MethodNotAllowed):
            await send_error(send, "method_not_allowed", rid, head=head, extra_headers=[(b"allow", match.allow_header)])
            return
        if tracing.ENABLED:
            tracing.on_route(match)
        has_body = chunked or bool(content_length)
        chain: PolicyChain | None = match.entry.api.extra  # type: ignore[assignment]
        ctx = None
        if chain is not None:
            ctx = self._context(scope, receive, match, target, headers, host, rid, content_length, has_body)
            if trace is not None:
                trace.ctx = ctx
                trace.client_ip = ctx.client_ip
        if trace is not None:
            trace.match = match
        if ctx is not None and await self._run_request_policies(chain, ctx, send, head):  # type: ignore[arg-type]
            return
        await self._forward(
            scope,
            receive,
            send,
            match,
            snapshot,
            target,
            content_length,
            has_body,
            host,
            rid,
            started,
            chain,
            ctx,
            trace,
        )

    def _context(
        self,
        scope: Scope,
        receive: Receive,
        match: Match,
        target: CanonicalTarget,
        headers: list[tuple[bytes, bytes]],
        host: bytes,
        rid: bytes,
        content_length: int | None,
        has_body: bool,
    ) -> RequestContext:
        peer = (scope.get("client") or ("unknown", 0))[0]
        api = match.entry.api
        return RequestContext(
            scope=scope,
            receive=receive,
            method=scope["method"],
            path=target.path,
            query=target.query,
            headers=headers,
            host=host,
            client_ip=client_address(peer, headers, self._trusted),
            request_id=rid,
            tenant_id=str(api.tenant_id),
            api_id=str(api.api_id),
            route_pattern=match.entry.pattern,
            content_length=content_length,
            has_body=has_body,
        )

    async def _run_request_policies(self, chain: PolicyChain, ctx: RequestContext, send: Send, head: bool) -> bool:
        """Run the chain's request phase; True when it answered the client itself."""
        try:
            result = await chain.on_request(ctx)
        except BodyTooLarge as exc:
            result = _too_large(exc.limit)
        except ClientGone:
            ctx.deny_reason = "client_disconnected"
            return True
        if result is None:
            return False
        await _answer(send, result, ctx, head)
        return True

    async def _preflight(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        snapshot: GatewaySnapshot,
        host: bytes,
        target: CanonicalTarget,
        rid: bytes,
    ) -> bool:
        """Answer a CORS preflight for the method it asks about, if that API has a CORS policy.

        The route is looked up with the method named in
        ``Access-Control-Request-Method``: the preflight is about that request,
        and a route that does not list OPTIONS must still be reachable from a
        browser. Without a CORS policy the OPTIONS request is routed as usual.
        """
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        requested = None
        origin = False
        for name, value in headers:
            if name == b"access-control-request-method":
                requested = value
            elif name == b"origin":
                origin = True
        if requested is None or not origin:
            return False
        match = snapshot.router.lookup(host, requested.decode("latin-1"), target.path)
        if not isinstance(match, Match):
            return False
        chain: PolicyChain | None = match.entry.api.extra  # type: ignore[assignment]
        if chain is None or chain.preflight is None:
            return False
        ctx = self._context(scope, receive, match, target, headers, host, rid, None, False)
        result = await chain.on_preflight(ctx)
        if result is None:
            return False
        await _answer(send, result, ctx, False)
        return True

    async def _forward(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        match: Match,
        snapshot: GatewaySnapshot,
        canonical: CanonicalTarget,
        content_length: int | None,
        has_body: bool,
        host: bytes,
        rid: bytes,
        started: int,
        chain: PolicyChain | None = None,
        ctx: RequestContext | None = None,
        trace: UsageTrace | None = None,
    ) -> None:
        method: str = scope["method"]
        head = method == "HEAD"
        headers: list[tuple[bytes, bytes]] = scope["headers"]
        query = canonical.query
        buffered: bytes | None = None
        max_body: int | None = None
        if ctx is not None:
            headers = ctx.headers
            query = ctx.query
            buffered = ctx.body
            max_body = ctx.max_body
            if buffered is not None:
                # A policy read the body: forward exactly those bytes, framed by length
                # (no framing at all for a bodyless request that never declared one).
                content_length = len(buffered) if buffered or content_length is not None else None
                has_body = bool(buffered)
        # Headers the policies queued for every answer (rate-limit state, CORS) go out
        # on the gateway's own upstream errors too: a browser must be able to read a 502.
        queued = ctx.response_headers if ctx is not None and ctx.response_headers else None
        upstream_id = match.entry.upstream_id
        upstream = snapshot.upstreams.get(upstream_id) if upstream_id is not None else None  # type: ignore[call-overload]
        if upstream is None:
            await send_error(send, "no_healthy_target", rid, head=head, extra_headers=queued)
            return
        peer = (scope.get("client") or ("unknown", 0))[0]
        client_ip = ctx.client_ip if ctx is not None else client_address(peer, headers, self._trusted)
        scheme = scope.get("scheme", "http")
        server_port = (scope.get("server") or (None, None))[1]
        seen = Seen(
            peer=peer,
            scheme=scheme,
            host=host,
            port=server_port,
            http_version=scope.get("http_version", "1.1"),
            request_id=rid,
        )
        forwarded_path = canonical.raw_upstream(match.entry.strip_segments)
        if query:
            forwarded_path += b"?" + query
        remove = _REPLACED_FRAMING if ctx is None or not ctx.drop_headers else _REPLACED_FRAMING | ctx.drop_headers
        body = RequestBody(receive)
        client = self._client()
        balancer = upstream.balancer
        tried: set[str] = set()
        attempt = 0
        while True:
            attempt += 1
            lease = balancer.pick(client_ip, tried)
            if lease is None:
                await send_error(send, "no_healthy_target", rid, head=head, extra_headers=queued)
                return
            tried.add(lease.url)
            spec = lease.spec
            upstream_target = forwarded_path if not spec.path_prefix else spec.path_prefix + forwarded_path
            out_headers = upstream_request_headers(
                headers, seen=seen, upstream_host=spec.host_header, trusted=self._trusted, remove=remove
            )
            if content_length is not None:
                out_headers.append((b"content-length", str(content_length).encode()))
            if ctx is not None and ctx.upstream_headers:
                out_headers.extend(ctx.upstream_headers)
            if buffered is not None:
                upstream_body: Any = buffered if has_body else None
            elif not has_body:
                upstream_body = None
            elif max_body is not None:
                upstream_body = limited(body.stream(), max_body)
            else:
                upstream_body = body.stream()
            sent_at = time.perf_counter_ns()
            try:
                response = await client.request(
                    method=method,
                    origin=spec.origin,
                    target=upstream_target,
                    headers=out_headers,
                    body=upstream_body,
                    timeouts=upstream.timeouts,
                )
            except ClientDisconnected:
                lease.release()  # the client left: not the upstream's fault
                return
            except BodyTooLarge as exc:
                lease.release()  # the client's fault, not the upstream's
                if ctx is not None:
                    ctx.deny_reason = "body_too_large"
                await _answer(send, _too_large(exc.limit), ctx, head, close=True)
                return
            except UpstreamError as exc:
                forbidden = isinstance(exc, UpstreamForbidden)
                if not forbidden:  # a refused address is the gateway's rule, not the target's health
                    lease.failure()
                lease.release()
                retryable = isinstance(exc, UpstreamConnectError) or (
                    isinstance(exc, UpstreamTimeout) and exc.phase == "connect"
                )
                if retryable and not body.started and may_retry(method, False, attempt, upstream.spec.retries):
                    continue
                if forbidden:
                    code = "upstream_forbidden"
                elif isinstance(exc, UpstreamTimeout):
                    code = "upstream_timeout"
                elif isinstance(exc, UpstreamConnectError):
                    code = "upstream_unreachable"
                else:
                    code = "upstream_error"
                await send_error(send, code, rid, head=head, extra_headers=queued)
                return
            break

        first_byte_at = time.perf_counter_ns()
        if trace is not None:
            trace.upstream_target = lease.url
            trace.upstream_ns = first_byte_at - sent_at
            trace.gateway_ns = sent_at - started
            trace.bytes_in = len(buffered) if buffered is not None else body.bytes_received
            if trace.client_ip is None:
                trace.client_ip = client_ip
        status = response.status
        lease.report_status(status)
        extra = [
            (b"x-request-id", rid),
            (b"x-apim-upstream-latency", _ms(sent_at, first_byte_at)),
            (b"x-apim-proxy-latency", _ms(started, sent_at)),
        ]
        response_headers = response.headers
        body_filters = None
        if ctx is not None:
            if chain is not None and chain.response_handlers:
                head_obj = ResponseHead(status, list(response_headers))
                chain.on_response(ctx, head_obj)
                status, response_headers, body_filters = head_obj.status, head_obj.headers, head_obj.body_filters
            if ctx.response_headers:
                extra.extend(ctx.response_headers)
        if body_filters and not head and status not in _NO_BODY_STATUSES:
            await self._relay_filtered(send, response, lease, status, response_headers, body_filters, seen, extra)
            return
        out = downstream_response_headers(response_headers, http_version=seen.http_version, extra=extra)
        try:
            await send({"type": "http.response.start", "status": status, "headers": out})
            if head or status in _NO_BODY_STATUSES or 100 <= status < 200:
                await send({"type": "http.response.body", "body": b""})
                return
            # With a Content-Length, the chunk that completes the body goes out as the
            # last message (one ASGI send fewer per response); without one, the end is
            # only known at EOF. Never hold a chunk back waiting for the next one.
            remaining = _declared_length(response_headers)
            finished = False
            async for chunk in response.iter_body():
                if not chunk or finished:
                    continue
                if remaining is not None:
                    remaining -= len(chunk)
                    if remaining <= 0:
                        finished = True
                        await send({"type": "http.response.body", "body": chunk})
                        continue
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
            if not finished:
                await send({"type": "http.response.body", "body": b""})
        except (UpstreamProtocolError, UpstreamTimeout):
            lease.failure()  # no-op when the status was already reported; kept for the probe case
            raise  # the server aborts the connection: the client sees a truncated response
        finally:
            lease.release()
            await response.aclose()

    async def _relay_filtered(
        self,
        send: Send,
        response: Any,
        lease: Any,
        status: int,
        headers: list[tuple[bytes, bytes]],
        filters: list[Callable[[bytes, ResponseHead], bytes]],
        seen: Seen,
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        """Buffer the response body (bounded), apply the response policies' body filters, send it framed anew.

        A body larger than the bound is relayed unchanged (the filters only
        edit JSON documents, which are small; a large download must not be held).
        """
        parts: list[bytes] = []
        size = 0
        iterator = response.iter_body().__aiter__()
        try:
            try:
                while True:
                    chunk = await iterator.__anext__()
                    parts.append(chunk)
                    size += len(chunk)
                    if size > DEFAULT_MAX_BUFFERED_BODY:
                        break
            except StopAsyncIteration:
                body = b"".join(parts)
                head_obj = ResponseHead(status, headers)
                for apply in filters:
                    body = apply(body, head_obj)
                framed = [(n, v) for n, v in head_obj.headers if n != b"content-length"]
                framed.append((b"content-length", str(len(body)).encode()))
                out = downstream_response_headers(framed, http_version=seen.http_version, extra=extra)
                await send({"type": "http.response.start", "status": head_obj.status, "headers": out})
                await send({"type": "http.response.body", "body": body})
                return
            out = downstream_response_headers(headers, http_version=seen.http_version, extra=extra)
            await send({"type": "http.response.start", "status": status, "headers": out})
            await send({"type": "http.response.body", "body": b"".join(parts), "more_body": True})
            async for chunk in iterator:
                if chunk:
                    await send({"type": "http.response.body", "body": chunk, "more_body": True})
            await send({"type": "http.response.body", "body": b""})
        except (UpstreamProtocolError, UpstreamTimeout):
            lease.failure()
            raise
        finally:
            lease.release()
            await response.aclose()


def _too_large(limit: int) -> Denial:
    return Denial(
        status=413,
        code="body_too_large",
        message="The request body is larger than this API accepts.",
        details={"limit_bytes": limit},
    )


async def _answer(
    send: Send, result: Denial | Reply, ctx: RequestContext | None, head: bool, *, close: bool = False
) -> None:
    """Send a policy's answer: an error envelope for a denial, the reply as is otherwise.

    The headers policies queued for every answer (rate-limit state, CORS) go
    out with it, so a browser can read a 429 and a client can see its limits.
    """
    queued = ctx.response_headers if ctx is not None else []
    if isinstance(result, Reply):
        if ctx is not None and result.reason:
            ctx.deny_reason = result.reason
        headers = [*result.headers, *queued]
        if result.status not in _NO_BODY_STATUSES:
            headers.append((b"content-length", str(len(result.body)).encode()))
        if ctx is not None:
            headers.append((b"x-request-id", ctx.request_id))
        await send({"type": "http.response.start", "status": result.status, "headers": headers})
        await send({"type": "http.response.body", "body": b"" if head else result.body})
        return
    if ctx is not None:
        ctx.deny_reason = result.deny_reason
    extra = [*result.headers, *queued]
    if close:
        extra.append((b"connection", b"close"))
    await send_error(
        send,
        result.code,
        ctx.request_id if ctx is not None else b"",
        status=result.status,
        message=result.message,
        details=dict(result.details) if result.details else None,
        head=head,
        extra_headers=extra,
    )
