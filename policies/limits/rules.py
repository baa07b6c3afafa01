"""Limit rules and the windows they count in: the arithmetic both limit stores share.

Two kinds of window:

* **Sliding** (rate limits): two fixed windows aligned to epoch multiples of the
  period, the previous one weighted by how much of it still overlaps the last
  period (Cloudflare's sliding-window counter). O(1) memory per subject, no
  double burst at a window edge (just after the edge the previous window still
  weighs ~100 %, and its share is rounded up), and a request is admitted while
  ``ceil(previous * weight) + current < limit``.
* **Calendar** (quotas): a fixed window from local midnight (or the 1st of the
  month) to the next one in an IANA time zone, so a day with a DST change is
  23 or 25 hours long, as the customer's own calendar says.

A :class:`Check` is one rule applied to one request at one instant: the keys
to read, the weight, the expiry. The Redis script and the in-process store
evaluate exactly ``admits`` below, so both stores decide alike.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from policies.context import RequestContext

PERIODS_MS: dict[str, int] = {"second": 1_000, "minute": 60_000, "hour": 3_600_000, "day": 86_400_000}
LIMIT_BY = ("consumer", "credential", "application", "ip", "api")
QUOTA_GRACE_MS = 3_600_000  # quota keys outlive their window by this much (late readers, clock skew)
SLIDING_GRACE_MS = 1_000


@dataclass(slots=True)
class Check:
    """One limit as it applies to one request now (built per request, read by the store and the headers)."""

    key: str  # counter of the current window (store-relative: the store adds its prefix)
    prev_key: str  # counter of the previous window (sliding only; equal to ``key`` for calendar windows)
    limit: int
    weight: float  # share of the previous window still counted; 0 for calendar windows
    ttl_ms: int
    reset_ms: int  # until the current window ends
    period_ms: int
    window: str  # "minute", "day", "month"...
    quota: bool
    headers: bool
    fail_closed: bool


def previous_share(previous: int, weight: float) -> int:
    """The previous window's share, rounded *up*: just after an edge it still counts in full,
    so a burst at the end of one window and another at the start of the next cannot both pass.
    (The Lua script computes exactly this: the same IEEE double operations.)"""
    return math.ceil(previous * weight - 1e-9) if weight > 0 else 0


def admits(checks: Sequence[Check], counts: Sequence[int]) -> bool:
    """Whether one more request fits every limit; ``counts`` is [current, previous] per check."""
    for index, check in enumerate(checks):
        if previous_share(counts[2 * index + 1], check.weight) + counts[2 * index] >= check.limit:
            return False
    return True


def remaining(check: Check, current: int, previous: int) -> int:
    """How many more requests this limit admits now."""
    return max(0, check.limit - previous_share(previous, check.weight) - current)


def wait_ms(check: Check, current: int, previous: int) -> int:
    """How long until this (exhausted) limit admits a request again, if no one else calls meanwhile."""
    if check.weight == 0:
        return check.reset_ms
    period = check.period_ms
    if current >= check.limit:
        # Only the next window helps: there this count becomes the previous one, and must decay
        # until ceil(current * weight) <= limit - 1.
        return check.reset_ms + math.ceil(period * (1 - (check.limit - 1) / current)) + 1
    # The previous window's share must decay until ceil(previous * weight) + current <= limit - 1.
    return max(0, math.ceil(check.reset_ms - (check.limit - current - 1) * period / previous) + 1)


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def valid_zone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def calendar_window(kind: str, zone: ZoneInfo, now_ms: int) -> tuple[int, int, str]:
    """(start ms, end ms, label) of the day or month containing ``now_ms`` in ``zone``."""
    local = datetime.fromtimestamp(now_ms / 1000, zone)
    if kind == "day":
        start_date: date = local.date()
        end_date = start_date + timedelta(days=1)
        label = start_date.isoformat()
    else:
        start_date = local.date().replace(day=1)
        end_date = (start_date + timedelta(days=32)).replace(day=1)
        label = start_date.isoformat()[:7]
    start = datetime.combine(start_date, time.min, tzinfo=zone)
    end = datetime.combine(end_date, time.min, tzinfo=zone)
    return _ms(start), _ms(end), label


class CalendarClock:
    """Caches the current calendar window per (zone, kind): recomputed only when it ends."""

    __slots__ = ("_cache",)

    def __init__(self) -> None:
        self._cache: dict[tuple[str, str], tuple[int, int, str]] = {}

    def window(self, kind: str, zone: ZoneInfo, now_ms: int) -> tuple[int, int, str]:
        cache_key = (zone.key, kind)
        cached = self._cache.get(cache_key)
        if cached is None or not cached[0] <= now_ms < cached[1]:
            cached = calendar_window(kind, zone, now_ms)
            self._cache[cache_key] = cached
        return cached


CALENDAR = CalendarClock()

Subject = Callable[[RequestContext], str]


def subject_of(limit_by: str) -> Subject:
    """What a counter is keyed by. Without the identity it needs (anonymous), the client address:
    never no limit at all, so no client can pick an unlimited path by leaving out a credential."""

    def consumer(ctx: RequestContext) -> str:
        identity = ctx.identity
        return f"c:{identity.consumer_id}" if identity is not None else f"ip:{ctx.client_ip}"

    def credential(ctx: RequestContext) -> str:
        identity = ctx.identity
        if identity is None:
            return f"ip:{ctx.client_ip}"
        if identity.key_prefix:
            return f"k:{identity.key_prefix}"
        return f"k:{identity.credential}:{identity.consumer_id}"

    def application(ctx: RequestContext) -> str:
        identity = ctx.identity
        if identity is not None and identity.application_id:
            return f"a:{identity.application_id}"
        return f"ip:{ctx.client_ip}"

    def ip(ctx: RequestContext) -> str:
        return f"ip:{ctx.client_ip}"

    def api(ctx: RequestContext) -> str:
        return f"api:{ctx.api_id}"

    return {"consumer": consumer, "credential": credential, "application": application, "ip": ip, "api": api}[limit_by]


class Rule:
    """A limit bound to a counter namespace; ``check`` builds the request's :class:`Check`."""

    __slots__ = ("fail_closed", "headers", "limit", "namespace", "quota", "subject", "window")

    def __init__(
        self,
        *,
        namespace: str,
        subject: Subject | None,
        limit: int,
        window: str,
        quota: bool,
        headers: bool,
        fail_closed: bool,
    ) -> None:
        self.namespace = namespace
        self.subject = subject
        self.limit = limit
        self.window = window
        self.quota = quota
        self.headers = headers
        self.fail_closed = fail_closed

    def check(self, ctx: RequestContext, now_ms: int, subject: str | None = None) -> Check:
        raise NotImplementedError


