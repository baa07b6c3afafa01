"""Compiles attachments into one policy chain per API, and runs a chain per request.

Resolution (like Kong's plugin scoping, and stated here because operators rely
on it): for each policy type, the most specific attachment wins —
API+consumer, then consumer, then API, then tenant-wide. A *disabled*
attachment still wins at its scope and switches that type off there, which is
how an operator exempts one API (or consumer) from a tenant-wide policy.

Chains are compiled once per snapshot, off the request path. Handlers that run
before authentication (CORS, IP rules, size limits) and the authentication
handlers themselves form ``before``; everything after authentication forms
``after``, which a consumer's own attachments may change. The consumer is
only known at request time, so consumer-specific tails are compiled on first
use and cached in the chain (a chain lives as long as its snapshot, so a
config change discards them).

A chain whose compilation failed (a config the running code cannot use) denies
every request to its API with 503 ``policy_unavailable``: failing closed for
that one API, while every other API keeps its policies.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from policies import registry
from policies.base import ApiInfo, CompileEnv, Denial, Handler
from policies.context import BodyTooLarge, ClientGone, RequestContext, ResponseHead

logger = logging.getLogger(__name__)

AUTH_MIN_PRIORITY = 1000  # handlers at or above this run before the consumer is known
SCOPE_ORDER = ("tenant", "api", "consumer", "api+consumer")  # least to most specific

POLICY_UNAVAILABLE = Denial(
    status=503, code="policy_unavailable", message="A policy of this API cannot be applied; try again later."
)


@dataclass(frozen=True, slots=True)
class Reply:
    """A complete local answer that is not an error (a CORS preflight's 204)."""

    status: int
    headers: tuple[tuple[bytes, bytes], ...] = ()
    body: bytes = b""
    reason: str = ""


@dataclass(frozen=True, slots=True)
class AttachmentSpec:
    """A policy attachment as the compiler sees it (built from the model by the loader, or by tests)."""

    id: str
    policy: str
    tenant_id: str
    config: Mapping[str, Any] = field(default_factory=dict)
    api_id: str | None = None
    consumer_id: str | None = None
    enabled: bool = True
    priority: int | None = None

    @property
    def scope(self) -> str:
        if self.api_id and self.consumer_id:
            return "api+consumer"
        if self.api_id:
            return "api"
        if self.consumer_id:
            return "consumer"
        return "tenant"


@dataclass(frozen=True, slots=True)
class PlanSpec:
    """A plan's limits as the limit step sees them (``None``: no such limit)."""

    id: str
    tenant_id: str
    name: str = ""
    rate_limit_per_second: int | None = None
    rate_limit_per_minute: int | None = None
    rate_limit_per_hour: int | None = None
    rate_limit_per_day: int | None = None
    quota_per_day: int | None = None
    quota_per_month: int | None = None
    quota_timezone: str = "UTC"


def _compile_one(spec: AttachmentSpec, api: ApiInfo, services: Mapping[str, Any], extra: Mapping[str, Any]) -> Handler:
    from policies.validation import parse_config

    cls = registry.get(spec.policy)
    if cls is None:
        raise ValueError(f"unknown policy type {spec.policy!r}")
    parsed = parse_config(spec.policy, spec.config)
    env = CompileEnv(api=api, services={**services, **extra}, attachment_id=spec.id, scope=spec.scope)
    handler = cls.compile(parsed, env)
    handler.name = cls.name
    handler.priority = spec.priority if spec.priority is not None else cls.priority
    return handler


def _ordered(handlers: Iterable[Handler]) -> tuple[Handler, ...]:
    # Stable: equal priorities keep the registry's order, which is the settings order.
    return tuple(sorted(handlers, key=lambda h: -h.priority))


class _Unavailable(Handler):
    """Stands in for a consumer's policies that could not be compiled: that consumer is refused."""

    name = "policy-unavailable"

    async def request(self, ctx: RequestContext) -> Denial | None:
        return POLICY_UNAVAILABLE


class PolicyChain:
    """The compiled policies of one API. Immutable apart from the consumer-tail cache."""

    __slots__ = (
        "_after_raw",
        "_after_requests",
        "_before_all",
        "_extra",
        "_overrides",
        "_services",
        "_tails",
        "after",
        "api",
        "before",
        "broken",
        "preflight",
        "response_handlers",
    )

    def __init__(
        self,
        *,
        api: ApiInfo,
        resolved: Mapping[str, AttachmentSpec],
        overrides: Mapping[str, Mapping[str, AttachmentSpec]],
        services: Mapping[str, Any],
        extra: Mapping[str, Any],
    ) -> None:
        self.api = api
        self._services = services
        self._extra = extra
        self._overrides = overrides
        self._tails: dict[str, tuple[tuple[Handler, ...], tuple[Handler, ...]]] = {}
        handlers, self.broken = self._compile(resolved.values())
        self._before_all = _ordered(h for h in handlers if h.priority >= AUTH_MIN_PRIORITY)
        self._after_raw = [h for h in handlers if h.priority < AUTH_MIN_PRIORITY]
        self.before = tuple(h for h in self._before_all if h.has_request)
        self.after = self._merge(self._after_raw)
        self._after_requests = tuple(h for h in self.after if h.has_request)
        self.response_handlers = self._response_of(self.after)
        self.preflight = next((h for h in self.before if getattr(h, "answers_preflight", False)), None)

    def _compile(self, specs: Iterable[AttachmentSpec]) -> tuple[list[Handler], str | None]:
        handlers = []
        broken = None
        for spec in specs:
            if not spec.enabled:
                continue
            try:
                handlers.append(_compile_one(spec, self.api, self._services, self._extra))
            except Exception as exc:  # noqa: BLE001 - one bad attachment closes its API, not the gateway
                broken = f"{spec.policy} ({spec.id}): {exc}"
                logger.error("policy %s of API %s cannot be compiled: %s", spec.policy, self.api.api_id, exc)
        return handlers, broken

    def _merge(self, after: list[Handler]) -> tuple[Handler, ...]:
        """Fold the limit handlers (rate-limit, quota, plan limits) into one step: one store round trip."""
        from policies.limits import merge_limit_handlers

        merged = merge_limit_handlers(after, before=self._before_all, services=self._services, extra=self._extra)
        return _ordered(h for h in merged if h.has_request or h.has_response)

    def _response_of(self, after: Iterable[Handler]) -> tuple[Handler, ...]:
        # Response hooks run innermost first: the reverse of the request order.
        handlers = [h for h in (*self._before_all, *after) if h.has_response]
        return tuple(sorted(handlers, key=lambda h: h.priority))

    def _tail_for(self, consumer_id: str) -> tuple[tuple[Handler, ...], tuple[Handler, ...]]:
        """The handlers after authentication for one consumer with attachments of its own."""
        tail = self._tails.get(consumer_id)
        if tail is None:
            specs = self._overrides[consumer_id]
            compiled, broken = self._compile(specs.values())
            own = [h for h in compiled if h.priority < AUTH_MIN_PRIORITY]
            raw = [h for h in self._after_raw if h.name not in specs] + own
            after = (_Unavailable(),) if broken else self._merge(raw)
            tail = (tuple(h for h in after if h.has_request), self._response_of(after))
            if len(self._tails) < 100_000:
                self._tails[consumer_id] = tail
        return tail

    async def on_request(self, ctx: RequestContext) -> Denial | Reply | None:
        """The request phase: None to forward, else the answer. Never raises for a policy's bug.

        ``BodyTooLarge`` and ``ClientGone`` pass through (the caller answers 413
        or stops); any other exception is a defect in a handler and refuses this
        request with 503 ``policy_unavailable`` (fail closed), logged with its trace.
        """
        try:
            return await self._run_request(ctx)
        except (BodyTooLarge, ClientGone):
            raise
        except Exception:
            logger.exception("policy chain of API %s failed", self.api.api_id)
            return POLICY_UNAVAILABLE

    async def on_preflight(self, ctx: RequestContext) -> Denial | Reply | None:
        """The CORS handler's answer to a preflight (None: route it as a plain OPTIONS request)."""
        if self.preflight is None:
            return None
        try:
            return await self.preflight.request(ctx)
        except Exception:
            logger.exception("CORS preflight of API %s failed", self.api.api_id)
            return POLICY_UNAVAILABLE

    async def _run_request(self, ctx: RequestContext) -> Denial | Reply | None:
        if self.broken is not None:
            return POLICY_UNAVAILABLE
        for handler in self.before:
            result = await handler.request(ctx)
            if result is not None:
                return result
        handlers = self._after_requests
        if self._overrides and ctx.identity is not None and ctx.identity.consumer_id in self._overrides:
            handlers, response = self._tail_for(ctx.identity.consumer_id)
            ctx.state["response_handlers"] = response
        for handler in handlers:
            result = await handler.request(ctx)
            if result is not None:
                return result
        return None

    def on_response(self, ctx: RequestContext, head: ResponseHead) -> None:
        handlers = ctx.state.get("response_handlers", self.response_handlers) if ctx.state else self.response_handlers
        for handler in handlers:
            handler.response(ctx, head)


def resolve(attachments: Iterable[AttachmentSpec]) -> dict[str, AttachmentSpec]:
    """Per policy type, the most specific of ``attachments`` (all of one API or one consumer view)."""
    best: dict[str, AttachmentSpec] = {}
    for spec in attachments:
        current = best.get(spec.policy)
        if current is None or SCOPE_ORDER.index(spec.scope) > SCOPE_ORDER.index(current.scope):
            best[spec.policy] = spec
    return best


def compile_chains(
    apis: Iterable[ApiInfo],
    attachments: Iterable[AttachmentSpec],
    *,
    services: Mapping[str, Any] | None = None,
    extra: Mapping[str, Any] | None = None,
    always: bool = False,
) -> dict[str, PolicyChain | None]:
    """One chain per API id; ``None`` for an API with no policy at all (the proxy then skips the engine).

    ``extra`` carries snapshot-wide compiled data handlers may need (``plans``).
    ``always`` builds a chain even for APIs without attachments (plan limits
    need one only when some authentication policy applies, so normally not).
    """
    services = services or {}
    extra = extra or {}
    by_tenant: dict[str, list[AttachmentSpec]] = {}
    for spec in attachments:
        by_tenant.setdefault(spec.tenant_id, []).append(spec)
    chains: dict[str, PolicyChain | None] = {}
    for api in apis:
        specs = by_tenant.get(api.tenant_id, [])
        general = resolve(s for s in specs if s.consumer_id is None and s.api_id in (None, api.api_id))
        consumer_specs: dict[str, list[AttachmentSpec]] = {}
        for s in specs:
            if s.consumer_id is not None and s.api_id in (None, api.api_id):
                consumer_specs.setdefault(s.consumer_id, []).append(s)
        overrides = {cid: resolve(own) for cid, own in consumer_specs.items()}
        if not general and not overrides and not always:
            chains[api.api_id] = None
            continue
        chains[api.api_id] = PolicyChain(api=api, resolved=general, overrides=overrides, services=services, extra=extra)
    return chains
