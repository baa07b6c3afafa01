"""The limit step: every limit of a request (rate-limit, quota, the caller's plan) in one store call.

Headers (IETF ``RateLimit`` draft fields, plus the ``X-RateLimit-*`` forms most
clients know) describe the *most restrictive* limit — the one with the fewest
requests left — and go out on the proxied response and on a 429 alike:
``RateLimit-Limit``, ``RateLimit-Remaining``, ``RateLimit-Reset`` (seconds
until that limit's window ends) and ``X-RateLimit-Limit`` /
``X-RateLimit-Remaining`` / ``X-RateLimit-Reset`` with the same values. A 429
carries ``Retry-After`` (whole seconds, at least 1): when every exhausted limit
admits again if nobody else calls. An exhausted rate limit answers 429
``rate_limited``; only exhausted quotas answer 429 ``quota_exceeded``.

Fail modes: when the store cannot be reached the request is admitted (``open``)
unless one of its limits is configured ``closed``, which answers 503
``rate_limit_unavailable``. The store decides reachability — no request header
or value can steer a request onto the degraded path.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

from policies.base import Denial, Handler
from policies.context import RequestContext
from policies.engine import PlanSpec
from policies.limits.rules import CalendarRule, Check, Rule, SlidingRule, remaining, wait_ms, zone
from policies.limits.store import STORE_FAILURES, Limiter

UNAVAILABLE = Denial(
    status=503,
    code="rate_limit_unavailable",
    message="Rate limits cannot be checked right now; try again shortly.",
    reason="rate_limit_store_down",
    headers=((b"retry-after", b"1"),),
)

PLAN_PERIODS = (
    ("second", "rate_limit_per_second"),
    ("minute", "rate_limit_per_minute"),
    ("hour", "rate_limit_per_hour"),
    ("day", "rate_limit_per_day"),
)


def plan_rules(plan: PlanSpec, *, fail_closed: bool) -> tuple[Rule, ...]:
    """A plan's limits as rules. Counters are per subscription: the subject is given per request."""
    rules: list[Rule] = []
    rate_ns = f"pr:{plan.tenant_id}:"
    for window, attr in PLAN_PERIODS:
        value = getattr(plan, attr)
        if value:
            rules.append(
                SlidingRule(
                    namespace=rate_ns,
                    subject=None,
                    limit=value,
                    window=window,
                    quota=False,
                    headers=True,
                    fail_closed=fail_closed,
                )
            )
    tz = zone(plan.quota_timezone)
    for window, value in (("day", plan.quota_per_day), ("month", plan.quota_per_month)):
        if value:
            rules.append(
                CalendarRule(
                    zone=tz,
                    namespace=f"pq:{plan.tenant_id}:",
                    subject=None,
                    limit=value,
                    window=window,
                    quota=True,
                    headers=True,
                    fail_closed=fail_closed,
                )
            )
    return tuple(rules)


class LimitRulesHandler(Handler):
    """What the rate-limit and quota policies compile to: rules the merged step gathers.

    On its own (an operator moved it before authentication with a priority
    override, so the engine does not merge it) it still works: it checks its
    own rules through its own step.
    """

    def __init__(self, rules: tuple[Rule, ...], limiter: Limiter) -> None:
        self.rules = rules
        self.limiter = limiter
        self._step = LimitStep(rules=rules, limiter=limiter, plans={}, plan_fail_closed=False)

    async def request(self, ctx: RequestContext) -> Denial | None:
        return await self._step.request(ctx)


class LimitStep(Handler):
    """Gathers the request's limits, asks the store once, answers 429/503 or adds the headers."""

    name = "limits"

    def __init__(
        self,
        *,
        rules: tuple[Rule, ...],
        limiter: Limiter,
        plans: Mapping[str, PlanSpec],
        plan_fail_closed: bool,
    ) -> None:
        self.rules = rules
        self.limiter = limiter
        self.plans = plans
        self.plan_fail_closed = plan_fail_closed
        self._plan_rules: dict[str, tuple[Rule, ...]] = {}

    def _rules_of_plan(self, plan: PlanSpec) -> tuple[Rule, ...]:
        rules = self._plan_rules.get(plan.id)
        if rules is None:
            rules = plan_rules(plan, fail_closed=self.plan_fail_closed)
            self._plan_rules[plan.id] = rules
        return rules

    def checks(self, ctx: RequestContext, now_ms: int) -> list[Check]:
        checks = [rule.check(ctx, now_ms) for rule in self.rules]
        identity = ctx.identity
        if identity is not None and identity.subscription is not None and self.plans:
            plan = self.plans.get(identity.subscription.plan_id)
            if plan is not None and plan.tenant_id == ctx.tenant_id:
                subject = identity.subscription.subscription_id
                checks.extend(rule.check(ctx, now_ms, subject) for rule in self._rules_of_plan(plan))
        return checks

    async def request(self, ctx: RequestContext) -> Denial | None:
        now_ms = int(self.limiter.clock() * 1000)
        checks = self.checks(ctx, now_ms)
        if not checks:
            return None
        result = await self.limiter.check(checks)
        if result is None:
            if any(check.fail_closed for check in checks):
                STORE_FAILURES.labels(fail_mode="closed").inc()
                return UNAVAILABLE
            STORE_FAILURES.labels(fail_mode="open").inc()
            return None
        return self._decide(ctx, checks, result)

    def _decide(self, ctx: RequestContext, checks: Sequence[Check], result: Sequence[int]) -> Denial | None:
        allowed = result[0] == 1
        best: tuple[int, int, int] | None = None  # (remaining, -reset_ms, limit)
        retry_ms = 0
        denied_rate = denied_quota = None
        for index, check in enumerate(checks):
            current, previous = int(result[1 + 2 * index]), int(result[2 + 2 * index])
            left = remaining(check, current, previous)
            if not allowed and left == 0:
                retry_ms = max(retry_ms, wait_ms(check, current, previous))
                if check.quota:
                    denied_quota = denied_quota or check
                else:
                    denied_rate = denied_rate or check
            if check.headers:
                candidate = (left, -check.reset_ms, check.limit)
                if best is None or candidate < best:
                    best = candidate
        if best is not None:
            left, reset, limit = best
            limit_b, left_b = b"%d" % limit, b"%d" % left
            reset_b = b"%d" % max(1, math.ceil(-reset / 1000))
            ctx.response_headers.extend(
                (
                    (b"ratelimit-limit", limit_b),
                    (b"ratelimit-remaining", left_b),
                    (b"ratelimit-reset", reset_b),
                    (b"x-ratelimit-limit", limit_b),
                    (b"x-ratelimit-remaining", left_b),
                    (b"x-ratelimit-reset", reset_b),
                )
            )
        if allowed:
            return None
        retry_after = max(1, math.ceil(retry_ms / 1000))
        hit = denied_rate or denied_quota
        details: dict[str, Any] = {"retry_after": retry_after}
        if hit is not None:
            details.update(limit=hit.limit, window=hit.window)
        if denied_rate is not None:
            return Denial(
                status=429,
                code="rate_limited",
                message=f"Rate limit exceeded; retry in {retry_after} s.",
                reason="rate_limited",
                details=details,
                headers=((b"retry-after", str(retry_after).encode()),),
            )
        return Denial(
            status=429,
            code="quota_exceeded",
            message=f"Quota exhausted; it renews in {retry_after} s.",
            reason="quota_exceeded",
            details=details,
            headers=((b"retry-after", str(retry_after).encode()),),
        )
