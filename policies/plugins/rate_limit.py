"""rate-limit: requests per second / minute / hour / day, per consumer, credential, application, IP or API.

A sliding-window counter (``policies.limits.rules``) in the shared limit store
(``policies.limits.store``): exact across gateway processes with Redis, per
worker in embedded mode. The engine folds this policy, the quota policy and
the caller's plan limits into one step, so a request costs one store round
trip whatever number of limits applies, and a request refused by any limit is
counted by none.

``limit_by`` names the counter's subject. When the request carries no identity
of that kind (anonymous), the client address is the subject instead: the limit
never silently disappears. A tenant-wide attachment keyed by consumer is one
counter per consumer across all that tenant's APIs; ``api`` is one counter per
API for everybody.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.base import CompileEnv, Policy
from policies.limits.rules import LIMIT_BY, Rule, SlidingRule, subject_of
from policies.limits.step import LimitRulesHandler

_COUNT = {"type": "integer", "minimum": 1, "maximum": 1_000_000_000}


@dataclass(frozen=True, slots=True)
class RateLimitConfig:
    limits: tuple[tuple[str, int], ...]  # (period, limit), shortest period first
    limit_by: str
    fail_closed: bool
    headers: bool


class RateLimitPolicy(Policy):
    name = "rate-limit"
    title = "Rate limit"
    priority = 910
    on_store_failure = (
        "fails open by default (requests pass, counted in apim_gateway_ratelimit_store_failures_total); "
        "fail_mode: closed answers 503 rate_limit_unavailable instead"
    )
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "required": ["limits"],
        "properties": {
            "limits": {
                "type": "object",
                "description": "Requests allowed per period; at least one of second, minute, hour, day.",
                "additionalProperties": False,
                "minProperties": 1,
                "properties": {
                    "second": {**_COUNT, "description": "Requests per second."},
                    "minute": {**_COUNT, "description": "Requests per minute."},
                    "hour": {**_COUNT, "description": "Requests per hour."},
                    "day": {**_COUNT, "description": "Requests per day (rolling 24 h; calendar days are quotas)."},
                },
            },
            "limit_by": {
                "enum": list(LIMIT_BY),
                "description": "Whose requests share a counter; anonymous requests fall back to the client IP.",
            },
            "fail_mode": {
                "enum": ["open", "closed"],
                "description": "When the limit store is unreachable: let requests through (open) or answer 503.",
            },
            "headers": {
                "type": "boolean",
                "description": "Send RateLimit-* and X-RateLimit-* headers for these limits (default true).",
            },
        },
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> RateLimitConfig:
        order = ("second", "minute", "hour", "day")
        return RateLimitConfig(
            limits=tuple((period, int(config["limits"][period])) for period in order if period in config["limits"]),
            limit_by=config.get("limit_by", "consumer"),
            fail_closed=config.get("fail_mode", "open") == "closed",
            headers=config.get("headers", True),
        )

    @classmethod
    def compile(cls, parsed: RateLimitConfig, env: CompileEnv) -> LimitRulesHandler:
        limiter = env.service("limiter")
        namespace = f"r:{env.api.tenant_id}:{env.attachment_id}:"
        subject = subject_of(parsed.limit_by)
        rules: tuple[Rule, ...] = tuple(
            SlidingRule(
                namespace=namespace,
                subject=subject,
                limit=limit,
                window=period,
                quota=False,
                headers=parsed.headers,
                fail_closed=parsed.fail_closed,
            )
            for period, limit in parsed.limits
        )
        return LimitRulesHandler(rules, limiter)
