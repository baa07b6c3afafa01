"""quota: calendar-aligned daily and monthly request quotas in a time zone.

Unlike a rate limit, a quota counts in fixed calendar windows — from local
midnight to the next (a DST day is 23 or 25 hours), from the 1st of a month to
the next — in the configured IANA time zone. Subscribers' plan quotas come
from their plan (``policies.limits.step.plan_rules``); this policy is for
quotas an operator attaches directly (to an API, a consumer, the tenant).
It shares the limit store and the single round trip with rate limits; an
exhausted quota answers 429 ``quota_exceeded`` with ``Retry-After`` until the
window renews.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policies.base import CompileEnv, ConfigError, Policy
from policies.limits.rules import LIMIT_BY, CalendarRule, Rule, subject_of, valid_zone, zone
from policies.limits.step import LimitRulesHandler

_COUNT = {"type": "integer", "minimum": 1, "maximum": 1_000_000_000}


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    day: int | None
    month: int | None
    timezone: str
    limit_by: str
    fail_closed: bool


class QuotaPolicy(Policy):
    name = "quota"
    title = "Quota"
    priority = 900
    on_store_failure = (
        "fails open by default (counted in apim_gateway_ratelimit_store_failures_total); "
        "fail_mode: closed answers 503 rate_limit_unavailable instead"
    )
    schema: Mapping[str, Any] = {
        "type": "object",
        "additionalProperties": False,
        "properties": {
            "day": {**_COUNT, "description": "Requests per calendar day in `timezone`."},
            "month": {**_COUNT, "description": "Requests per calendar month in `timezone`."},
            "timezone": {
                "type": "string",
                "minLength": 1,
                "maxLength": 64,
                "description": "IANA time zone the calendar follows, e.g. Europe/Paris (default UTC).",
            },
            "limit_by": {
                "enum": list(LIMIT_BY),
                "description": "Whose requests share a quota; anonymous requests fall back to the client IP.",
            },
            "fail_mode": {
                "enum": ["open", "closed"],
                "description": "When the limit store is unreachable: let requests through (open) or answer 503.",
            },
        },
    }

    @classmethod
    def parse(cls, config: Mapping[str, Any]) -> QuotaConfig:
        tz = config.get("timezone", "UTC")
        if not valid_zone(tz):
            raise ConfigError("timezone", f"{tz!r} is not an IANA time zone (e.g. Europe/Paris, UTC)")
        day, month = config.get("day"), config.get("month")
        if day is None and month is None:
            raise ConfigError("day", "set a daily quota (day), a monthly quota (month) or both")
        if day is not None and month is not None and month < day:
            raise ConfigError(
                "month", f"a monthly quota ({month}) below the daily quota ({day}) makes `day` unreachable"
            )
        return QuotaConfig(
            day=day,
            month=month,
            timezone=tz,
            limit_by=config.get("limit_by", "consumer"),
            fail_closed=config.get("fail_mode", "open") == "closed",
        )

    @classmethod
    def compile(cls, parsed: QuotaConfig, env: CompileEnv) -> LimitRulesHandler:
        limiter = env.service("limiter")
        tz = zone(parsed.timezone)
        subject = subject_of(parsed.limit_by)
        namespace = f"q:{env.api.tenant_id}:{env.attachment_id}:"
        rules: tuple[Rule, ...] = tuple(
            CalendarRule(
                zone=tz,
                namespace=namespace,
                subject=subject,
                limit=value,
                window=window,
                quota=True,
                headers=True,
                fail_closed=parsed.fail_closed,
            )
            for window, value in (("day", parsed.day), ("month", parsed.month))
            if value is not None
        )
        return LimitRulesHandler(rules, limiter)
