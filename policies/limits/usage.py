"""Quota usage for the portal and the REST API: what a subscription used of its plan's quotas.

Reads the very counters the gateway increments (same keys, same calendar
windows), synchronously, off the gateway. In embedded mode (no Redis) the
counters live inside each gateway worker process, so there is nothing another
process can read: :func:`quota_usage` returns ``None`` and the portal should
say usage is not available.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from policies.engine import PlanSpec
from policies.limits.rules import CALENDAR, zone
from policies.limits.store import key_prefix, redis_url


def quota_usage(
    subscription_id: str,
    plan: PlanSpec,
    *,
    now: float | None = None,
    url: str | None = None,
    prefix: str | None = None,
    client: Any = None,
) -> dict[str, dict[str, Any]] | None:
    """``{"day": {"used", "limit", "remaining", "resets_at"}, "month": {...}}`` for the plan's quotas.

    ``resets_at`` is an aware UTC datetime (the end of the calendar window in
    the plan's time zone). ``None`` when no Redis is configured (embedded mode).
    """
    url = url if url is not None else redis_url()
    if not url and client is None:
        return None
    prefix = prefix if prefix is not None else key_prefix()
    now_ms = int((time.time() if now is None else now) * 1000)
    tz = zone(plan.quota_timezone)
    wanted = [(w, v) for w, v in (("day", plan.quota_per_day), ("month", plan.quota_per_month)) if v]
    if not wanted:
        return {}
    windows = {w: CALENDAR.window(w, tz, now_ms) for w, _ in wanted}
    keys = [f"{prefix}pq:{plan.tenant_id}:{subscription_id}:{w[0]}:{windows[w][2]}" for w, _ in wanted]
    owned = client is None
    if owned:
        import redis

        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        values = client.mget(keys)
    finally:
        if owned:
            client.close()
    usage: dict[str, dict[str, Any]] = {}
    for (window, limit), value in zip(wanted, values, strict=True):
        used = int(value or 0)
        usage[window] = {
            "used": used,
            "limit": limit,
            "remaining": max(0, limit - used),
            "resets_at": datetime.fromtimestamp(windows[window][1] / 1000, UTC),
        }
    return usage