class SlidingRule(Rule):
    __slots__ = ("period_ms", "tag")

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.period_ms = PERIODS_MS[self.window]
        self.tag = self.window[0]

    def check(self, ctx: RequestContext, now_ms: int, subject: str | None = None) -> Check:
        period = self.period_ms
        window = now_ms // period
        elapsed = now_ms - window * period
        who = subject if subject is not None else self.subject(ctx)  # type: ignore[misc]
        base = f"{self.namespace}{who}:{self.tag}:"
        # Positional: this runs for every limit of every request.
        return Check(
            f"{base}{window}",
            f"{base}{window - 1}",
            self.limit,
            (period - elapsed) / period,
            2 * period + SLIDING_GRACE_MS,
            period - elapsed,
            period,
            self.window,
            self.quota,
            self.headers,
            self.fail_closed,
        )


class CalendarRule(Rule):
    __slots__ = ("tag", "zone")

    def __init__(self, *, zone: ZoneInfo, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]
        self.zone = zone
        self.tag = self.window[0]

    def check(self, ctx: RequestContext, now_ms: int, subject: str | None = None) -> Check:
        start, end, label = CALENDAR.window(self.window, self.zone, now_ms)
        who = subject if subject is not None else self.subject(ctx)  # type: ignore[misc]
        key = f"{self.namespace}{who}:{self.tag}:{label}"
        return Check(
            key,
            key,
            self.limit,
            0.0,
            end - now_ms + QUOTA_GRACE_MS,
            end - now_ms,
            end - start,
            self.window,
            self.quota,
            self.headers,
            self.fail_closed,
        )


def zone(name: str) -> ZoneInfo:
    """The IANA zone ``name``; UTC for a name this machine does not know (plans are validated on save)."""
    return _zone(name)
